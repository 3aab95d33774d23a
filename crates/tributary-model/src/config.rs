//! `config.json` of a Hugging Face Llama-family checkpoint, validated into what the model needs.

use std::path::Path;

use serde_json::{Map, Value};

use crate::error::{ModelError, read_file};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Architecture {
    Llama,
    /// Llama with biases on the q, k and v projections.
    Qwen2,
}

/// Llama-3's frequency-dependent RoPE rescaling (`rope_type: "llama3"`).
#[derive(Debug, Clone, PartialEq)]
pub struct Llama3Scaling {
    pub factor: f64,
    pub low_freq_factor: f64,
    pub high_freq_factor: f64,
    pub original_max_position_embeddings: f64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ModelConfig {
    pub architecture: Architecture,
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub intermediate_size: usize,
    pub num_layers: usize,
    pub num_heads: usize,
    pub num_kv_heads: usize,
    pub head_dim: usize,
    pub rms_norm_eps: f64,
    pub rope_theta: f64,
    pub rope_scaling: Option<Llama3Scaling>,
    pub tie_word_embeddings: bool,
    pub qkv_bias: bool,
    pub max_position_embeddings: usize,
    pub eos_token_ids: Vec<u32>,
}

/// Typed access to one JSON object, with errors that name the file and the field.
struct Fields<'a> {
    file: &'a Path,
    map: &'a Map<String, Value>,
}

impl Fields<'_> {
    fn err(&self, field: &str, reason: impl Into<String>) -> ModelError {
        ModelError::field(self.file, field, reason)
    }

    fn usize(&self, field: &str) -> Result<Option<usize>, ModelError> {
        match self.map.get(field) {
            None | Some(Value::Null) => Ok(None),
            Some(v) => v
                .as_u64()
                .and_then(|n| usize::try_from(n).ok())
                .map(Some)
                .ok_or_else(|| {
                    self.err(field, format!("expected a non-negative integer, got {v}"))
                }),
        }
    }

    fn required(&self, field: &str) -> Result<usize, ModelError> {
        match self.usize(field)? {
            Some(0) => Err(self.err(field, "must be at least 1")),
            Some(n) => Ok(n),
            None => Err(self.err(field, "missing")),
        }
    }

    fn f64(&self, field: &str) -> Result<Option<f64>, ModelError> {
        match self.map.get(field) {
            None | Some(Value::Null) => Ok(None),
            Some(v) => v
                .as_f64()
                .map(Some)
                .ok_or_else(|| self.err(field, format!("expected a number, got {v}"))),
        }
    }

    fn bool(&self, field: &str) -> Result<Option<bool>, ModelError> {
        match self.map.get(field) {
            None | Some(Value::Null) => Ok(None),
            Some(v) => v
                .as_bool()
                .map(Some)
                .ok_or_else(|| self.err(field, format!("expected true or false, got {v}"))),
        }
    }

    fn str(&self, field: &str) -> Result<Option<&str>, ModelError> {
        match self.map.get(field) {
            None | Some(Value::Null) => Ok(None),
            Some(v) => v
                .as_str()
                .map(Some)
                .ok_or_else(|| self.err(field, format!("expected a string, got {v}"))),
        }
    }
}

pub(crate) fn parse_json_object(
    file: &Path,
    bytes: &[u8],
) -> Result<Map<String, Value>, ModelError> {
    Ok(tributary_peft::parse_json_object(
        &file.display().to_string(),
        bytes,
    )?)
}

impl ModelConfig {
    pub fn from_file(path: &Path) -> Result<Self, ModelError> {
        Self::from_bytes(path, &read_file(path)?)
    }

