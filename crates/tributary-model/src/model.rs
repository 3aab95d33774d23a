//! The Llama-family decoder (Llama, Qwen2) on any burn backend, with LoRA adapters applied
//! unmerged, so one set of base weights serves any number of adapters.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use burn::tensor::{Int, Tensor, TensorData, activation, backend::Backend};
use tributary_quant::QuantLinear;
use tributary_sgmv::{
    AdapterId, AdapterMatrices, AdapterPool, LoraMatrices, PoolOptions, Segment, SgmvBackend,
};

use crate::config::ModelConfig;
use crate::error::ModelError;
use crate::kv::{PagedKv, SeqKv};
use crate::lora::{AdapterWeights, Target, TargetDims};
use crate::rope::Rope;
use crate::weights::WeightFiles;

/// y = x·Wᵀ (+ b).
#[derive(Debug, Clone)]
pub(crate) struct Linear<B: Backend> {
    pub(crate) weight: Weight<B>,
    pub(crate) bias: Option<Tensor<B, 1>>,
}

#[derive(Debug, Clone)]
pub(crate) enum Weight<B: Backend> {
    /// Wᵀ stored so the forward pass is a plain matmul (safetensors checkpoints).
    Dense(Tensor<B, 2>),
    /// W kept in its GGUF block format, dequantized inside the product (GGUF checkpoints).
    Quant(Arc<dyn QuantLinear<B>>),
}

impl<B: Backend> Linear<B> {
    fn load(
        weights: &WeightFiles,
        name: &str,
        (fan_in, fan_out): (usize, usize),
        bias: bool,
        device: &B::Device,
    ) -> Result<Self, ModelError> {
        let w = weights.f32(&format!("{name}.weight"), &[fan_out, fan_in])?;
        let weight = Weight::Dense(transposed::<B>(&w, [fan_out, fan_in], device));
        let bias = if bias {
            let b = weights.f32(&format!("{name}.bias"), &[fan_out])?;
            Some(Tensor::from_data(TensorData::new(b, [fan_out]), device))
        } else {
            None
        };
        Ok(Self { weight, bias })
    }

    fn forward(&self, x: Tensor<B, 2>) -> Result<Tensor<B, 2>, ModelError> {
        let y = match &self.weight {
            Weight::Dense(weight_t) => x.matmul(weight_t.clone()),
            Weight::Quant(w) => w.forward(x)?,
        };
        Ok(match &self.bias {
            Some(b) => y + b.clone().unsqueeze(),
            None => y,
        })
    }
}

/// The token embedding: a dense table, or the quantized matrix (which a tied checkpoint also
/// uses as its output projection, so it is held once).
#[derive(Debug, Clone)]
pub(crate) enum Embedding<B: Backend> {
    Dense(Tensor<B, 2>),
    Quant(Arc<dyn QuantLinear<B>>),
}

impl<B: Backend> Embedding<B> {
    fn lookup(&self, ids: Tensor<B, 1, Int>) -> Result<Tensor<B, 2>, ModelError> {
        match self {
            Self::Dense(table) => Ok(table.clone().select(0, ids)),
            Self::Quant(w) => Ok(w.gather(ids)?),
        }
    }
}

/// An adapter resident in a model's pool, ready to pass to [`Model::forward`]. Clones share the
/// residency; the pool frees the adapter's pages when the last clone is dropped.
#[derive(Debug, Clone)]
pub struct Adapter<B: SgmvBackend> {
    pub name: String,
    pub rank: usize,
    resident: Arc<Resident<B::Pool>>,
}

#[derive(Debug)]
struct Resident<P: AdapterPool> {
    pool: P,
    id: AdapterId,
    /// The model whose pool holds the adapter; another model's pool would not know the id.
    model: u64,
}

impl<P: AdapterPool> Drop for Resident<P> {
    fn drop(&mut self) {
        self.pool.remove(self.id);
    }
}

