//! ModelFactory's first step: LoRA fine-tuning of a `tributary-model` base on burn's autodiff
//! (AdamW, next-token cross-entropy), and the per-example gradients of that loss with respect to
//! the LoRA factors alone, which gradient attribution projects and stores.
//!
//! The model code is the serving code: the factors go through [`Model::forward_dense`], so a
//! fine-tuned adapter written as PEFT files loads back into the server unchanged.

use std::path::Path;

use burn::module::{Module, Param};
use burn::optim::{AdamWConfig, GradientsParams, Optimizer};
use burn::tensor::backend::{AutodiffBackend, Backend};
use burn::tensor::{Int, Tensor, TensorData, activation};
use rand::{Rng, SeedableRng};
use tributary_model::{
    AdapterWeights, DenseLora, LoraConfig, LoraPair, Model, ModelConfig, ModelError, SgmvBackend,
    Target, TargetDims,
};

#[derive(Debug, thiserror::Error)]
pub enum FinetuneError {
    #[error(transparent)]
    Model(#[from] ModelError),
    #[error("no training examples: every contribution was shorter than two tokens")]
    NoExamples,
    #[error("example {index} has {len} tokens; a next-token loss needs at least two")]
    ShortExample { index: usize, len: usize },
    #[error("token {token} of example {index} is outside the vocabulary ({vocab} tokens)")]
    BadToken {
        index: usize,
        token: u32,
        vocab: usize,
    },
    #[error("the loss became {0} at step {1}: lower the learning rate")]
    Diverged(f32, usize),
    #[error("writing the adapter to {path}: {source}")]
    Io {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
}

/// The trainable factors, as a burn module so the optimizer can walk them. Kept in the key order
/// of [`Lora::keys`]: layer by layer, targets in [`Target::ALL`] order.
#[derive(Module, Debug)]
pub struct LoraFactors<B: Backend> {
    a: Vec<Param<Tensor<B, 2>>>,
    b: Vec<Param<Tensor<B, 2>>>,
}

impl<B: Backend> LoraFactors<B> {
    /// `(A, B)` of each pair, in key order.
    pub fn pairs(&self) -> impl Iterator<Item = (Tensor<B, 2>, Tensor<B, 2>)> + '_ {
        self.a.iter().zip(&self.b).map(|(a, b)| (a.val(), b.val()))
    }
}

/// A LoRA adapter under training (or loaded for gradients): its factors and what they mean.
#[derive(Debug, Clone)]
pub struct Lora<B: Backend> {
    pub factors: LoraFactors<B>,
    /// `(layer, target)` of each factor pair, in order.
    pub keys: Vec<(usize, Target)>,
    pub config: LoraConfig,
}

/// The shape of a new adapter.
#[derive(Debug, Clone, PartialEq)]
pub struct LoraSpec {
    pub rank: usize,
    pub alpha: f64,
    pub targets: Vec<Target>,
}

impl Default for LoraSpec {
    /// Rank 8 on every projection: the tiny models of the tests have few weights per layer, and
    /// attribution wants gradients with room to tell examples apart.
    fn default() -> Self {
        Self {
            rank: 8,
            alpha: 16.0,
            targets: Target::ALL.to_vec(),
        }
    }
}

impl<B: Backend> Lora<B> {
    /// PEFT's initialisation: A uniform in ±1/√in (kaiming-uniform with a = √5), B zero, so the
    /// adapter starts as the base model. Seeded: the same spec and seed give the same factors.
    pub fn init(base: &ModelConfig, spec: &LoraSpec, seed: u64, device: &B::Device) -> Self {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        let targets: Vec<Target> = Target::ALL
            .into_iter()
            .filter(|t| spec.targets.contains(t))
            .collect();
        let r = spec.rank;
        let mut pairs = Vec::new();
        for layer in 0..base.num_layers {
            for &target in &targets {
                let (fan_in, fan_out) = target.dims(base);
                let bound = 1.0 / (fan_in as f32).sqrt();
                let a = (0..r * fan_in)
                    .map(|_| rng.random_range(-bound..bound))
                    .collect();
                pairs.push(LoraPair {
                    layer,
                    target,
                    a,
                    b: vec![0.0; fan_out * r],
                });
            }
        }
        let config = LoraConfig {
            rank: r,
            alpha: spec.alpha,
            use_rslora: false,
            targets,
        };
        Self::from_pairs(&pairs, config, base, device)
    }