    /// Parses `config.json` content; `file` is only used to name it in errors.
    pub fn from_bytes(file: &Path, bytes: &[u8]) -> Result<Self, ModelError> {
        let map = parse_json_object(file, bytes)?;
        let f = Fields { file, map: &map };

        let architecture = match f.str("model_type")? {
            Some("llama") => Architecture::Llama,
            Some("qwen2") => Architecture::Qwen2,
            Some(other) => {
                return Err(f.err(
                    "model_type",
                    format!("unsupported model type `{other}` (supported: llama, qwen2)"),
                ));
            }
            None => return Err(f.err("model_type", "missing")),
        };
        if let Some(act) = f.str("hidden_act")?
            && act != "silu"
        {
            return Err(f.err(
                "hidden_act",
                format!("unsupported activation `{act}` (only silu)"),
            ));
        }
        if f.bool("mlp_bias")? == Some(true) {
            return Err(f.err(
                "mlp_bias",
                "biases on the MLP projections are not supported",
            ));
        }
        if f.bool("use_sliding_window")? == Some(true) {
            return Err(f.err(
                "use_sliding_window",
                "sliding-window attention is not supported",
            ));
        }

        let hidden_size = f.required("hidden_size")?;
        let num_heads = f.required("num_attention_heads")?;
        let num_kv_heads = f.usize("num_key_value_heads")?.unwrap_or(num_heads);
        if num_kv_heads == 0 || num_heads % num_kv_heads != 0 {
            return Err(f.err(
                "num_key_value_heads",
                format!("{num_kv_heads} does not divide num_attention_heads ({num_heads})"),
            ));
        }
        let head_dim = match f.usize("head_dim")? {
            Some(d) if d > 0 && d % 2 == 0 => d,
            Some(d) => return Err(f.err("head_dim", format!("{d} must be even and positive"))),
            None if hidden_size % num_heads == 0 && (hidden_size / num_heads) % 2 == 0 => {
                hidden_size / num_heads
            }
            None => {
                return Err(f.err(
                    "num_attention_heads",
                    format!("{num_heads} heads do not split hidden_size {hidden_size} into even head dims"),
                ));
            }
        };

        let (rope_theta, rope_scaling) = rope(&f)?;
        let qkv_bias = match architecture {
            Architecture::Qwen2 => true,
            Architecture::Llama => f.bool("attention_bias")?.unwrap_or(false),
        };
        let eos_token_ids = match map.get("eos_token_id") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(ids)) => ids
                .iter()
                .map(|v| v.as_u64().and_then(|n| u32::try_from(n).ok()))
                .collect::<Option<Vec<u32>>>()
                .ok_or_else(|| f.err("eos_token_id", "expected token ids"))?,
            Some(v) => vec![
                v.as_u64()
                    .and_then(|n| u32::try_from(n).ok())
                    .ok_or_else(|| {
                        f.err("eos_token_id", format!("expected a token id, got {v}"))
                    })?,
            ],
        };

        Ok(Self {
            architecture,
            vocab_size: f.required("vocab_size")?,
            hidden_size,
            intermediate_size: f.required("intermediate_size")?,
            num_layers: f.required("num_hidden_layers")?,
            num_heads,
            num_kv_heads,
            head_dim,
            rms_norm_eps: f.f64("rms_norm_eps")?.unwrap_or(1e-6),
            rope_theta,
            rope_scaling,
            tie_word_embeddings: f.bool("tie_word_embeddings")?.unwrap_or(false),
            qkv_bias,
            max_position_embeddings: f.usize("max_position_embeddings")?.unwrap_or(4096),
            eos_token_ids,
        })
    }
}

/// RoPE settings in either spelling: transformers ≤ 4 (`rope_theta` + `rope_scaling`) or
/// transformers 5 (`rope_parameters` holding both).
fn rope(f: &Fields<'_>) -> Result<(f64, Option<Llama3Scaling>), ModelError> {
    let (field, params) = match (f.map.get("rope_parameters"), f.map.get("rope_scaling")) {
        (Some(Value::Object(p)), _) => ("rope_parameters", Some(p)),
        (_, Some(Value::Object(p))) => ("rope_scaling", Some(p)),
        (_, Some(Value::Null) | None) => ("rope_scaling", None),
        (_, Some(v)) => return Err(f.err("rope_scaling", format!("expected an object, got {v}"))),
    };
    let nested = params.map(|map| Fields { file: f.file, map });
    let theta = match nested
        .as_ref()
        .map(|n| n.f64("rope_theta"))
        .transpose()?
        .flatten()
    {
        Some(t) => Some(t),
        None => f.f64("rope_theta")?,
    }
    .unwrap_or(10_000.0);
    let Some(n) = nested else {
        return Ok((theta, None));
    };
    let rope_type = match n.str("rope_type")? {
        Some(t) => Some(t),
        None => n.str("type")?,
    };
    let nested_err =
        |key: &str, reason: String| ModelError::field(f.file, format!("{field}.{key}"), reason);
    let scaling = match rope_type {
        None | Some("default") => None,
        Some("llama3") => {
            let get = |key: &str| {
                n.f64(key)?
                    .filter(|v| *v > 0.0)
                    .ok_or_else(|| nested_err(key, "missing or not positive".into()))
            };
            Some(Llama3Scaling {
                factor: get("factor")?,
                low_freq_factor: get("low_freq_factor")?,
                high_freq_factor: get("high_freq_factor")?,
                original_max_position_embeddings: get("original_max_position_embeddings")?,
            })
        }
        Some(other) => {
            return Err(nested_err(
                "rope_type",
                format!("unsupported RoPE type `{other}` (supported: default, llama3)"),
            ));
        }
    };
    Ok((theta, scaling))
}