/// Which adapter each sequence of a batch runs with.
#[derive(Debug)]
pub enum Adapters<'a, B: SgmvBackend> {
    /// The base model alone.
    None,
    /// One adapter for every sequence.
    All(&'a Adapter<B>),
    /// One entry per sequence, in batch order; `None` runs that sequence on the base model.
    PerSequence(&'a [Option<&'a Adapter<B>>]),
}

impl<B: SgmvBackend> Clone for Adapters<'_, B> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<B: SgmvBackend> Copy for Adapters<'_, B> {}

impl<'a, B: SgmvBackend> From<Option<&'a Adapter<B>>> for Adapters<'a, B> {
    fn from(adapter: Option<&'a Adapter<B>>) -> Self {
        adapter.map_or(Adapters::None, Adapters::All)
    }
}

fn target_index(target: Target) -> usize {
    Target::ALL
        .iter()
        .position(|&t| t == target)
        .expect("every target is in ALL")
}

/// The projection number SGMV keys an adapter's pairs by.
fn projection_key(layer: usize, target: Target) -> u32 {
    (layer * Target::ALL.len() + target_index(target)) as u32
}

#[derive(Debug, Clone)]
pub(crate) struct Layer<B: SgmvBackend> {
    pub(crate) input_norm: Tensor<B, 1>,
    pub(crate) post_attention_norm: Tensor<B, 1>,
    /// Indexed like `Target::ALL`: q, k, v, o, gate, up, down.
    pub(crate) projections: [Linear<B>; 7],
}

impl<B: SgmvBackend> Layer<B> {
    /// The base projection, plus each segment's LoRA delta through SGMV when the batch carries
    /// adapters.
    fn project(
        &self,
        layer: usize,
        target: Target,
        x: Tensor<B, 2>,
        lora: Option<&Delta<'_, B>>,
    ) -> Result<Tensor<B, 2>, ModelError> {
        let base = self.projections[target_index(target)].forward(x.clone())?;
        match lora {
            None => Ok(base),
            Some(Delta::Sgmv(lora)) => Ok(B::sgmv(
                lora.pool,
                x,
                base,
                &lora.segments,
                projection_key(layer, target),
            )?),
            Some(Delta::Dense(lora)) => Ok(match lora.pair(layer, target) {
                Some((a, b)) => {
                    base + x
                        .matmul(a.clone().transpose())
                        .matmul(b.clone().transpose())
                        * lora.scale
                }
                None => base,
            }),
        }
    }
}

/// A layer's projections, loaded in `Target::ALL` order (the order [`Layer::projections`] is
/// indexed in).
pub(crate) fn projections<B: Backend>(
    load: impl FnMut(Target) -> Result<Linear<B>, ModelError>,
) -> Result<[Linear<B>; 7], ModelError> {
    let all: Vec<Linear<B>> = Target::ALL
        .into_iter()
        .map(load)
        .collect::<Result<_, _>>()?;
    Ok(all
        .try_into()
        .unwrap_or_else(|_| unreachable!("Target::ALL names seven projections")))
}

/// How a forward pass adds LoRA deltas to the base projections.
enum Delta<'a, B: SgmvBackend> {
    /// Resident adapters, per segment of rows (serving).
    Sgmv(Lora<'a, B>),
    /// One set of factors for every row, as plain tensors (fine-tuning, gradients).
    Dense(&'a DenseLora<B>),
}

/// LoRA factors held as ordinary tensors and applied to every row as `x·Aᵀ·Bᵀ·scale`: the
/// fine-tuning and gradient path, where the factors are what autodiff differentiates. Serving
/// keeps using the adapter pool and SGMV.
#[derive(Debug, Clone)]
pub struct DenseLora<B: Backend> {
    pub scale: f32,
    pub pairs: Vec<DensePair<B>>,
}

/// `((layer, target), A [r, in], B [out, r])`, A and B as PEFT stores them.
pub type DensePair<B> = ((usize, Target), Tensor<B, 2>, Tensor<B, 2>);

impl<B: Backend> DenseLora<B> {
    fn pair(&self, layer: usize, target: Target) -> Option<(&Tensor<B, 2>, &Tensor<B, 2>)> {
        self.pairs
            .iter()
            .find(|(key, _, _)| *key == (layer, target))
            .map(|(_, a, b)| (a, b))
    }
}

/// A forward pass's adapters, resolved to pool segments over its `[batch·seq]` rows.
struct Lora<'a, B: SgmvBackend> {
    pool: &'a B::Pool,
    segments: Vec<Segment>,
}

