//! The model in a tab: burn's `Wgpu` backend on WebGPU, weights handed over as fetched bytes.

use std::cell::RefCell;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::Arc;

use burn::backend::Wgpu;
use burn::tensor::{Int, Tensor, TensorData};
use js_sys::{Promise, Uint32Array};
use tributary_gguf::Gguf;
use tributary_model::{
    Adapter, AdapterWeights, Adapters, Model, ModelConfig, SamplingParams, WeightFiles, generate,
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

    /// From the bytes of a GGUF file: its weights stay in their block formats in GPU buffers and
    /// the WGSL kernels of tributary-quant dequantize them inside each product.
    #[wasm_bindgen(js_name = loadGguf)]
    pub async fn load_gguf(bytes: Vec<u8>) -> Result<BrowserModel, JsError> {
        let device = device().await;
        let gguf = Arc::new(Gguf::parse(bytes)?);
        let model = Model::from_gguf(gguf, &device)?;
        Ok(BrowserModel {
            inner: Rc::new(Loaded {
                model,
                adapters: RefCell::new(HashMap::new()),
            }),
        })
    }

    /// One forward pass over `ids` (teacher forcing: a prompt followed by reference tokens).
    /// Resolves to `{argmax, logits}`: the most likely next token at every position, and the
    /// logits of position `at` for the token ids `pick`, so a test reads back a few values, not
    /// the whole vocabulary at every position.
    #[wasm_bindgen(js_name = teacherForced)]
    pub fn teacher_forced(&self, ids: Vec<u32>, at: usize, pick: Vec<u32>) -> Promise {
        let inner = Rc::clone(&self.inner);
        wasm_bindgen_futures::future_to_promise(async move {
            let model = &inner.model;
            let n = ids.len();
            if at >= n {
                return Err(JsError::new(&format!("position {at} of {n} tokens")).into());
            }
            let data: Vec<i32> = ids.iter().map(|&t| t as i32).collect();
            let tokens =
                Tensor::<Wgpu, 2, Int>::from_data(TensorData::new(data, [1, n]), model.device());
            let logits = model
                .forward(tokens, &mut model.new_cache(), Adapters::None)
                .map_err(|e| JsError::new(&e.to_string()))?;
            let vocab = model.config.vocab_size;
            let readback = |e: String| JsError::new(&format!("reading logits back: {e}"));
            let argmax = logits
                .clone()
                .argmax(2)
                .into_data_async()
                .await
                .map_err(|e| readback(format!("{e:?}")))?
                .convert::<i64>()
                .to_vec::<i64>()
                .map_err(|e| readback(format!("{e:?}")))?;
            let row = logits
                .slice([0..1, at..at + 1, 0..vocab])
                .into_data_async()
                .await
                .map_err(|e| readback(format!("{e:?}")))?
                .to_vec::<f32>()
                .map_err(|e| readback(format!("{e:?}")))?;
            let picked = pick
                .iter()
                .map(|&t| row.get(t as usize).copied().unwrap_or(f32::NAN))
                .collect::<Vec<f32>>();
            let argmax: Vec<u32> = argmax.into_iter().map(|t| t as u32).collect();
            Ok(serde_wasm_bindgen::to_value(&TeacherForced {
                argmax,
                logits: picked,
            })?)
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

#[derive(serde::Serialize)]
struct TeacherForced {
    argmax: Vec<u32>,
    logits: Vec<f32>,
}
