//! PEFT LoRA adapters as files: what `adapter_config.json` says, how PEFT names the tensors of
//! `adapter_model.safetensors`, the content hash adapters are registered under, and a check of
//! the pair that needs no base model.
//!
//! Apart from the model crate because an adapter store that serves many bases (the edge worker)
//! must refuse a broken upload without linking a tensor library or knowing the base.

use std::collections::BTreeMap;

use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use thiserror::Error;

/// The two files of a PEFT LoRA adapter, by the names PEFT writes.
pub const CONFIG_FILE: &str = "adapter_config.json";
pub const WEIGHTS_FILE: &str = "adapter_model.safetensors";

/// What is wrong with an adapter's files; each names the file and the field or tensor at fault.
#[derive(Debug, Error)]
pub enum PeftError {
    #[error("{file}: invalid JSON: {source}")]
    Json {
        file: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("{file}: field `{field}`: {reason}")]
    Field {
        file: String,
        field: String,
        reason: String,
    },
    #[error("{file}: not a valid safetensors file: {reason}")]
    Safetensors { file: String, reason: String },
    #[error("{file}: tensor `{tensor}`: {reason}")]
    Tensor {
        file: String,
        tensor: String,
        reason: String,
    },
}

/// The projections a LoRA adapter may target, by their Hugging Face module names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Target {
    Q,
    K,
    V,
    O,
    Gate,
    Up,
    Down,
}

impl Target {
    pub const ALL: [Target; 7] = [
        Target::Q,
        Target::K,
        Target::V,
        Target::O,
        Target::Gate,
        Target::Up,
        Target::Down,
    ];

    pub fn module_name(self) -> &'static str {
        match self {
            Target::Q => "q_proj",
            Target::K => "k_proj",
            Target::V => "v_proj",
            Target::O => "o_proj",
            Target::Gate => "gate_proj",
            Target::Up => "up_proj",
            Target::Down => "down_proj",
        }
    }

    /// `self_attn.q_proj`, `mlp.up_proj`, … — the path below `model.layers.N`.
    pub fn path(self) -> String {
        let block = match self {
            Target::Q | Target::K | Target::V | Target::O => "self_attn",
            Target::Gate | Target::Up | Target::Down => "mlp",
        };
        format!("{block}.{}", self.module_name())
    }

    pub fn from_module_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.module_name() == name)
    }
}

/// PEFT's name for factor `matrix` ("A" or "B") of `target` in layer `layer`.
pub fn tensor_name(layer: usize, target: Target, matrix: &str) -> String {
    format!(
        "base_model.model.model.layers.{layer}.{}.lora_{matrix}.weight",
        target.path()
    )
}

/// Layer indices at or above this are refused as names.
pub const MAX_LAYERS: usize = 1 << 16;

/// The inverse of [`tensor_name`]: (layer, target, is_a).
fn parse_tensor_name(name: &str) -> Option<(usize, Target, bool)> {
    let rest = name.strip_prefix("base_model.model.model.layers.")?;
    let (layer, rest) = rest.split_once('.')?;
    // No model has this many layers; the bound keeps `layer + 1` and counts from overflowing on
    // names an uploader chose.
    let layer: usize = layer.parse().ok().filter(|&l| l < MAX_LAYERS)?;
    let (path, matrix) = rest.rsplit_once(".lora_")?;
    let is_a = match matrix {
        "A.weight" => true,
        "B.weight" => false,
        _ => return None,
    };
    let target = Target::ALL.into_iter().find(|t| t.path() == path)?;
    (tensor_name(layer, target, if is_a { "A" } else { "B" }) == name)
        .then_some((layer, target, is_a))
}

/// What `adapter_config.json` says, restricted to what we apply.
#[derive(Debug, Clone, PartialEq)]
pub struct LoraConfig {
    pub rank: usize,
    pub alpha: f64,
    pub use_rslora: bool,
    pub targets: Vec<Target>,
}

/// A JSON file's top-level object, naming the file when it is not one.
pub fn parse_json_object(file: &str, bytes: &[u8]) -> Result<Map<String, Value>, PeftError> {
    match serde_json::from_slice(bytes) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(other) => Err(PeftError::Field {
            file: file.into(),
            field: "(top level)".into(),
            reason: format!("expected a JSON object, got {}", json_kind(&other)),
        }),
        Err(source) => Err(PeftError::Json {
            file: file.into(),
            source,
        }),
    }
}

pub fn json_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

impl LoraConfig {
    /// PEFT's scaling: alpha / r, or alpha / √r with rsLoRA.
    pub fn scale(&self) -> f64 {
        if self.use_rslora {
            self.alpha / (self.rank as f64).sqrt()
        } else {
            self.alpha / self.rank as f64
        }
    }