/// Keys and values of the positions seen so far, per layer: [batch, kv_heads, len, head_dim].
#[derive(Debug, Clone)]
pub struct KvCache<B: Backend> {
    layers: Vec<Option<(Tensor<B, 4>, Tensor<B, 4>)>>,
    len: usize,
}

impl<B: Backend> KvCache<B> {
    pub fn new(num_layers: usize) -> Self {
        Self {
            layers: vec![None; num_layers],
            len: 0,
        }
    }

    /// Number of positions cached.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Appends a step's keys and values ([batch, kv_heads, seq, head_dim]) to layer `layer`;
    /// returns all of them so far.
    fn append(
        &mut self,
        layer: usize,
        k: Tensor<B, 4>,
        v: Tensor<B, 4>,
    ) -> (Tensor<B, 4>, Tensor<B, 4>) {
        let (k, v) = match self.layers[layer].take() {
            Some((pk, pv)) => (Tensor::cat(vec![pk, k], 2), Tensor::cat(vec![pv, v], 2)),
            None => (k, v),
        };
        self.layers[layer] = Some((k.clone(), v.clone()));
        (k, v)
    }
}

/// A loaded base model on one device.
#[derive(Debug, Clone)]
pub struct Model<B: SgmvBackend> {
    pub config: ModelConfig,
    pub(crate) embed: Embedding<B>,
    pub(crate) layers: Vec<Layer<B>>,
    pub(crate) norm: Tensor<B, 1>,
    pub(crate) lm_head: Linear<B>,
    pub(crate) rope: Rope,
    pub(crate) device: B::Device,
    pub(crate) pool: B::Pool,
    /// Tells this model's adapters from another's (see [`Resident::model`]).
    pub(crate) id: u64,
    /// Bytes the weights occupy in memory, by our own accounting (see [`Model::weight_bytes`]).
    pub(crate) weight_bytes: u64,
}

pub(crate) static NEXT_MODEL_ID: AtomicU64 = AtomicU64::new(0);

impl<B: SgmvBackend> Model<B> {
    /// Loads `config.json` and `model.safetensors` (or its shards) from a Hugging Face folder.
    pub fn load(dir: &Path, device: &B::Device) -> Result<Self, ModelError> {
        let config = ModelConfig::from_file(&dir.join("config.json"))?;
        let weights = WeightFiles::open_dir(dir, "model")?;
        Self::from_weights(config, &weights, device)
    }

    pub fn from_weights(
        config: ModelConfig,
        weights: &WeightFiles,
        device: &B::Device,
    ) -> Result<Self, ModelError> {
        Self::from_weights_with_pool(config, weights, device, PoolOptions::default())
    }

