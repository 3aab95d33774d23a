//! Token generation with a KV cache: greedy or seeded sampling (temperature, top-k, top-p), stop
//! tokens, a token budget and a per-token callback. Logits are read back asynchronously, the only
//! way a browser allows, and sampled on the CPU (burn's sort/top-k read back synchronously and
//! would panic on the web).

use burn::tensor::{Int, Tensor, TensorData};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use tributary_sgmv::SgmvBackend;

use crate::error::ModelError;
use crate::model::{Adapter, Model};

#[derive(Debug, Clone, PartialEq)]
pub struct SamplingParams {
    /// 0 means greedy (argmax).
    pub temperature: f32,
    /// Keep only the k most likely tokens; 0 disables.
    pub top_k: usize,
    /// Keep the smallest set of tokens whose probability reaches p; 1.0 disables.
    pub top_p: f32,
    pub seed: u64,
    pub max_tokens: usize,
    pub stop_tokens: Vec<u32>,
}

impl SamplingParams {
    pub fn greedy(max_tokens: usize) -> Self {
        Self {
            temperature: 0.0,
            top_k: 0,
            top_p: 1.0,
            seed: 0,
            max_tokens,
            stop_tokens: Vec::new(),
        }
    }
}

/// Picks the next token from a row of logits; deterministic for a given seed.
#[derive(Debug, Clone)]
pub struct Sampler {
    params: SamplingParams,
    rng: ChaCha8Rng,
}

impl Sampler {
    pub fn new(params: SamplingParams) -> Self {
        let rng = ChaCha8Rng::seed_from_u64(params.seed);
        Self { params, rng }
    }

    pub fn sample(&mut self, logits: &[f32]) -> u32 {
        if self.params.temperature <= 0.0 {
            return argmax(logits);
        }
        // Candidates by descending logit; ties keep the lower id first (stable sort).
        let mut order: Vec<usize> = (0..logits.len()).collect();
        order.sort_by(|&a, &b| logits[b].total_cmp(&logits[a]));
        if self.params.top_k > 0 {
            order.truncate(self.params.top_k);
        }
        let t = f64::from(self.params.temperature);
        let max = f64::from(logits[order[0]]);
        let weights: Vec<f64> = order
            .iter()
            .map(|&i| ((f64::from(logits[i]) - max) / t).exp())
            .collect();
        let total: f64 = weights.iter().sum();
        let mut keep = weights.len();
        if self.params.top_p < 1.0 {
            let mut cumulative = 0.0;
            for (n, w) in weights.iter().enumerate() {
                cumulative += w / total;
                if cumulative >= f64::from(self.params.top_p) {
                    keep = n + 1;
                    break;
                }
            }
        }
        let kept_total: f64 = weights[..keep].iter().sum();
        let mut target = self.rng.random::<f64>() * kept_total;
        for (n, w) in weights[..keep].iter().enumerate() {
            target -= w;
            if target < 0.0 {
                return order[n] as u32;
            }
        }
        order[keep - 1] as u32
    }
}

