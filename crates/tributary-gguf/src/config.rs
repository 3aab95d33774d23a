//! The model hyper-parameters llama.cpp's converter stores for the Llama family.

use crate::Gguf;
use crate::error::{Error, Result};
use crate::value::Value;

/// The architectures whose GGUF metadata and tensor names follow the Llama layout.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Architecture {
    /// `llama`: Llama 1–3, SmolLM, TinyLlama, Mistral converted as llama.
    Llama,
    /// `qwen2`: the Llama layout with q/k/v biases (`blk.N.attn_q.bias` …).
    Qwen2,
}

impl Architecture {
    /// The value of `general.architecture`, which is also the prefix of the model's keys.
    pub const fn name(self) -> &'static str {
        match self {
            Architecture::Llama => "llama",
            Architecture::Qwen2 => "qwen2",
        }
    }

    /// Whether llama.cpp's converter permuted the rows of `attn_q` and `attn_k`.
    ///
    /// For `llama` it does (`LlamaModel.permute`), so that ggml's "normal" rotary embedding, which
    /// rotates adjacent pairs (2j, 2j + 1), computes what Hugging Face's `rotate_half` computes on
    /// the pairs (j, j + d/2). `qwen2` is converted unpermuted and run with the "neox" style,
    /// which is `rotate_half` itself. See [`unpermute_qk_row`].
    pub const fn qk_rows_permuted(self) -> bool {
        matches!(self, Architecture::Llama)
    }
}

/// The hyper-parameters a Llama-family forward pass needs, read from GGUF metadata.
///
/// The keys are the ones llama.cpp reads (`{arch}.block_count`, …), and where llama.cpp has a
/// default for an absent key, so does this: `rope.freq_base` 10 000, `attention.head_count_kv`
/// = `head_count` (no grouped-query attention), `rope.dimension_count` = the head dimension.
/// Every other key is required, and its absence is an error naming it.
///
/// The converter stores `attn_q.weight` and `attn_k.weight` with their rows permuted for
/// ggml's rotary layout (see [`Architecture::qk_rows_permuted`]); this struct does not undo
/// that, [`unpermute_qk_row`] says where each row went.
#[derive(Debug, Clone, PartialEq)]
pub struct LlamaConfig {
    pub architecture: Architecture,
    /// Transformer layers (`blk.0` … `blk.{n-1}`).
    pub block_count: usize,
    /// Hidden size.
    pub embedding_length: usize,
    /// The MLP's intermediate size.
    pub feed_forward_length: usize,
    pub head_count: usize,
    pub head_count_kv: usize,
    /// `attention.key_length` when present, else `embedding_length / head_count`.
    pub head_dim: usize,
    /// How many dimensions of each head rotate (`rope.dimension_count`); all of them if absent.
    pub rope_dimension_count: usize,
    pub rope_freq_base: f32,
    pub rms_norm_eps: f32,
    /// The context the model was trained for.
    pub context_length: usize,
    /// The number of entries in `tokenizer.ggml.tokens`.
    pub vocab_size: usize,
    /// No `output.weight` tensor: the LM head is `token_embd.weight`, as in SmolLM2.
    pub tied_embeddings: bool,
}

impl LlamaConfig {
    pub fn from_gguf(gguf: &Gguf) -> Result<LlamaConfig> {
        Self::read(gguf).map_err(|e| gguf.in_file(e))
    }