    /// Like [`Model::from_weights`], with the adapter pool sized by `pool`.
    pub fn from_weights_with_pool(
        config: ModelConfig,
        weights: &WeightFiles,
        device: &B::Device,
        pool: PoolOptions,
    ) -> Result<Self, ModelError> {
        let c = &config;
        let vector = |name: &str, len: usize| -> Result<Tensor<B, 1>, ModelError> {
            Ok(Tensor::from_data(
                TensorData::new(weights.f32(name, &[len])?, [len]),
                device,
            ))
        };
        let embed = tensor2::<B>(
            weights.f32("model.embed_tokens.weight", &[c.vocab_size, c.hidden_size])?,
            [c.vocab_size, c.hidden_size],
            device,
        );
        let mut layers = Vec::with_capacity(c.num_layers);
        for i in 0..c.num_layers {
            let prefix = format!("model.layers.{i}");
            let projection = |target: Target| {
                let bias = c.qkv_bias && matches!(target, Target::Q | Target::K | Target::V);
                Linear::load(
                    weights,
                    &format!("{prefix}.{}", target.path()),
                    target.dims(c),
                    bias,
                    device,
                )
            };
            layers.push(Layer {
                input_norm: vector(&format!("{prefix}.input_layernorm.weight"), c.hidden_size)?,
                post_attention_norm: vector(
                    &format!("{prefix}.post_attention_layernorm.weight"),
                    c.hidden_size,
                )?,
                projections: projections(projection)?,
            });
        }
        // Tied checkpoints (SmolLM) may still carry a copy of lm_head; the config decides.
        let head_name = if c.tie_word_embeddings {
            "model.embed_tokens.weight"
        } else {
            "lm_head.weight"
        };
        let lm_head = Linear {
            weight: Weight::Dense(transposed::<B>(
                &weights.f32(head_name, &[c.vocab_size, c.hidden_size])?,
                [c.vocab_size, c.hidden_size],
                device,
            )),
            bias: None,
        };
        Ok(Self {
            norm: vector("model.norm.weight", c.hidden_size)?,
            rope: Rope::new(&config),
            embed: Embedding::Dense(embed),
            layers,
            lm_head,
            device: device.clone(),
            pool: B::new_pool(device, pool)?,
            id: NEXT_MODEL_ID.fetch_add(1, Ordering::Relaxed),
            weight_bytes: dense_weight_bytes(c),
            config,
        })
    }

    pub fn device(&self) -> &B::Device {
        &self.device
    }

    /// Bytes the base weights occupy in memory: the f32 tensors of a safetensors checkpoint; for
    /// a GGUF, the quantized tensors as they lie in the mapped file, plus the copies the loader
    /// made (q and k rows put back in Hugging Face's order) and the norms as f32.
    pub fn weight_bytes(&self) -> u64 {
        self.weight_bytes
    }

    /// Uploads an adapter validated against this model's config (see [`AdapterWeights`]) into
    /// the model's adapter pool.
    pub fn adapter(&self, weights: &AdapterWeights) -> Result<Adapter<B>, ModelError> {
        let err = |source| ModelError::Adapter {
            name: weights.name.clone(),
            source,
        };
        let scale = weights.config.scale() as f32;
        let mut matrices = AdapterMatrices::new();
        for pair in &weights.pairs {
            let m = LoraMatrices::new(
                pair.target.dims(&self.config),
                weights.config.rank,
                pair.a.clone(),
                pair.b.clone(),
                scale,
            )
            .map_err(err)?;
            matrices.insert(projection_key(pair.layer, pair.target), m);
        }
        let id = self.pool.insert(&matrices).map_err(err)?;
        Ok(Adapter {
            name: weights.name.clone(),
            rank: weights.config.rank,
            resident: Arc::new(Resident {
                pool: self.pool.clone(),
                id,
                model: self.id,
            }),
        })
    }

    /// Bytes of device memory the resident adapters take.
    pub fn adapter_bytes(&self) -> u64 {
        self.pool.resident_bytes()
    }

    /// A copy of this model with `adapter` folded into its weights (W + s·B·A). The copy shares
    /// this model's adapter pool. Refused for quantized weights: folding a delta in would mean
    /// expanding the layer to f32 (or requantizing it, which changes the base); serve the adapter
    /// unmerged instead, through SGMV.
    pub fn merged(&self, adapter: &AdapterWeights) -> Result<Self, ModelError> {
        let scale = adapter.config.scale() as f32;
        let r = adapter.config.rank;
        let mut merged = self.clone();
        for pair in &adapter.pairs {
            let (fan_in, fan_out) = pair.target.dims(&self.config);
            // s·(B·A)ᵀ = Aᵀ·(s·Bᵀ)
            let a_t = transposed::<B>(&pair.a, [r, fan_in], &self.device);
            let b_t = transposed::<B>(&pair.b, [fan_out, r], &self.device) * scale;
            match &mut merged.layers[pair.layer].projections[target_index(pair.target)].weight {
                Weight::Dense(weight_t) => *weight_t = weight_t.clone() + a_t.matmul(b_t),
                Weight::Quant(_) => {
                    return Err(ModelError::MergeQuantized {
                        adapter: adapter.name.clone(),
                        layer: pair.layer,
                        target: pair.target.path(),
                    });
                }
            }
        }
        Ok(merged)
    }