    /// An existing adapter's factors (the fine-tuned one, whose gradients attribution takes).
    pub fn from_adapter(adapter: &AdapterWeights, base: &ModelConfig, device: &B::Device) -> Self {
        let mut pairs = adapter.pairs.clone();
        pairs.sort_by_key(|p| (p.layer, p.target));
        Self::from_pairs(&pairs, adapter.config.clone(), base, device)
    }

    fn from_pairs(
        pairs: &[LoraPair],
        config: LoraConfig,
        base: &ModelConfig,
        device: &B::Device,
    ) -> Self {
        let r = config.rank;
        let mut a = Vec::with_capacity(pairs.len());
        let mut b = Vec::with_capacity(pairs.len());
        let mut keys = Vec::with_capacity(pairs.len());
        for p in pairs {
            let (fan_in, fan_out) = p.target.dims(base);
            let tensor = |v: &[f32], shape: [usize; 2]| {
                Param::from_tensor(Tensor::from_data(
                    TensorData::new(v.to_vec(), shape),
                    device,
                ))
            };
            a.push(tensor(&p.a, [r, fan_in]));
            b.push(tensor(&p.b, [fan_out, r]));
            keys.push((p.layer, p.target));
        }
        Self {
            factors: LoraFactors { a, b },
            keys,
            config,
        }
    }

    /// The factors as the model's dense LoRA input.
    pub fn dense(&self) -> DenseLora<B> {
        DenseLora {
            scale: self.config.scale() as f32,
            pairs: self
                .keys
                .iter()
                .zip(self.factors.a.iter().zip(&self.factors.b))
                .map(|(&key, (a, b))| (key, a.val(), b.val()))
                .collect(),
        }
    }

    /// Number of trainable values: the length of a per-example gradient.
    pub fn num_params(&self) -> usize {
        self.factors
            .a
            .iter()
            .chain(&self.factors.b)
            .map(|p| p.val().dims().iter().product::<usize>())
            .sum()
    }

