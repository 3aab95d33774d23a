//! PEFT LoRA adapters: `adapter_config.json` + `adapter_model.safetensors`, checked against the
//! base they are meant for before any tensor reaches a device.

use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::config::{ModelConfig, parse_json_object};
use crate::error::{ModelError, read_file};
use crate::weights::WeightFiles;

/// The projections a LoRA adapter may target, by their Hugging Face module names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
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

    fn from_module_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.module_name() == name)
    }

    /// (in, out) features of this projection in a model of `config`.
    pub fn dims(self, config: &ModelConfig) -> (usize, usize) {
        let h = config.hidden_size;
        let q = config.num_heads * config.head_dim;
        let kv = config.num_kv_heads * config.head_dim;
        match self {
            Target::Q => (h, q),
            Target::K | Target::V => (h, kv),
            Target::O => (q, h),
            Target::Gate | Target::Up => (h, config.intermediate_size),
            Target::Down => (config.intermediate_size, h),
        }
    }
}

/// What `adapter_config.json` says, restricted to what we apply.
#[derive(Debug, Clone, PartialEq)]
pub struct LoraConfig {
    pub rank: usize,
    pub alpha: f64,
    pub use_rslora: bool,
    pub targets: Vec<Target>,
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

    pub fn from_bytes(file: &Path, bytes: &[u8]) -> Result<Self, ModelError> {
        let map = parse_json_object(file, bytes)?;
        let err = |field: &str, reason: String| ModelError::field(file, field, reason);
        let get = |field: &str| map.get(field).filter(|v| !v.is_null());

        if let Some(kind) = get("peft_type")
            && kind.as_str() != Some("LORA")
        {
            return Err(err("peft_type", format!("{kind} is not a LoRA adapter")));
        }
        let rank = get("r")
            .and_then(Value::as_u64)
            .filter(|&r| r > 0)
            .ok_or_else(|| err("r", "missing or not a positive integer".into()))?
            as usize;
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
        targets.sort_by_key(|t| Target::ALL.iter().position(|a| a == t));
        Ok(Self {
            rank,
            alpha,
            use_rslora: flag("use_rslora"),
            targets,
        })
    }
}

/// One target of one layer: A is [r, in], B is [out, r], as PEFT stores them.
#[derive(Debug, Clone)]
pub struct LoraPair {
    pub layer: usize,
    pub target: Target,
    pub a: Vec<f32>,
    pub b: Vec<f32>,
}

/// An adapter read from disk (or bytes) and validated against a base model's config.
#[derive(Debug, Clone)]
pub struct AdapterWeights {
    pub name: String,
    pub config: LoraConfig,
    pub pairs: Vec<LoraPair>,
}

fn key(layer: usize, target: Target, matrix: &str) -> String {
    format!(
        "base_model.model.model.layers.{layer}.{}.lora_{matrix}.weight",
        target.path()
    )
}

impl AdapterWeights {
    /// A seeded random adapter of `rank` on `targets` for a base of `config`, values uniform in
    /// ±`amplitude`: what tests, benchmarks and demos need when the shape matters and the file
    /// does not.
    pub fn random(
        config: &ModelConfig,
        name: &str,
        (rank, alpha): (usize, f64),
        targets: &[Target],
        amplitude: f32,
        seed: u64,
    ) -> Self {
        use rand::{Rng, SeedableRng};
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        let mut values = |n: usize| -> Vec<f32> {
            (0..n)
                .map(|_| rng.random_range(-amplitude..amplitude))
                .collect()
        };
        let mut pairs = Vec::new();
        for layer in 0..config.num_layers {
            for &target in targets {
                let (fan_in, fan_out) = target.dims(config);
                let a = values(rank * fan_in);
                let b = values(fan_out * rank);
                pairs.push(LoraPair {
                    layer,
                    target,
                    a,
                    b,
                });
            }
        }
        Self {
            name: name.to_owned(),
            config: LoraConfig {
                rank,
                alpha,
                use_rslora: false,
                targets: targets.to_vec(),
            },
            pairs,
        }
    }