    pub fn new_cache(&self) -> KvCache<B> {
        KvCache::new(self.config.num_layers)
    }

    /// Runs `tokens` ([batch, seq], positions continuing from the cache) and returns the logits
    /// of every position, [batch, seq, vocab].
    pub fn forward(
        &self,
        tokens: Tensor<B, 2, Int>,
        cache: &mut KvCache<B>,
        adapters: Adapters<'_, B>,
    ) -> Result<Tensor<B, 3>, ModelError> {
        let [batch, seq] = tokens.dims();
        let lora = self.lora(adapters, batch, seq)?.map(Delta::Sgmv);
        let h = self.hidden(tokens, cache, lora.as_ref())?;
        Ok(self
            .lm_head
            .forward(h)?
            .reshape([batch, seq, self.config.vocab_size]))
    }

    /// The logits of every position of `tokens` ([batch, seq] from position 0), [batch, seq,
    /// vocab], with `lora` applied densely: the pass that fine-tuning and per-example gradients
    /// differentiate (under burn's `Autodiff`) with respect to the factors.
    pub fn forward_dense(
        &self,
        tokens: Tensor<B, 2, Int>,
        lora: &DenseLora<B>,
    ) -> Result<Tensor<B, 3>, ModelError> {
        let [batch, seq] = tokens.dims();
        let mut cache = self.new_cache();
        let h = self.hidden(tokens, &mut cache, Some(&Delta::Dense(lora)))?;
        Ok(self
            .lm_head
            .forward(h)?
            .reshape([batch, seq, self.config.vocab_size]))
    }

    /// Like [`Model::forward`], but only the last position's logits, [batch, vocab]: all that
    /// generation needs, and it skips the vocabulary projection of every other position.
    pub fn forward_last(
        &self,
        tokens: Tensor<B, 2, Int>,
        cache: &mut KvCache<B>,
        adapters: Adapters<'_, B>,
    ) -> Result<Tensor<B, 2>, ModelError> {
        let [batch, seq] = tokens.dims();
        let hidden = self.config.hidden_size;
        let lora = self.lora(adapters, batch, seq)?.map(Delta::Sgmv);
        let h = self
            .hidden(tokens, cache, lora.as_ref())?
            .reshape([batch, seq, hidden])
            .slice([0..batch, seq - 1..seq, 0..hidden])
            .reshape([batch, hidden]);
        self.lm_head.forward(h)
    }