    /// The factors read back as an adapter (PEFT layout), named `name`.
    pub fn to_adapter(&self, name: &str) -> AdapterWeights {
        let host = |t: Tensor<B, 2>| -> Vec<f32> {
            t.into_data()
                .convert::<f32>()
                .to_vec()
                .expect("f32 data converts to f32")
        };
        let pairs = self
            .keys
            .iter()
            .zip(self.factors.a.iter().zip(&self.factors.b))
            .map(|(&(layer, target), (a, b))| LoraPair {
                layer,
                target,
                a: host(a.val()),
                b: host(b.val()),
            })
            .collect();
        AdapterWeights {
            name: name.to_owned(),
            config: self.config.clone(),
            pairs,
        }
    }
}

/// Writes `adapter` as a PEFT folder (`adapter_config.json`, `adapter_model.safetensors`) at
/// `dir`, through a temporary sibling renamed into place, so a reader never sees half an adapter.
pub fn save_adapter(adapter: &AdapterWeights, dir: &Path) -> Result<(), FinetuneError> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| FinetuneError::Io { path, source }
    };
    let (config, tensors) = adapter.to_peft_bytes();
    let name = dir
        .file_name()
        .map_or_else(|| "adapter".into(), |n| n.to_string_lossy().into_owned());
    let tmp = dir.with_file_name(format!(".{name}.tmp-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    std::fs::create_dir_all(&tmp).map_err(io(&tmp))?;
    std::fs::write(tmp.join("adapter_config.json"), config).map_err(io(&tmp))?;
    std::fs::write(tmp.join("adapter_model.safetensors"), tensors).map_err(io(&tmp))?;
    if dir.exists() {
        std::fs::remove_dir_all(dir).map_err(io(dir))?;
    }
    std::fs::rename(&tmp, dir).map_err(io(dir))?;
    Ok(())
}

/// Cuts a contribution's tokens into training examples of at most `len` tokens; a tail shorter
/// than two tokens (no next-token pair) is dropped.
pub fn windows(tokens: &[u32], len: usize) -> Vec<Vec<u32>> {
    tokens
        .chunks(len.max(2))
        .filter(|c| c.len() >= 2)
        .map(<[u32]>::to_vec)
        .collect()
}

/// The mean next-token cross-entropy of each sequence's own positions, averaged over all of a
/// batch's predicted tokens. Sequences are right-padded; padding is masked out of the loss (and,
/// with causal attention, never seen by real positions).
pub fn batch_loss<B: SgmvBackend>(
    model: &Model<B>,
    lora: &DenseLora<B>,
    examples: &[&[u32]],
) -> Result<Tensor<B, 1>, FinetuneError> {
    let device = model.device();
    let batch = examples.len();
    let seq = examples.iter().map(|e| e.len()).max().unwrap_or(0);
    let vocab = model.config.vocab_size;
    let mut ids = vec![0i32; batch * seq];
    let mut targets = vec![0i32; batch * (seq - 1)];
    let mut mask = vec![0f32; batch * (seq - 1)];
    for (b, e) in examples.iter().enumerate() {
        for (i, &t) in e.iter().enumerate() {
            ids[b * seq + i] = t as i32;
            if i > 0 {
                targets[b * (seq - 1) + i - 1] = t as i32;
                mask[b * (seq - 1) + i - 1] = 1.0;
            }
        }
    }
    let count: f32 = mask.iter().sum();
    let ids = Tensor::<B, 2, Int>::from_data(TensorData::new(ids, [batch, seq]), device);
    let targets =
        Tensor::<B, 3, Int>::from_data(TensorData::new(targets, [batch, seq - 1, 1]), device);
    let mask = Tensor::<B, 2>::from_data(TensorData::new(mask, [batch, seq - 1]), device);
    let logits = model
        .forward_dense(ids, lora)?
        .slice([0..batch, 0..seq - 1, 0..vocab]);
    let log_probs = activation::log_softmax(logits, 2)
        .gather(2, targets)
        .reshape([batch, seq - 1]);
    Ok((log_probs * mask).sum().neg() / count)
}

fn check_examples(examples: &[Vec<u32>], vocab: usize) -> Result<(), FinetuneError> {
    if examples.is_empty() {
        return Err(FinetuneError::NoExamples);
    }
    for (index, e) in examples.iter().enumerate() {
        if e.len() < 2 {
            return Err(FinetuneError::ShortExample {
                index,
                len: e.len(),
            });
        }
        if let Some(&token) = e.iter().find(|&&t| t as usize >= vocab) {
            return Err(FinetuneError::BadToken {
                index,
                token,
                vocab,
            });
        }
    }
    Ok(())
}

/// How to fine-tune.
#[derive(Debug, Clone, PartialEq)]
pub struct TrainParams {
    pub lora: LoraSpec,
    pub epochs: usize,
    pub batch_size: usize,
    pub learning_rate: f64,
    pub weight_decay: f32,
    /// Seeds the factors' initialisation and the order examples are visited in.
    pub seed: u64,
}

impl Default for TrainParams {
    fn default() -> Self {
        Self {
            lora: LoraSpec::default(),
            epochs: 3,
            batch_size: 8,
            learning_rate: 1e-2,
            weight_decay: 1e-4,
            seed: 0,
        }
    }
}

/// One optimizer step done: `(step, of steps, batch loss)`.
pub type Progress<'a> = &'a mut dyn FnMut(usize, usize, f32);

/// Fine-tunes a new adapter on `examples` (token ids each) with AdamW. Deterministic: the same
/// base, examples and params give the same factors bit for bit on one machine (NdArray; the GPU
/// backends as far as their kernels are).
pub fn train<B: AutodiffBackend + SgmvBackend>(
    model: &Model<B>,
    examples: &[Vec<u32>],
    params: &TrainParams,
    progress: Progress<'_>,
) -> Result<Lora<B>, FinetuneError> {
    check_examples(examples, model.config.vocab_size)?;
    let mut lora = Lora::<B>::init(&model.config, &params.lora, params.seed, model.device());
    let mut optim = AdamWConfig::new()
        .with_weight_decay(params.weight_decay)
        .init::<B, LoraFactors<B>>();
    let batch = params.batch_size.max(1);
    let per_epoch = examples.len().div_ceil(batch);
    let total = per_epoch * params.epochs;
    let keys: Vec<u64> = examples.iter().map(|e| content_key(e)).collect();
    let mut order: Vec<usize> = (0..examples.len()).collect();
    let mut step = 0;
    for epoch in 0..params.epochs {
        // Each epoch visits examples sorted by a seeded hash of their tokens: a shuffle that
        // leaves the others in the same order when examples are removed, so re-tuning on a
        // subset (attribution's counterfactuals and datamodels) changes only what was removed.
        let salt = mix(params.seed ^ mix(epoch as u64));
        order.sort_by_key(|&i| (mix(keys[i] ^ salt), i));
        for chunk in order.chunks(batch) {
            let items: Vec<&[u32]> = chunk.iter().map(|&i| examples[i].as_slice()).collect();
            let loss = batch_loss(model, &lora.dense(), &items)?;
            let value = scalar(&loss);
            if !value.is_finite() {
                return Err(FinetuneError::Diverged(value, step));
            }
            let grads = GradientsParams::from_grads(loss.backward(), &lora.factors);
            lora.factors = optim.step(params.learning_rate, lora.factors, grads);
            step += 1;
            progress(step, total, value);
        }
    }
    Ok(lora)
}

/// splitmix64's finaliser: a strong 64-bit mix, the counter-based generator behind the epoch
/// order here and attribution's random projections.
pub fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// A 64-bit key of an example's tokens.
fn content_key(tokens: &[u32]) -> u64 {
    tokens
        .iter()
        .fold(0x7121_b07a_u64, |h, &t| mix(h ^ u64::from(t)))
}

fn scalar<B: Backend>(t: &Tensor<B, 1>) -> f32 {
    t.clone()
        .into_data()
        .convert::<f32>()
        .to_vec::<f32>()
        .expect("f32 data converts to f32")[0]
}

/// The mean next-token loss of one example under `lora` (no gradient kept).
pub fn example_loss<B: SgmvBackend>(
    model: &Model<B>,
    lora: &DenseLora<B>,
    tokens: &[u32],
) -> Result<f32, FinetuneError> {
    check_examples(
        std::slice::from_ref(&tokens.to_vec()),
        model.config.vocab_size,
    )?;
    Ok(scalar(&batch_loss(model, lora, &[tokens])?))
}

/// The gradient of one example's mean next-token loss with respect to every LoRA factor,
/// flattened in key order (per pair: A row-major, then B), on the inner (non-autodiff) device.
/// Computed with a batch of one, so it does not depend on which other examples exist.
pub fn example_gradient<B: AutodiffBackend + SgmvBackend>(
    model: &Model<B>,
    lora: &Lora<B>,
    tokens: &[u32],
) -> Result<Tensor<B::InnerBackend, 1>, FinetuneError> {
    check_examples(
        std::slice::from_ref(&tokens.to_vec()),
        model.config.vocab_size,
    )?;
    let dense = lora.dense();
    let loss = batch_loss(model, &dense, &[tokens])?;
    let grads = loss.backward();
    let mut parts = Vec::with_capacity(2 * dense.pairs.len());
    for (_, a, b) in &dense.pairs {
        for t in [a, b] {
            let n = t.dims().iter().product::<usize>();
            let g = t
                .grad(&grads)
                .map(|g| g.reshape([n]))
                .unwrap_or_else(|| Tensor::zeros([n], &t.device()));
            parts.push(g);
        }
    }
    Ok(Tensor::cat(parts, 0))
}
