//! A Llama-family model straight from a GGUF file, its weights kept in their block formats.
//!
//! Tensor names follow llama.cpp (`token_embd`, `blk.N.attn_q`, …); the config comes from the
//! file's `llama.*` / `qwen2.*` keys. llama.cpp's converter stores the rows of the q and k
//! projections interleaved for its rotary layout, and transformers puts them back on load; so do
//! we, by copying those two matrices' rows into Hugging Face's order (about a tenth of the
//! model). Every other matrix is a view of the shared file bytes: memory-mapped natively, the
//! fetched buffer in the browser.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use burn::tensor::{Tensor, TensorData};
use tributary_gguf::{Gguf, LlamaConfig, unpermute_qk_row};
use tributary_quant::{Bytes, QMatrix, QuantBackend};
use tributary_sgmv::{PoolOptions, SgmvBackend};

use crate::config::{Architecture, ModelConfig};
use crate::error::ModelError;
use crate::gguf_tokenizer::SpecialTokens;
use crate::lora::{Target, TargetDims};
use crate::model::{Embedding, Layer, Linear, Model, NEXT_MODEL_ID, Weight, projections};
use crate::rope::Rope;

fn file_name(gguf: &Gguf) -> PathBuf {
    gguf.path()
        .map(|p| p.to_path_buf())
        .unwrap_or_else(|| PathBuf::from("<gguf bytes>"))
}

impl ModelConfig {
    /// The model config a GGUF's metadata describes (and its EOS id from the tokenizer keys).
    pub fn from_gguf(gguf: &Gguf) -> Result<Self, ModelError> {
        Self::from_llama(&LlamaConfig::from_gguf(gguf)?, gguf)
    }

    fn from_llama(c: &LlamaConfig, gguf: &Gguf) -> Result<Self, ModelError> {
        let arch = c.architecture.name();
        if c.rope_dimension_count != c.head_dim {
            return Err(ModelError::field(
                file_name(gguf),
                format!("{arch}.rope.dimension_count"),
                format!(
                    "{} rotary dimensions of a {}-dimension head: partial rotary embeddings are \
                     not supported",
                    c.rope_dimension_count, c.head_dim
                ),
            ));
        }
        let specials = SpecialTokens::from_gguf(gguf)?;
        Ok(ModelConfig {
            architecture: match c.architecture {
                tributary_gguf::Architecture::Qwen2 => Architecture::Qwen2,
                _ => Architecture::Llama,
            },
            vocab_size: c.vocab_size,
            hidden_size: c.embedding_length,
            intermediate_size: c.feed_forward_length,
            num_layers: c.block_count,
            num_heads: c.head_count,
            num_kv_heads: c.head_count_kv,
            head_dim: c.head_dim,
            // As transformers does: the file's f32, widened.
            rms_norm_eps: f64::from(c.rms_norm_eps),
            rope_theta: f64::from(c.rope_freq_base),
            rope_scaling: None,
            tie_word_embeddings: c.tied_embeddings,
            qkv_bias: c.architecture == tributary_gguf::Architecture::Qwen2,
            max_position_embeddings: c.context_length,
            eos_token_ids: specials.eos.map(|(id, _)| id).into_iter().collect(),
        })
    }
}

/// llama.cpp's name for a projection's tensor in block `layer`.
fn tensor_name(layer: usize, target: Target) -> String {
    let short = match target {
        Target::Q => "attn_q",
        Target::K => "attn_k",
        Target::V => "attn_v",
        Target::O => "attn_output",
        Target::Gate => "ffn_gate",
        Target::Up => "ffn_up",
        Target::Down => "ffn_down",
    };
    format!("blk.{layer}.{short}")
}

impl<B: SgmvBackend + QuantBackend> Model<B> {
    /// Loads a Llama-family GGUF (see the module docs) with a default-sized adapter pool.
    pub fn from_gguf(gguf: Arc<Gguf>, device: &B::Device) -> Result<Self, ModelError> {
        Self::from_gguf_with_pool(gguf, device, PoolOptions::default())
    }