    /// Resolves a batch's adapters to SGMV segments over its `batch · seq` rows (sequence b owns
    /// rows `b·seq .. (b+1)·seq`); `None` when no sequence has an adapter.
    fn lora(
        &self,
        adapters: Adapters<'_, B>,
        batch: usize,
        seq: usize,
    ) -> Result<Option<Lora<'_, B>>, ModelError> {
        let per_sequence: Vec<Option<&Adapter<B>>> = match adapters {
            Adapters::None => return Ok(None),
            Adapters::All(a) => vec![Some(a); batch],
            Adapters::PerSequence(list) if list.len() == batch => list.to_vec(),
            Adapters::PerSequence(list) => {
                return Err(ModelError::Generation(format!(
                    "{} adapters given for a batch of {batch} sequences",
                    list.len()
                )));
            }
        };
        self.lora_rows(&per_sequence, &vec![seq; batch])
    }

    /// SGMV segments for sequences of `lens[i]` consecutive rows each using `per_sequence[i]`.
    fn lora_rows(
        &self,
        per_sequence: &[Option<&Adapter<B>>],
        lens: &[usize],
    ) -> Result<Option<Lora<'_, B>>, ModelError> {
        if per_sequence.iter().all(Option::is_none) {
            return Ok(None);
        }
        let mut rows = Vec::with_capacity(lens.iter().sum());
        for (adapter, &len) in per_sequence.iter().zip(lens) {
            if let Some(a) = adapter
                && a.resident.model != self.id
            {
                return Err(ModelError::Generation(format!(
                    "adapter `{}` was loaded into another model",
                    a.name
                )));
            }
            rows.extend(std::iter::repeat_n(adapter.map(|a| a.resident.id), len));
        }
        Ok(Some(Lora {
            pool: &self.pool,
            segments: tributary_sgmv::segments(&rows),
        }))
    }

    /// The final-norm hidden states, [batch·seq, hidden].
    fn hidden(
        &self,
        tokens: Tensor<B, 2, Int>,
        cache: &mut KvCache<B>,
        lora: Option<&Delta<'_, B>>,
    ) -> Result<Tensor<B, 2>, ModelError> {
        let c = &self.config;
        let [batch, seq] = tokens.dims();
        let offset = cache.len;
        let (cos, sin) = self.rope.tables::<B>(offset, seq, &self.device);
        let mask = (seq > 1).then(|| causal_mask::<B>(seq, offset, &self.device));
        let h = self.embed.lookup(tokens.reshape([batch * seq]))?;
        let h = self.layers(h, lora, |i, q, k, v| {
            let heads =
                |t: Tensor<B, 2>, n: usize| t.reshape([batch, seq, n, c.head_dim]).swap_dims(1, 2);
            let q = apply_rope(heads(q, c.num_heads), &cos, &sin);
            let k = apply_rope(heads(k, c.num_kv_heads), &cos, &sin);
            let (k, v) = cache.append(i, k, heads(v, c.num_kv_heads));
            attention(q, k, v, c, mask.clone()).reshape([batch * seq, c.num_heads * c.head_dim])
        })?;
        cache.len += seq;
        Ok(h)
    }

    /// One step of sequences that each stand at their own position: a continuous-batching step,
    /// where some sequences prefill their prompt while others decode one token. All rows go
    /// through the projections (and SGMV, each sequence with its adapter) together; attention runs
    /// per sequence over its blocks of the paged cache `kv`. Reserves the blocks the step needs
    /// first (a full cache is `ModelError::KvFull` before any work). Returns each sequence's
    /// last-position logits, [n, vocab].
    pub fn forward_steps(
        &self,
        kv: &mut PagedKv<B>,
        steps: &mut [Step<'_, B>],
    ) -> Result<Tensor<B, 2>, ModelError> {
        let c = &self.config;
        if let Some(i) = steps.iter().position(|s| s.tokens.is_empty()) {
            return Err(ModelError::Generation(format!(
                "sequence {i} of the step has no tokens"
            )));
        }
        if let Some(bad) = steps
            .iter()
            .flat_map(|s| s.tokens)
            .find(|&&t| t as usize >= c.vocab_size)
        {
            return Err(ModelError::Generation(format!(
                "token {bad} is outside the vocabulary ({} tokens)",
                c.vocab_size
            )));
        }
        let lens: Vec<usize> = steps.iter().map(|s| s.tokens.len()).collect();
        for step in steps.iter_mut() {
            kv.reserve(step.seq, step.tokens.len())?;
        }
        let adapters: Vec<Option<&Adapter<B>>> = steps.iter().map(|s| s.adapter).collect();
        let lora = self.lora_rows(&adapters, &lens)?.map(Delta::Sgmv);
        // Per sequence: its rows in the step, and its RoPE tables and mask at its own offset.
        let mut starts = Vec::with_capacity(steps.len());
        let mut at = 0;
        for &len in &lens {
            starts.push(at);
            at += len;
        }
        let total = at;
        let geometry: Vec<_> = steps
            .iter()
            .map(|s| {
                let (len, offset) = (s.tokens.len(), s.seq.len());
                let (cos, sin) = self.rope.tables::<B>(offset, len, &self.device);
                let mask = (len > 1).then(|| causal_mask::<B>(len, offset, &self.device));
                (cos, sin, mask)
            })
            .collect();
        let ids: Vec<i32> = steps
            .iter()
            .flat_map(|s| s.tokens)
            .map(|&t| t as i32)
            .collect();
        let ids = Tensor::<B, 1, Int>::from_data(TensorData::new(ids, [total]), &self.device);
        let h = self.embed.lookup(ids)?;
        let h = self.layers(h, lora.as_ref(), |i, q, k, v| {
            let (q_dim, kv_dim) = (c.num_heads * c.head_dim, c.num_kv_heads * c.head_dim);
            let mut outputs = Vec::with_capacity(steps.len());
            for (s, step) in steps.iter_mut().enumerate() {
                let rows = starts[s]..starts[s] + lens[s];
                let (cos, sin, mask) = &geometry[s];
                let heads = |t: Tensor<B, 2>, width: usize, n: usize| {
                    t.slice([rows.clone(), 0..width])
                        .reshape([1, lens[s], n, c.head_dim])
                        .swap_dims(1, 2)
                };
                let q = apply_rope(heads(q.clone(), q_dim, c.num_heads), cos, sin);
                let k = apply_rope(heads(k.clone(), kv_dim, c.num_kv_heads), cos, sin);
                let v = heads(v.clone(), kv_dim, c.num_kv_heads);
                kv.write(i, step.seq, k, v);
                let (k, v) = kv.read(i, step.seq, step.seq.len() + lens[s]);
                outputs.push(attention(q, k, v, c, mask.clone()).reshape([lens[s], q_dim]));
            }
            Tensor::cat(outputs, 0)
        })?;
        for step in steps.iter_mut() {
            step.seq.advance(step.tokens.len());
        }
        let last: Vec<i32> = starts
            .iter()
            .zip(&lens)
            .map(|(&s, &l)| (s + l - 1) as i32)
            .collect();
        let last =
            Tensor::<B, 1, Int>::from_data(TensorData::new(last, [steps.len()]), &self.device);
        self.lm_head.forward(h.select(0, last))
    }

    /// The decoder stack over `[rows, hidden]` embeddings, with `attend(layer, q, k, v)` turning
    /// the rows' projections into their attention output `[rows, heads·head_dim]`; ends with the
    /// final norm.
    fn layers(
        &self,
        mut h: Tensor<B, 2>,
        lora: Option<&Delta<'_, B>>,
        mut attend: impl FnMut(usize, Tensor<B, 2>, Tensor<B, 2>, Tensor<B, 2>) -> Tensor<B, 2>,
    ) -> Result<Tensor<B, 2>, ModelError> {
        let c = &self.config;
        for (i, layer) in self.layers.iter().enumerate() {
            let x = rms_norm(h.clone(), &layer.input_norm, c.rms_norm_eps);
            let q = layer.project(i, Target::Q, x.clone(), lora)?;
            let k = layer.project(i, Target::K, x.clone(), lora)?;
            let v = layer.project(i, Target::V, x, lora)?;
            h = h + layer.project(i, Target::O, attend(i, q, k, v), lora)?;

            let x = rms_norm(h.clone(), &layer.post_attention_norm, c.rms_norm_eps);
            let gate = activation::silu(layer.project(i, Target::Gate, x.clone(), lora)?);
            let up = layer.project(i, Target::Up, x, lora)?;
            h = h + layer.project(i, Target::Down, gate * up, lora)?;
        }
        Ok(rms_norm(h, &self.norm, c.rms_norm_eps))
    }
}

