//! PEFT LoRA adapters: `adapter_config.json` + `adapter_model.safetensors`, checked against the
//! base they are meant for before any tensor reaches a device.

use std::path::{Path, PathBuf};

use crate::config::ModelConfig;
use crate::error::{ModelError, read_file};
use crate::weights::WeightFiles;
use tributary_peft::tensor_name as key;

pub use tributary_peft::{LoraConfig, Target};

/// The shapes a base model gives each LoRA target; the file format itself (tributary-peft)
/// knows nothing of bases.
pub trait TargetDims {
    /// (in, out) features of this projection in a model of `config`.
    fn dims(self, config: &ModelConfig) -> (usize, usize);
}

impl TargetDims for Target {
    fn dims(self, config: &ModelConfig) -> (usize, usize) {
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
        let config = LoraConfig::from_bytes(
            &config_path.display().to_string(),
            &read_file(&config_path)?,
        )?;
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
        let config = LoraConfig::from_bytes(tributary_peft::CONFIG_FILE, config_json)?;
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