    pub fn from_gguf_with_pool(
        gguf: Arc<Gguf>,
        device: &B::Device,
        pool: PoolOptions,
    ) -> Result<Self, ModelError> {
        let llama = LlamaConfig::from_gguf(&gguf)?;
        let permutes = llama.architecture.qk_rows_permuted();
        let config = ModelConfig::from_llama(&llama, &gguf)?;
        let c = &config;
        let file = file_name(&gguf);
        let bytes: Bytes = gguf.clone();

        let info = |name: &str, dims: &[usize]| {
            let t = gguf.tensor(name).ok_or_else(|| ModelError::MissingTensor {
                tensor: name.to_owned(),
                searched: file.display().to_string(),
            })?;
            if t.dims()
                .iter()
                .map(|&d| d as usize)
                .ne(dims.iter().copied())
            {
                return Err(ModelError::tensor(
                    &file,
                    name,
                    format!("dimensions {:?}, expected {dims:?}", t.dims()),
                ));
            }
            Ok(t)
        };
        // A `[rows, cols]` matrix: GGUF lists the dimensions innermost first, `[cols, rows]`.
        let matrix = |name: &str, rows: usize, cols: usize| -> Result<QMatrix, ModelError> {
            let t = info(name, &[cols, rows])?;
            Ok(QMatrix::new(
                name,
                t.ggml_type(),
                rows,
                cols,
                bytes.clone(),
                gguf.tensor_range(t)?,
            )?)
        };
        let vector = |name: &str, len: usize| -> Result<Tensor<B, 1>, ModelError> {
            let t = info(name, &[len])?;
            Ok(Tensor::from_data(
                TensorData::new(gguf.dequantize(t)?, [len]),
                device,
            ))
        };

        let embed_matrix = matrix("token_embd.weight", c.vocab_size, c.hidden_size)?;
        let embed = B::quant_linear(embed_matrix, device)?;
        // What each backend stores, plus the file's own copy of the rows we reordered (read to
        // make the copy, so possibly resident while the file is mapped): an upper bound.
        let mut weight_bytes = embed.stored_bytes();
        let mut layers = Vec::with_capacity(c.num_layers);
        for i in 0..c.num_layers {
            let projection = |target: Target| -> Result<Linear<B>, ModelError> {
                let (fan_in, fan_out) = target.dims(c);
                let name = tensor_name(i, target);
                let mut w = matrix(&format!("{name}.weight"), fan_out, fan_in)?;
                if permutes && matches!(target, Target::Q | Target::K) {
                    weight_bytes += w.bytes().len() as u64;
                    w = w.permute_rows(|r| unpermute_qk_row(r, c.head_dim))?;
                }
                let w = B::quant_linear(w, device)?;
                weight_bytes += w.stored_bytes();
                let bias = if c.qkv_bias && matches!(target, Target::Q | Target::K | Target::V) {
                    Some(vector(&format!("{name}.bias"), fan_out)?)
                } else {
                    None
                };
                Ok(Linear {
                    weight: Weight::Quant(w),
                    bias,
                })
            };
            layers.push(Layer {
                input_norm: vector(&format!("blk.{i}.attn_norm.weight"), c.hidden_size)?,
                post_attention_norm: vector(&format!("blk.{i}.ffn_norm.weight"), c.hidden_size)?,
                projections: projections(projection)?,
            });
        }
        let lm_head = if c.tie_word_embeddings {
            Linear {
                weight: Weight::Quant(embed.clone()),
                bias: None,
            }
        } else {
            let head = B::quant_linear(
                matrix("output.weight", c.vocab_size, c.hidden_size)?,
                device,
            )?;
            weight_bytes += head.stored_bytes();
            Linear {
                weight: Weight::Quant(head),
                bias: None,
            }
        };
        let norm = vector("output_norm.weight", c.hidden_size)?;
        let norms = (2 * c.num_layers + 1) * c.hidden_size * size_of::<f32>();
        Ok(Self {
            rope: Rope::new(&config),
            embed: Embedding::Quant(embed),
            layers,
            norm,
            lm_head,
            device: device.clone(),
            pool: B::new_pool(device, pool)?,
            id: NEXT_MODEL_ID.fetch_add(1, Ordering::Relaxed),
            weight_bytes: weight_bytes + norms as u64,
            config,
        })
    }
}