    /// Refuses what we would not apply as PEFT does (DoRA, biases, per-module ranks, …) rather
    /// than serve an adapter that computes something else.
    pub fn from_bytes(file: &str, bytes: &[u8]) -> Result<Self, PeftError> {
        let map = parse_json_object(file, bytes)?;
        let err = |field: &str, reason: String| PeftError::Field {
            file: file.into(),
            field: field.into(),
            reason,
        };
        let get = |field: &str| map.get(field).filter(|v| !v.is_null());

        if let Some(kind) = get("peft_type")
            && kind.as_str() != Some("LORA")
        {
            return Err(err("peft_type", format!("{kind} is not a LoRA adapter")));
        }
        // try_from: on wasm32 a huge `r` must not wrap to a small rank the node would not see.
        let rank = get("r")
            .and_then(Value::as_u64)
            .filter(|&r| r > 0)
            .and_then(|r| usize::try_from(r).ok())
            .ok_or_else(|| err("r", "missing or not a positive integer".into()))?;
        let alpha = get("lora_alpha")
            .and_then(Value::as_f64)
            .filter(|&a| a > 0.0)
            .ok_or_else(|| err("lora_alpha", "missing or not a positive number".into()))?;
        let flag = |field: &str| get(field).and_then(Value::as_bool).unwrap_or(false);
        for unsupported in ["fan_in_fan_out", "use_dora", "lora_bias"] {
            if flag(unsupported) {
                return Err(err(unsupported, "is true, which is not supported".into()));
            }
        }
        if let Some(bias) = get("bias")
            && bias.as_str() != Some("none")
        {
            return Err(err(
                "bias",
                format!("{bias} is not supported (only \"none\")"),
            ));
        }
        for pattern in ["rank_pattern", "alpha_pattern"] {
            if get(pattern)
                .and_then(Value::as_object)
                .is_some_and(|m| !m.is_empty())
            {
                return Err(err(
                    pattern,
                    "per-module ranks or alphas are not supported".into(),
                ));
            }
        }
        for unsupported in [
            "layers_to_transform",
            "modules_to_save",
            "target_parameters",
        ] {
            if get(unsupported).is_some_and(|v| v.as_array().is_none_or(|a| !a.is_empty())) {
                return Err(err(unsupported, "is set, which is not supported".into()));
            }
        }
        let names: Vec<&str> = match get("target_modules") {
            Some(Value::Array(list)) => list
                .iter()
                .map(|v| {
                    v.as_str()
                        .ok_or_else(|| err("target_modules", format!("{v} is not a module name")))
                })
                .collect::<Result<_, _>>()?,
            Some(Value::String(one)) => vec![one.as_str()],
            _ => return Err(err("target_modules", "missing".into())),
        };
        let mut targets = Vec::new();
        for name in names {
            let target = Target::from_module_name(name).ok_or_else(|| {
                err(
                    "target_modules",
                    format!("`{name}` is not a projection of this architecture (q/k/v/o/gate/up/down_proj)"),
                )
            })?;
            if !targets.contains(&target) {
                targets.push(target);
            }
        }
        targets.sort();
        Ok(Self {
            rank,
            alpha,
            use_rslora: flag("use_rslora"),
            targets,
        })
    }
}

/// The content hash adapters are registered and served under: SHA-256 over the config's length
/// (u64, little-endian), the config bytes and the safetensors bytes — both files, since the
/// config's rank and alpha change what the weights do.
pub fn content_hash(config: &[u8], safetensors: &[u8]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update((config.len() as u64).to_le_bytes());
    h.update(config);
    h.update(safetensors);
    h.finalize().into()
}