    fn read(gguf: &Gguf) -> Result<LlamaConfig> {
        let arch_name = gguf.require_str("general.architecture")?;
        let architecture = match arch_name {
            "llama" => Architecture::Llama,
            "qwen2" => Architecture::Qwen2,
            other => {
                return Err(Error::UnsupportedArchitecture {
                    arch: other.to_owned(),
                });
            }
        };
        let key = |k: &str| format!("{arch_name}.{k}");

        let positive = |k: &str| -> Result<usize> {
            let k = key(k);
            let v = gguf.require_usize(&k)?;
            if v == 0 {
                return Err(invalid(&k, v, "it must be positive"));
            }
            Ok(v)
        };
        let block_count = positive("block_count")?;
        let embedding_length = positive("embedding_length")?;
        let feed_forward_length = positive("feed_forward_length")?;
        let head_count = positive("attention.head_count")?;
        let context_length = positive("context_length")?;

        let kv_key = key("attention.head_count_kv");
        let head_count_kv = match gguf.get(&kv_key) {
            None => head_count,
            Some(_) => positive("attention.head_count_kv")?,
        };
        if !head_count.is_multiple_of(head_count_kv) {
            return Err(invalid(
                &kv_key,
                head_count_kv,
                "it must divide attention.head_count",
            ));
        }

        let (head_dim, head_dim_key) = match gguf.get(&key("attention.key_length")) {
            Some(_) => (
                positive("attention.key_length")?,
                key("attention.key_length"),
            ),
            None => {
                if !embedding_length.is_multiple_of(head_count) {
                    return Err(invalid(
                        &key("attention.head_count"),
                        head_count,
                        "it must divide embedding_length",
                    ));
                }
                (embedding_length / head_count, key("attention.head_count"))
            }
        };
        if !head_dim.is_multiple_of(2) {
            let value = gguf
                .get(&head_dim_key)
                .map_or_else(String::new, Value::describe);
            return Err(invalid(
                &head_dim_key,
                format!("{value} (head dimension {head_dim})"),
                "the head dimension must be even for rotary embeddings",
            ));
        }

        let rope_key = key("rope.dimension_count");
        let rope_dimension_count = match gguf.get(&rope_key) {
            None => head_dim,
            Some(_) => gguf.require_usize(&rope_key)?,
        };
        if !rope_dimension_count.is_multiple_of(2) || rope_dimension_count > head_dim {
            return Err(invalid(
                &rope_key,
                rope_dimension_count,
                "it must be even and at most the head dimension",
            ));
        }

        let base_key = key("rope.freq_base");
        let rope_freq_base = match gguf.get(&base_key) {
            None => 10_000.0,
            Some(_) => gguf.require_f32(&base_key)?,
        };
        if !(rope_freq_base.is_finite() && rope_freq_base > 0.0) {
            return Err(invalid(&base_key, rope_freq_base, "it must be positive"));
        }

        // Position interpolation changes every rotary angle; running without it would be
        // silently wrong, so it is refused until it is implemented.
        let scaling_key = key("rope.scaling.type");
        if let Some(v) = gguf.get(&scaling_key) {
            let kind = v.as_str().unwrap_or_default();
            if kind != "none" {
                return Err(Error::InvalidConfig {
                    key: scaling_key,
                    value: v.describe(),
                    reason: "rope scaling is not supported",
                });
            }
        }

        let eps_key = key("attention.layer_norm_rms_epsilon");
        let rms_norm_eps = gguf.require_f32(&eps_key)?;
        if !(rms_norm_eps.is_finite() && rms_norm_eps >= 0.0) {
            return Err(invalid(
                &eps_key,
                rms_norm_eps,
                "it must be finite and not negative",
            ));
        }

        let tokens_key = "tokenizer.ggml.tokens";
        let tokens = gguf.require_array(tokens_key)?;
        let vocab_size = tokens.len();
        if tokens.as_strings().is_none() {
            return Err(Error::WrongValueType {
                key: tokens_key.into(),
                expected: "an ARRAY of STRING",
                found: Value::Array(tokens.clone()).describe(),
            });
        }
        if vocab_size == 0 {
            return Err(invalid(tokens_key, 0, "the vocabulary is empty"));
        }

        Ok(LlamaConfig {
            architecture,
            block_count,
            embedding_length,
            feed_forward_length,
            head_count,
            head_count_kv,
            head_dim,
            rope_dimension_count,
            rope_freq_base,
            rms_norm_eps,
            context_length,
            vocab_size,
            tied_embeddings: gguf.tensor("output.weight").is_none(),
        })
    }
}

fn invalid(key: &str, value: impl std::fmt::Display, reason: &'static str) -> Error {
    Error::InvalidConfig {
        key: key.to_owned(),
        value: value.to_string(),
        reason,
    }
}

/// The GGUF row of `attn_q.weight` / `attn_k.weight` that holds Hugging Face row `hf_row`.
///
/// llama.cpp's converter interleaves the two halves of each head for ggml's rotary layout:
/// HF row h·d + c·d/2 + j (head h, half c ∈ {0, 1}, j < d/2) is stored at GGUF row
/// h·d + 2j + c. For SmolLM2 (d = 64): HF row h·64 + c·32 + j → GGUF row h·64 + 2j + c.
/// Only applies where [`Architecture::qk_rows_permuted`] is true. `None` when `head_dim` is
/// zero or odd, for which the permutation is not defined.
pub fn unpermute_qk_row(hf_row: usize, head_dim: usize) -> Option<usize> {
    if head_dim == 0 || !head_dim.is_multiple_of(2) {
        return None;
    }
    let half = head_dim / 2;
    let (head, within) = (hf_row / head_dim, hf_row % head_dim);
    let (c, j) = (within / half, within % half);
    Some(head * head_dim + 2 * j + c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unpermute_matches_the_formula_for_head_dim_64() {
        for h in 0..3 {
            for c in 0..2 {
                for j in 0..32 {
                    let hf = h * 64 + c * 32 + j;
                    assert_eq!(unpermute_qk_row(hf, 64), Some(h * 64 + 2 * j + c));
                }
            }
        }
        // Row 1 of head 0 (first half, j = 1) is GGUF row 2; row 32 (second half, j = 0) is 1.
        assert_eq!(unpermute_qk_row(1, 64), Some(2));
        assert_eq!(unpermute_qk_row(32, 64), Some(1));
        assert_eq!(unpermute_qk_row(64 + 33, 64), Some(64 + 3));
    }

    #[test]
    fn unpermute_is_a_bijection_within_each_head() {
        for d in [2, 4, 8, 64, 128] {
            let mut seen = vec![false; 3 * d];
            for hf in 0..3 * d {
                let g = unpermute_qk_row(hf, d).unwrap();
                assert_eq!(g / d, hf / d, "stays in its head");
                assert!(!seen[g], "GGUF row {g} hit twice for d = {d}");
                seen[g] = true;
            }
        }
        assert_eq!(unpermute_qk_row(5, 0), None);
        assert_eq!(unpermute_qk_row(5, 7), None);
    }
}
