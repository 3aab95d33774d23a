//! Fixtures shared by the store and engine tests.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::Arc;

use burn::backend::NdArray;
use burn::tensor::{Int, Tensor, TensorData};
use tributary_model::{AdapterWeights, Adapters, Model, Target};
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
    let weights = AdapterWeights::random(
        &model.config,
        "",
        (4, 8.0),
        &[Target::Q, Target::V],
        0.1,
        seed,
    );
    let (config, safetensors) = weights.to_peft_bytes();
    AdapterSource::Bytes {
        config: config.into(),
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