/// One sequence's part of a [`Model::forward_steps`] step: its new tokens, its block table in
/// the paged cache, and its adapter.
#[derive(Debug)]
pub struct Step<'a, B: SgmvBackend> {
    pub tokens: &'a [u32],
    pub seq: &'a mut SeqKv,
    pub adapter: Option<&'a Adapter<B>>,
}

/// Bytes of the f32 tensors [`Model::from_weights`] makes: the embedding and, tied or not, a
/// transposed copy of it as the output projection; every projection (with its bias); the norms.
fn dense_weight_bytes(c: &ModelConfig) -> u64 {
    let projections: usize = Target::ALL
        .iter()
        .map(|&t| {
            let (fan_in, fan_out) = t.dims(c);
            let bias = c.qkv_bias && matches!(t, Target::Q | Target::K | Target::V);
            fan_in * fan_out + if bias { fan_out } else { 0 }
        })
        .sum();
    let per_layer = projections + 2 * c.hidden_size;
    let total = 2 * c.vocab_size * c.hidden_size + c.num_layers * per_layer + c.hidden_size;
    4 * total as u64
}

/// Uploads the transpose of a row-major `[rows, cols]` matrix as a contiguous `[cols, rows]`
/// tensor. Done once on the host at load time: a transposed *view* makes some backends (NdArray)
/// copy the whole matrix into contiguous form on every matmul, which dominated decode time.
fn transposed<B: Backend>(
    values: &[f32],
    [rows, cols]: [usize; 2],
    device: &B::Device,
) -> Tensor<B, 2> {
    let mut t = vec![0.0f32; values.len()];
    for (r, row) in values.chunks_exact(cols).enumerate() {
        for (c, &v) in row.iter().enumerate() {
            t[c * rows + r] = v;
        }
    }
    tensor2::<B>(t, [cols, rows], device)
}

