//! The model in a tab: burn's `Wgpu` backend on WebGPU, weights handed over as fetched bytes.

use std::cell::RefCell;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::rc::Rc;

use burn::backend::Wgpu;
use js_sys::{Promise, Uint32Array};
use tributary_model::{
    Adapter, AdapterWeights, Model, ModelConfig, SamplingParams, WeightFiles, generate,
};
use wasm_bindgen::prelude::*;

pub(crate) use tributary_model::browser::wgpu_device as device;

struct Loaded {
    model: Model<Wgpu>,
    adapters: RefCell<HashMap<String, Adapter<Wgpu>>>,
}

/// A base model resident on the tab's GPU, with any number of adapters beside it.
#[wasm_bindgen]
pub struct BrowserModel {
    inner: Rc<Loaded>,
}

impl std::fmt::Debug for BrowserModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BrowserModel")
            .field("layers", &self.inner.model.config.num_layers)
            .finish()
    }
}

#[wasm_bindgen]
impl BrowserModel {
    /// From the bytes of `config.json` and `model.safetensors`.
    pub async fn load(config: Vec<u8>, weights: Vec<u8>) -> Result<BrowserModel, JsError> {
        let device = device().await;
        let config = ModelConfig::from_bytes(Path::new("config.json"), &config)?;
        let files = WeightFiles::from_bytes(vec![(PathBuf::from("model.safetensors"), weights)])?;
        let model = Model::from_weights(config, &files, &device)?;
        Ok(BrowserModel {
            inner: Rc::new(Loaded {
                model,
                adapters: RefCell::new(HashMap::new()),
            }),
        })
    }

    /// Registers a PEFT adapter from its `adapter_config.json` and `adapter_model.safetensors`.
    #[wasm_bindgen(js_name = addAdapter)]
    pub fn add_adapter(&self, name: &str, config: &[u8], weights: Vec<u8>) -> Result<(), JsError> {
        let model = &self.inner.model;
        let adapter = AdapterWeights::from_bytes(name, config, weights, &model.config)?;
        self.inner
            .adapters
            .borrow_mut()
            .insert(name.to_owned(), model.adapter(&adapter)?);
        Ok(())
    }

    /// Greedy generation from token ids; resolves to a Uint32Array of new tokens.
    #[wasm_bindgen(js_name = generateGreedy)]
    pub fn generate_greedy(
        &self,
        prompt: Vec<u32>,
        adapter: Option<String>,
        max_tokens: usize,
    ) -> Promise {
        let inner = Rc::clone(&self.inner);
        wasm_bindgen_futures::future_to_promise(async move {
            let adapter = match adapter {
                Some(name) => Some(
                    inner
                        .adapters
                        .borrow()
                        .get(&name)
                        .cloned()
                        .ok_or_else(|| JsError::new(&format!("no adapter named `{name}`")))?,
                ),
                None => None,
            };
            let params = SamplingParams::greedy(max_tokens);
            let out = generate(&inner.model, adapter.as_ref(), &prompt, &params, |_| true)
                .await
                .map_err(|e| JsError::new(&e.to_string()))?;
            Ok(Uint32Array::from(out.tokens.as_slice()).into())
        })
    }
}
