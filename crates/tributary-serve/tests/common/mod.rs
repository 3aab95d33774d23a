//! Fixtures shared by the store and engine tests.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::Arc;

use burn::backend::NdArray;
use burn::tensor::{Int, Tensor, TensorData};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use safetensors::tensor::{Dtype, TensorView};
use tributary_model::{Adapters, Model, Target};
use tributary_serve::{AdapterSource, AdapterStore, Budgets};

pub type B = NdArray;

pub fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tributary-model/tests/fixtures")
        .join(name)
}

pub fn model(name: &str) -> Arc<Model<B>> {
    Arc::new(Model::load(&fixture(name), &Default::default()).unwrap())
}

pub const ROOMY: Budgets = Budgets {
    device_bytes: 1 << 30,
    host_bytes: 1 << 30,
};

/// A PEFT adapter for `model` on q and v with rank 4, as the two files' bytes.
pub fn random_adapter(model: &Model<B>, seed: u64) -> AdapterSource {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let rank = 4;
    let mut tensors: Vec<(String, Vec<usize>, Vec<u8>)> = Vec::new();
    for layer in 0..model.config.num_layers {
        for target in [Target::Q, Target::V] {
            let (fan_in, fan_out) = target.dims(&model.config);
            for (m, shape) in [("A", vec![rank, fan_in]), ("B", vec![fan_out, rank])] {
                let n: usize = shape.iter().product();
                let bytes: Vec<u8> = (0..n)
                    .flat_map(|_| rng.random_range(-0.1f32..0.1).to_le_bytes())
                    .collect();
                let key = format!(
                    "base_model.model.model.layers.{layer}.{}.lora_{m}.weight",
                    target.path()
                );
                tensors.push((key, shape, bytes));
            }
        }
    }
    let views: Vec<(String, TensorView<'_>)> = tensors
        .iter()
        .map(|(k, s, b)| {
            (
                k.clone(),
                TensorView::new(Dtype::F32, s.clone(), b).unwrap(),
            )
        })
        .collect();
    let safetensors = safetensors::serialize(views, None).unwrap();
    let config = serde_json::json!({
        "peft_type": "LORA", "r": rank, "lora_alpha": 8, "target_modules": ["q_proj", "v_proj"]
    });
    AdapterSource::Bytes {
        config: serde_json::to_vec(&config).unwrap().into(),
        safetensors: safetensors.into(),
    }
}

/// One random adapter's bytes on each tier, measured on a roomy store.
pub fn one_adapter(model: &Arc<Model<B>>) -> tributary_serve::StoreMetrics {
    let probe = AdapterStore::new(Arc::clone(model), ROOMY);
    probe
        .register("probe", random_adapter(model, 0), None)
        .unwrap();
    drop(probe.acquire("probe").unwrap());
    probe.metrics()
}

pub fn logits(model: &Model<B>, adapter: &tributary_model::Adapter<B>) -> Vec<f32> {
    let tokens = Tensor::<B, 2, Int>::from_data(
        TensorData::new(vec![5i32, 17, 42, 7], [1, 4]),
        &Default::default(),
    );
    model
        .forward_last(tokens, &mut model.new_cache(), Adapters::All(adapter))
        .unwrap()
        .into_data()
        .to_vec()
        .unwrap()
}