/// Index of the largest logit, the first one on ties (as torch's argmax).
fn argmax(logits: &[f32]) -> u32 {
    let mut best = 0;
    for (i, &v) in logits.iter().enumerate() {
        if v > logits[best] {
            best = i;
        }
    }
    best as u32
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StopReason {
    MaxTokens,
    StopToken,
    /// The callback asked to stop (e.g. the client went away).
    Cancelled,
    /// The model's context is full.
    Context,
}

#[derive(Debug, Clone)]
pub struct Generation {
    pub prompt_ids: Vec<u32>,
    pub tokens: Vec<u32>,
    /// Logits at the last prompt position (what the first token was chosen from).
    pub prompt_logits: Vec<f32>,
    pub stop: StopReason,
}

/// Generates from `prompt`, calling `on_token` with each new token; returning `false` from it
/// stops generation. A stop token ends generation and is included in `tokens`.
pub async fn generate<B: SgmvBackend>(
    model: &Model<B>,
    adapter: Option<&Adapter<B>>,
    prompt: &[u32],
    params: &SamplingParams,
    mut on_token: impl FnMut(u32) -> bool,
) -> Result<Generation, ModelError> {
    let vocab = model.config.vocab_size;
    if prompt.is_empty() {
        return Err(ModelError::Generation("the prompt has no tokens".into()));
    }
    if let Some(bad) = prompt.iter().find(|&&t| t as usize >= vocab) {
        return Err(ModelError::Generation(format!(
            "prompt token {bad} is outside the vocabulary ({vocab} tokens)"
        )));
    }
    let context = model.config.max_position_embeddings;
    if prompt.len() > context {
        return Err(ModelError::Generation(format!(
            "the prompt has {} tokens, over the model's context of {context}",
            prompt.len()
        )));
    }
    let mut sampler = Sampler::new(params.clone());
    let mut cache = model.new_cache();
    let mut logits = last_logits(model, &mut cache, adapter, prompt).await?;
    let prompt_logits = logits.clone();
    let mut tokens = Vec::new();
    let stop = loop {
        if tokens.len() >= params.max_tokens {
            break StopReason::MaxTokens;
        }
        if cache.len() >= context {
            break StopReason::Context;
        }
        let next = sampler.sample(&logits);
        tokens.push(next);
        if !on_token(next) {
            break StopReason::Cancelled;
        }
        if params.stop_tokens.contains(&next) {
            break StopReason::StopToken;
        }
        if tokens.len() >= params.max_tokens {
            break StopReason::MaxTokens;
        }
        logits = last_logits(model, &mut cache, adapter, &[next]).await?;
    };
    Ok(Generation {
        prompt_ids: prompt.to_vec(),
        tokens,
        prompt_logits,
        stop,
    })
}

/// Runs `ids` as one sequence and reads back the logits of its last position.
pub(crate) async fn last_logits<B: SgmvBackend>(
    model: &Model<B>,
    cache: &mut crate::model::KvCache<B>,
    adapter: Option<&Adapter<B>>,
    ids: &[u32],
) -> Result<Vec<f32>, ModelError> {
    let n = ids.len();
    let data: Vec<i32> = ids.iter().map(|&t| t as i32).collect();
    let tokens = Tensor::<B, 2, Int>::from_data(TensorData::new(data, [1, n]), model.device());
    let data = model
        .forward_last(tokens, cache, adapter.into())?
        .into_data_async()
        .await
        .map_err(|e| ModelError::Readback(format!("{e:?}")))?;
    data.to_vec::<f32>()
        .map_err(|e| ModelError::Readback(format!("{e:?}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(temperature: f32, top_k: usize, top_p: f32, seed: u64) -> SamplingParams {
        SamplingParams {
            temperature,
            top_k,
            top_p,
            seed,
            max_tokens: 1,
            stop_tokens: Vec::new(),
        }
    }

    #[test]
    fn greedy_takes_the_first_of_equal_maxima() {
        let mut s = Sampler::new(SamplingParams::greedy(1));
        assert_eq!(s.sample(&[0.1, 2.0, -1.0, 2.0]), 1);
    }

    #[test]
    fn top_k_one_and_tiny_top_p_reduce_to_greedy() {
        let logits = [0.3, 1.5, 1.4, -2.0];
        for seed in 0..50 {
            assert_eq!(Sampler::new(params(1.0, 1, 1.0, seed)).sample(&logits), 1);
            assert_eq!(Sampler::new(params(1.0, 0, 1e-6, seed)).sample(&logits), 1);
        }
    }

    #[test]
    fn sampling_follows_the_softmax_distribution() {
        // softmax([0, ln 3]) = [0.25, 0.75].
        let logits = [0.0, 3f32.ln()];
        let mut s = Sampler::new(params(1.0, 0, 1.0, 7));
        let n = 20_000;
        let ones = (0..n).filter(|_| s.sample(&logits) == 1).count();
        let p = ones as f64 / n as f64;
        assert!((p - 0.75).abs() < 0.015, "P(1) = {p}");
        // Temperature 2 flattens it: softmax([0, ln 3 / 2]) = [1/(1+√3), √3/(1+√3)].
        let mut s = Sampler::new(params(2.0, 0, 1.0, 7));
        let ones = (0..n).filter(|_| s.sample(&logits) == 1).count();
        let want = 3f64.sqrt() / (1.0 + 3f64.sqrt());
        let p = ones as f64 / n as f64;
        assert!((p - want).abs() < 0.015, "P(1) = {p}, want {want}");
    }

    #[test]
    fn top_p_drops_the_tail() {
        // Probabilities ≈ [0.64, 0.24, 0.09, 0.03]: top_p 0.8 keeps the first two only.
        let logits = [2.0, 1.0, 0.0, -1.0];
        let mut s = Sampler::new(params(1.0, 0, 0.8, 3));
        assert!((0..5_000).all(|_| s.sample(&logits) < 2));
    }

    #[test]
    fn a_seed_reproduces_its_sequence() {
        let logits: Vec<f32> = (0..50).map(|i| (i as f32 * 0.37).sin()).collect();
        let draw = |seed| {
            let mut s = Sampler::new(params(1.0, 0, 1.0, seed));
            (0..64).map(|_| s.sample(&logits)).collect::<Vec<_>>()
        };
        assert_eq!(draw(11), draw(11));
        assert_ne!(draw(11), draw(12));
    }
}