/// SHA-256 of one file, as the manifests of nodes and edge workers list it.
pub fn sha256(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

/// Lower-case hex, as hashes appear in URLs, ETags and JSON here.
pub fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes
        .iter()
        .fold(String::with_capacity(2 * bytes.len()), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

/// A SHA-256 from 64 hex digits (either case), the inverse of [`hex`]; `None` for anything else.
pub fn parse_sha256_hex(hex: &str) -> Option<[u8; 32]> {
    // Digits only: `from_str_radix` alone would take "+f" as a byte.
    if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(out)
}

/// What a well-formed adapter declares, known without its base model.
#[derive(Debug, Clone, PartialEq)]
pub struct Summary {
    pub config: LoraConfig,
    pub layers: usize,
    /// (in, out) features of each target, as its factors' shapes say.
    pub dims: BTreeMap<Target, (usize, usize)>,
    pub parameters: u64,
}

/// Checks an adapter's two files against each other, without the base: the config parses; the
/// weights parse as safetensors of floats; every tensor is a factor PEFT would write for a
/// configured target; A is [r, in] and B is [out, r]; each layer has every target, both factors,
/// with the same shapes in every layer. What remains for load time is only whether `in`/`out`
/// and the layer count match a particular base.
pub fn check(config_json: &[u8], safetensors: &[u8]) -> Result<Summary, PeftError> {
    let config = LoraConfig::from_bytes(CONFIG_FILE, config_json)?;
    let file = || WEIGHTS_FILE.to_string();
    let tensors =
        safetensors::SafeTensors::deserialize(safetensors).map_err(|e| PeftError::Safetensors {
            file: file(),
            reason: e.to_string(),
        })?;
    let bad = |tensor: &str, reason: String| PeftError::Tensor {
        file: file(),
        tensor: tensor.into(),
        reason,
    };
    let r = config.rank;
    let mut dims: BTreeMap<Target, (Option<usize>, Option<usize>)> = BTreeMap::new();
    let mut seen = std::collections::BTreeSet::new();
    let mut layers = 0;
    let mut parameters = 0u64;
    let mut names = tensors.names();
    names.sort_unstable();
    for name in names {
        let view = tensors.tensor(name).map_err(|e| bad(name, e.to_string()))?;
        use safetensors::Dtype;
        if !matches!(view.dtype(), Dtype::F32 | Dtype::F16 | Dtype::BF16) {
            return Err(bad(
                name,
                format!("dtype {:?} (expected F32, F16 or BF16)", view.dtype()),
            ));
        }
        let (layer, target, is_a) = parse_tensor_name(name)
            .ok_or_else(|| bad(name, "is not a PEFT LoRA factor name".into()))?;
        if !config.targets.contains(&target) {
            return Err(bad(
                name,
                format!(
                    "targets {} which {CONFIG_FILE} does not list in target_modules",
                    target.module_name()
                ),
            ));
        }
        let shape = view.shape();
        let (rows, cols) = match shape {
            [rows, cols] => (*rows, *cols),
            _ => return Err(bad(name, format!("shape {shape:?} is not 2-D"))),
        };
        let (rank_side, feature) = if is_a { (rows, cols) } else { (cols, rows) };
        if rank_side != r {
            return Err(bad(
                name,
                format!("shape {shape:?} does not have rank r = {r} where PEFT puts it"),
            ));
        }
        let entry = dims.entry(target).or_default();
        let slot = if is_a { &mut entry.0 } else { &mut entry.1 };
        if *slot.get_or_insert(feature) != feature {
            return Err(bad(
                name,
                format!("shape {shape:?} differs from the same factor in another layer"),
            ));
        }
        seen.insert((layer, target, is_a));
        layers = layers.max(layer + 1);
        parameters += (rows * cols) as u64;
    }
    if seen.is_empty() {
        return Err(PeftError::Safetensors {
            file: file(),
            reason: "holds no tensors".into(),
        });
    }
    for layer in 0..layers {
        for &target in &config.targets {
            for (is_a, matrix) in [(true, "A"), (false, "B")] {
                if !seen.contains(&(layer, target, is_a)) {
                    return Err(bad(
                        &tensor_name(layer, target, matrix),
                        "is missing".into(),
                    ));
                }
            }
        }
    }
    let dims = dims
        .into_iter()
        .map(|(t, (a, b))| (t, (a.unwrap_or(0), b.unwrap_or(0))))
        .collect();
    Ok(Summary {
        config,
        layers,
        dims,
        parameters,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use safetensors::{Dtype, tensor::TensorView};

    fn config(rank: usize, modules: &[&str]) -> Vec<u8> {
        serde_json::to_vec(&serde_json::json!({
            "peft_type": "LORA", "r": rank, "lora_alpha": 16, "target_modules": modules,
            "bias": "none",
        }))
        .unwrap()
    }

    /// (name, shape) pairs serialised as zero-filled f32 tensors.
    fn weights(tensors: &[(String, Vec<usize>)]) -> Vec<u8> {
        let data: Vec<Vec<u8>> = tensors
            .iter()
            .map(|(_, s)| vec![0u8; 4 * s.iter().product::<usize>()])
            .collect();
        let views = tensors.iter().zip(&data).map(|((n, s), d)| {
            (
                n.clone(),
                TensorView::new(Dtype::F32, s.clone(), d).unwrap(),
            )
        });
        safetensors::serialize(views, None).unwrap()
    }

    fn adapter(layers: usize, rank: usize) -> Vec<(String, Vec<usize>)> {
        let mut t = Vec::new();
        for l in 0..layers {
            t.push((tensor_name(l, Target::Q, "A"), vec![rank, 64]));
            t.push((tensor_name(l, Target::Q, "B"), vec![64, rank]));
            t.push((tensor_name(l, Target::V, "A"), vec![rank, 64]));
            t.push((tensor_name(l, Target::V, "B"), vec![32, rank]));
        }
        t
    }

    #[test]
    fn a_well_formed_adapter_is_summarised() {
        let s = check(&config(4, &["q_proj", "v_proj"]), &weights(&adapter(3, 4))).unwrap();
        assert_eq!(s.layers, 3);
        assert_eq!(s.config.targets, vec![Target::Q, Target::V]);
        assert_eq!(s.dims[&Target::Q], (64, 64));
        assert_eq!(s.dims[&Target::V], (64, 32));
        assert_eq!(s.parameters, 3 * (4 * 64 * 2 + 4 * 64 + 32 * 4));
    }

    #[test]
    fn each_defect_names_its_file_and_tensor() {
        let cfg = config(4, &["q_proj", "v_proj"]);
        let msg = |cfg: &[u8], t: Vec<(String, Vec<usize>)>| {
            check(cfg, &weights(&t)).unwrap_err().to_string()
        };
        let mut missing = adapter(2, 4);
        missing.remove(5);
        assert!(
            msg(&cfg, missing).contains("layers.1.self_attn.q_proj.lora_B.weight`: is missing")
        );
        let mut wrong_rank = adapter(2, 4);
        wrong_rank[0].1 = vec![8, 64];
        assert!(msg(&cfg, wrong_rank).contains("does not have rank r = 4"));
        let mut far = adapter(1, 4);
        far.push((
            tensor_name(1, Target::Q, "A").replace(".1.", &format!(".{}.", usize::MAX)),
            vec![4, 64],
        ));
        assert!(msg(&cfg, far).contains("is not a PEFT LoRA factor name"));
        let mut stray = adapter(1, 4);
        stray.push(("lm_head.weight".into(), vec![4, 4]));
        assert!(msg(&cfg, stray).contains("`lm_head.weight`: is not a PEFT LoRA factor name"));
        let untargeted = msg(&config(4, &["q_proj"]), adapter(1, 4));
        assert!(untargeted.contains("targets v_proj"), "{untargeted}");
        let mut uneven = adapter(2, 4);
        uneven[4].1 = vec![4, 65];
        assert!(msg(&cfg, uneven).contains("differs from the same factor"));
        assert!(msg(b"{", adapter(1, 4)).starts_with("adapter_config.json: invalid JSON"));
        let broken = check(&cfg, b"\x08\0\0\0\0\0\0\0{}")
            .unwrap_err()
            .to_string();
        assert!(
            broken.starts_with("adapter_model.safetensors: "),
            "{broken}"
        );
    }

    #[test]
    fn the_content_hash_covers_both_files_and_their_boundary() {
        let a = content_hash(b"ab", b"c");
        assert_ne!(a, content_hash(b"a", b"bc"));
        assert_ne!(a, content_hash(b"ab", b"d"));
        assert_eq!(hex(&a).len(), 64);
    }

    proptest! {
        /// Untrusted bytes as either file give a summary or an error, never a panic.
        #[test]
        fn arbitrary_bytes_never_panic(cfg in proptest::collection::vec(any::<u8>(), 0..64),
                                       body in proptest::collection::vec(any::<u8>(), 0..256)) {
            let _ = check(&cfg, &body);
            let good = config(4, &["q_proj", "v_proj"]);
            let _ = check(&good, &body);
        }

        /// Hex we write parses back; anything else that is not 64 hex digits is refused.
        #[test]
        fn sha256_hex_round_trips(bytes in any::<[u8; 32]>(), junk in ".{0,70}") {
            prop_assert_eq!(parse_sha256_hex(&hex(&bytes)), Some(bytes));
            prop_assert_eq!(parse_sha256_hex(&hex(&bytes).to_uppercase()), Some(bytes));
            let is_hex = junk.len() == 64 && junk.bytes().all(|b| b.is_ascii_hexdigit());
            prop_assert_eq!(parse_sha256_hex(&junk).is_some(), is_hex);
            prop_assert_eq!(parse_sha256_hex(&"+f".repeat(32)), None);
        }

        /// Names we write parse back to what wrote them.
        #[test]
        fn tensor_names_round_trip(layer in 0usize..100, t in 0usize..7, a in any::<bool>()) {
            let target = Target::ALL[t];
            let name = tensor_name(layer, target, if a { "A" } else { "B" });
            prop_assert_eq!(parse_tensor_name(&name), Some((layer, target, a)));
        }
    }
}