fn tensor2<B: Backend>(values: Vec<f32>, shape: [usize; 2], device: &B::Device) -> Tensor<B, 2> {
    Tensor::from_data(TensorData::new(values, shape), device)
}

/// x · rsqrt(mean(x²) + ε) · w, over the last dimension (as transformers does, in f32).
fn rms_norm<B: Backend>(x: Tensor<B, 2>, weight: &Tensor<B, 1>, eps: f64) -> Tensor<B, 2> {
    let variance = x.clone().powi_scalar(2).mean_dim(1);
    x * (variance + eps).sqrt().recip() * weight.clone().unsqueeze()
}

/// Rotates the two halves of each head (transformers' `rotate_half` convention).
fn apply_rope<B: Backend>(x: Tensor<B, 4>, cos: &Tensor<B, 4>, sin: &Tensor<B, 4>) -> Tensor<B, 4> {
    let [b, h, s, d] = x.dims();
    let half = d / 2;
    let x1 = x.clone().slice([0..b, 0..h, 0..s, 0..half]);
    let x2 = x.clone().slice([0..b, 0..h, 0..s, half..d]);
    let rotated = Tensor::cat(vec![x2.neg(), x1], 3);
    x * cos.clone() + rotated * sin.clone()
}

/// Additive mask [1, 1, seq, offset + seq]: query i (at position offset + i) sees keys ≤ it.
fn causal_mask<B: Backend>(seq: usize, offset: usize, device: &B::Device) -> Tensor<B, 4> {
    let total = offset + seq;
    let values: Vec<f32> = (0..seq)
        .flat_map(|i| {
            (0..total).map(move |j| {
                if j <= offset + i {
                    0.0
                } else {
                    f32::NEG_INFINITY
                }
            })
        })
        .collect();
    Tensor::from_data(TensorData::new(values, [1, 1, seq, total]), device)
}

/// Scaled dot-product attention with grouped-query heads: each key/value head serves
/// `heads / kv_heads` query heads. Returns [batch, seq, heads·head_dim].
fn attention<B: Backend>(
    q: Tensor<B, 4>,
    k: Tensor<B, 4>,
    v: Tensor<B, 4>,
    c: &ModelConfig,
    mask: Option<Tensor<B, 4>>,
) -> Tensor<B, 3> {
    let [batch, heads, seq, d] = q.dims();
    let total = k.dims()[2];
    let group = heads / c.num_kv_heads;
    let repeat = |t: Tensor<B, 4>| {
        if group == 1 {
            t
        } else {
            t.unsqueeze_dim::<5>(2)
                .expand([batch, c.num_kv_heads, group, total, d])
                .reshape([batch, heads, total, d])
        }
    };
    let (k, v) = (repeat(k), repeat(v));
    let mut scores = q.matmul(k.swap_dims(2, 3)) * (1.0 / (d as f64).sqrt());
    if let Some(mask) = mask {
        scores = scores + mask;
    }
    let probs = activation::softmax(scores, 3);
    probs
        .matmul(v)
        .swap_dims(1, 2)
        .reshape([batch, seq, heads * d])
}