    /// The adapter as PEFT's two files, `adapter_config.json` and `adapter_model.safetensors`
    /// (f32), so adapters made here (fine-tunes, tests, benchmarks) load wherever PEFT's do.
    pub fn to_peft_bytes(&self) -> (Vec<u8>, Vec<u8>) {
        let c = &self.config;
        let modules: Vec<&str> = c.targets.iter().map(|t| t.module_name()).collect();
        let config = serde_json::json!({
            "peft_type": "LORA",
            "r": c.rank,
            "lora_alpha": c.alpha,
            "use_rslora": c.use_rslora,
            "target_modules": modules,
            "bias": "none",
        });
        let bytes = |v: &[f32]| -> Vec<u8> { v.iter().flat_map(|x| x.to_le_bytes()).collect() };
        let tensors: Vec<(String, Vec<usize>, Vec<u8>)> = self
            .pairs
            .iter()
            .flat_map(|p| {
                let fan_in = p.a.len() / c.rank;
                let fan_out = p.b.len() / c.rank;
                [
                    (
                        key(p.layer, p.target, "A"),
                        vec![c.rank, fan_in],
                        bytes(&p.a),
                    ),
                    (
                        key(p.layer, p.target, "B"),
                        vec![fan_out, c.rank],
                        bytes(&p.b),
                    ),
                ]
            })
            .collect();
        let views = tensors.iter().map(|(name, shape, data)| {
            let view =
                safetensors::tensor::TensorView::new(safetensors::Dtype::F32, shape.clone(), data)
                    .expect("shape and byte length agree by construction");
            (name.clone(), view)
        });
        let safetensors =
            safetensors::serialize(views, None).expect("f32 views of matching sizes serialize");
        (
            serde_json::to_vec_pretty(&config).expect("a JSON value serializes"),
            safetensors,
        )
    }

    pub fn open_dir(dir: &Path, base: &ModelConfig) -> Result<Self, ModelError> {
        let config_path = dir.join("adapter_config.json");
        let config = LoraConfig::from_bytes(&config_path, &read_file(&config_path)?)?;
        let weights = WeightFiles::open_dir(dir, "adapter_model")?;
        let name = dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "adapter".into());
        Self::from_parts(name, config, &weights, base)
    }

    /// From `adapter_config.json` and `adapter_model.safetensors` bytes (e.g. fetched).
    pub fn from_bytes(
        name: &str,
        config_json: &[u8],
        safetensors: Vec<u8>,
        base: &ModelConfig,
    ) -> Result<Self, ModelError> {
        let config = LoraConfig::from_bytes(Path::new("adapter_config.json"), config_json)?;
        let weights = WeightFiles::from_bytes(vec![(
            PathBuf::from("adapter_model.safetensors"),
            safetensors,
        )])?;
        Self::from_parts(name.to_owned(), config, &weights, base)
    }

    fn from_parts(
        name: String,
        config: LoraConfig,
        weights: &WeightFiles,
        base: &ModelConfig,
    ) -> Result<Self, ModelError> {
        let r = config.rank;
        let mut pairs = Vec::new();
        let mut expected = std::collections::HashSet::new();
        for layer in 0..base.num_layers {
            for &target in &config.targets {
                let (fan_in, fan_out) = target.dims(base);
                let (ka, kb) = (key(layer, target, "A"), key(layer, target, "B"));
                let a = weights.f32(&ka, &[r, fan_in])?;
                let b = weights.f32(&kb, &[fan_out, r])?;
                expected.insert(ka);
                expected.insert(kb);
                pairs.push(LoraPair {
                    layer,
                    target,
                    a,
                    b,
                });
            }
        }
        // A tensor we would silently ignore means the adapter was made for another base
        // (more layers, other modules): refuse it rather than apply half of it.
        let mut extra: Vec<&str> = weights.names().filter(|n| !expected.contains(*n)).collect();
        extra.sort_unstable();
        if let Some(first) = extra.first() {
            let file = weights
                .file_of(first)
                .map(Path::to_path_buf)
                .unwrap_or_default();
            return Err(ModelError::tensor(
                file,
                *first,
                "does not belong to any target of this base model (adapter made for another base?)",
            ));
        }
        Ok(Self {
            name,
            config,
            pairs,
        })
    }
}
