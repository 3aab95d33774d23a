//! The inference worker: downloads and checks weights (Cache API first), then runs the
//! continuous-batching engine of `tributary-serve` — the node's own — on WebGPU or the CPU.
//!
//! A compare run is two requests in one engine: every step batches both sequences, each with
//! its own adapter, through the SGMV kernels, exactly as the node batches its clients.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use burn::backend::{NdArray, Wgpu};
use futures::{SinkExt, StreamExt};
use gloo::worker::reactor::{ReactorScope, reactor};
use js_sys::{Function, Promise, Reflect, Uint8Array};
use sha2::{Digest, Sha256};
use tributary_model::{
    AdapterWeights, Model, ModelConfig, SamplingParams, SgmvBackend, StopReason, Tokenizer,
    WeightFiles,
};
use tributary_serve::{
    AdapterSource, AdapterStore, Budgets, Engine, EngineConfig, Event, Request as EngineRequest,
};
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;
use web_sys::{Cache, Headers, Request, RequestInit, Response, WorkerGlobalScope};

use crate::protocol::{AdapterRef, Backend, Fetching, FileRef, FromWorker, Sampling, ToWorker};

type Scope = ReactorScope<ToWorker, FromWorker>;

/// The Cache API bucket; entries are keyed by URL plus content hash, so a changed file is a new
/// entry and a stale one is never served.
const CACHE_NAME: &str = "tributary-weights-v1";

#[reactor]
pub async fn Inference(mut scope: Scope) {
    let mut session: Option<Runner> = None;
    let mut fetching = Fetching {
        range_chunk: 4 << 20,
        use_cache: true,
    };
    while let Some(message) = scope.next().await {
        match message {
            ToWorker::Load {
                base,
                files,
                backend,
                fetching: f,
            } => {
                fetching = f;
                match Runner::load(&mut scope, &base, &files, backend, fetching).await {
                    Ok(runner) => {
                        let ready = runner.ready();
                        session = Some(runner);
                        let _ = scope.send(ready).await;
                    }
                    Err(error) => {
                        let _ = scope.send(FromWorker::Failed { job: None, error }).await;
                    }
                }
            }
            ToWorker::Generate {
                job,
                prompt,
                lanes,
                sampling,
            } => {
                let outcome = match session.as_mut() {
                    Some(runner) => {
                        runner
                            .generate(&mut scope, fetching, job, &prompt, &lanes, &sampling)
                            .await
                    }
                    None => Err("the model is not loaded".to_owned()),
                };
                if let Err(error) = outcome {
                    let _ = scope
                        .send(FromWorker::Failed {
                            job: Some(job),
                            error,
                        })
                        .await;
                }
            }
        }
    }
}

enum Runner {
    Gpu(Session<Wgpu>, String),
    Cpu(Session<NdArray>),
}

impl Runner {
    async fn load(
        scope: &mut Scope,
        base: &str,
        files: &[FileRef],
        backend: Backend,
        fetching: Fetching,
    ) -> Result<Runner, String> {
        let gpu = match backend {
            Backend::Cpu => {
                notice(
                    scope,
                    "CPU backend requested: running on burn's NdArray in wasm",
                )
                .await;
                None
            }
            Backend::Auto => match webgpu_adapter().await {
                Some(description) => Some(description),
                None => {
                    notice(
                        scope,
                        "this browser offers no WebGPU adapter: running on the CPU (wasm), slower",
                    )
                    .await;
                    None
                }
            },
        };
        let mut bytes = HashMap::new();
        for file in files {
            bytes.insert(file.name.clone(), download(scope, file, fetching).await?);
        }
        let runner = match gpu {
            Some(description) => {
                let device = tributary_model::browser::wgpu_device().await;
                Runner::Gpu(Session::new(base, bytes, &device)?, description)
            }
            None => Runner::Cpu(Session::new(base, bytes, &Default::default())?),
        };
        Ok(runner)
    }

    fn ready(&self) -> FromWorker {
        match self {
            Runner::Gpu(_, device) => FromWorker::Ready {
                backend: "WebGPU".into(),
                device: Some(device.clone()),
            },
            Runner::Cpu(_) => FromWorker::Ready {
                backend: "CPU (wasm)".into(),
                device: None,
            },
        }
    }

    async fn generate(
        &mut self,
        scope: &mut Scope,
        fetching: Fetching,
        job: u32,
        prompt: &str,
        lanes: &[Option<AdapterRef>],
        sampling: &Sampling,
    ) -> Result<(), String> {
        match self {
            Runner::Gpu(s, _) => {
                s.generate(scope, fetching, job, prompt, lanes, sampling)
                    .await
            }
            Runner::Cpu(s) => {
                s.generate(scope, fetching, job, prompt, lanes, sampling)
                    .await
            }
        }
    }
}

struct Session<B: SgmvBackend> {
    base: String,
    tokenizer: Tokenizer,
    eos: Vec<u32>,
    store: Arc<AdapterStore<B>>,
    engine: Engine<B>,
}

impl<B: SgmvBackend> Session<B> {
    fn new(
        base: &str,
        mut files: HashMap<String, Vec<u8>>,
        device: &B::Device,
    ) -> Result<Self, String> {
        let mut take = |name: &str| {
            files
                .remove(name)
                .ok_or_else(|| format!("{base}: the node lists no {name}"))
        };
        let tokenizer_bytes = take("tokenizer.json")?;
        let tokenizer = Tokenizer::from_bytes(Path::new("tokenizer.json"), &tokenizer_bytes)
            .map_err(|e| e.to_string())?;
        let config = ModelConfig::from_bytes(Path::new("config.json"), &take("config.json")?)
            .map_err(|e| e.to_string())?;
        // Single-file or sharded safetensors: every listed .safetensors file is a shard.
        let shards: Vec<(PathBuf, Vec<u8>)> = files
            .into_iter()
            .filter(|(name, _)| name.ends_with(".safetensors"))
            .map(|(name, bytes)| (PathBuf::from(name), bytes))
            .collect();
        let weights = WeightFiles::from_bytes(shards).map_err(|e| e.to_string())?;
        let model =
            Model::<B>::from_weights(config, &weights, device).map_err(|e| e.to_string())?;
        let eos = model.config.eos_token_ids.clone();
        let store = Arc::new(AdapterStore::new(
            Arc::new(model),
            Budgets {
                device_bytes: 256 << 20,
                host_bytes: 512 << 20,
            },
        ));
        let engine = Engine::new(
            Arc::clone(&store),
            EngineConfig {
                max_queue: 16,
                max_batch: 8,
                block_tokens: 16,
                kv_budget_bytes: 64 << 20,
            },
        )
        .map_err(|e| e.to_string())?;
        Ok(Self {
            base: base.to_owned(),
            tokenizer,
            eos,
            store,
            engine,
        })
    }

    /// Downloads and registers an adapter the first time it is asked for; the store loads it
    /// onto the device on first use (and checks it against the base then).
    async fn ensure_adapter(
        &self,
        scope: &mut Scope,
        fetching: Fetching,
        adapter: &AdapterRef,
    ) -> Result<(), String> {
        if self.store.contains(&adapter.name) {
            return Ok(());
        }
        let mut bytes = HashMap::new();
        for file in &adapter.files {
            bytes.insert(file.name.as_str(), download(scope, file, fetching).await?);
        }
        let mut take = |name: &str| {
            bytes
                .remove(name)
                .ok_or_else(|| format!("{}:{}: the node lists no {name}", self.base, adapter.name))
        };
        let config = take("adapter_config.json")?;
        let safetensors = take("adapter_model.safetensors")?;
        // Parse now, so a broken adapter is reported against its name before it is queued.
        let model = self.store.model();
        AdapterWeights::from_bytes(&adapter.name, &config, safetensors.clone(), &model.config)
            .map_err(|e| e.to_string())?;
        self.store
            .register(
                &adapter.name,
                AdapterSource::Bytes {
                    config: config.into(),
                    safetensors: safetensors.into(),
                },
                None,
            )
            .map_err(|e| e.to_string())
    }

    async fn generate(
        &mut self,
        scope: &mut Scope,
        fetching: Fetching,
        job: u32,
        prompt: &str,
        lanes: &[Option<AdapterRef>],
        sampling: &Sampling,
    ) -> Result<(), String> {
        let started = now_ms();
        for adapter in lanes.iter().flatten() {
            self.ensure_adapter(scope, fetching, adapter).await?;
        }
        let prompt_ids = self.tokenizer.encode(prompt).map_err(|e| e.to_string())?;
        let params = SamplingParams {
            temperature: sampling.temperature,
            top_k: sampling.top_k,
            top_p: sampling.top_p,
            seed: sampling.seed,
            max_tokens: sampling.max_tokens,
            stop_tokens: self.eos.clone(),
        };
        let mut ids = HashMap::new();
        for (lane, adapter) in lanes.iter().enumerate() {
            let id = self
                .engine
                .submit(EngineRequest {
                    adapter: adapter.as_ref().map(|a| a.name.clone()),
                    prompt: prompt_ids.clone(),
                    params: params.clone(),
                })
                .map_err(|e| e.to_string())?;
            ids.insert(id, lane);
        }
        let _ = scope
            .send(FromWorker::Started {
                job,
                prompt_tokens: prompt_ids.len(),
            })
            .await;
        let mut tokens = vec![Vec::new(); lanes.len()];
        let mut open = lanes.len();
        while open > 0 {
            let events = self.engine.step().await.map_err(|e| e.to_string())?;
            for event in events {
                match event {
                    Event::Token { id, token } => {
                        let lane = ids[&id];
                        tokens[lane].push(token);
                        let text = self.decode(&tokens[lane])?;
                        let _ = scope
                            .send(FromWorker::Token {
                                job,
                                lane,
                                token,
                                text,
                                at_ms: now_ms() - started,
                            })
                            .await;
                    }
                    Event::Finished { id, reason } => {
                        let lane = ids[&id];
                        open -= 1;
                        let _ = scope
                            .send(FromWorker::Done {
                                job,
                                lane,
                                text: self.decode(&tokens[lane])?,
                                tokens: std::mem::take(&mut tokens[lane]),
                                stop: stop_name(&reason).into(),
                                worker_memory_bytes: wasm_memory_bytes(),
                            })
                            .await;
                    }
                    Event::Failed { id, error } => {
                        let lane = ids[&id];
                        return Err(format!("lane {lane}: {error}"));
                    }
                }
            }
        }
        Ok(())
    }

    fn decode(&self, tokens: &[u32]) -> Result<String, String> {
        self.tokenizer.decode(tokens).map_err(|e| e.to_string())
    }
}

/// `performance.now()` of the worker (sub-millisecond, monotonic).
fn now_ms() -> f64 {
    Reflect::get(&global(), &"performance".into())
        .ok()
        .and_then(|p| p.dyn_into::<web_sys::Performance>().ok())
        .map_or_else(js_sys::Date::now, |p| p.now())
}

fn wasm_memory_bytes() -> u64 {
    wasm_bindgen::memory()
        .unchecked_into::<js_sys::WebAssembly::Memory>()
        .buffer()
        .unchecked_into::<js_sys::ArrayBuffer>()
        .byte_length() as u64
}

fn stop_name(reason: &StopReason) -> &'static str {
    match reason {
        StopReason::MaxTokens => "length",
        _ => "stop",
    }
}

async fn notice(scope: &mut Scope, text: &str) {
    let _ = scope.send(FromWorker::Notice(text.to_owned())).await;
}

fn global() -> WorkerGlobalScope {
    js_sys::global().unchecked_into()
}

fn js_error(context: &str, e: JsValue) -> String {
    let detail = e
        .dyn_ref::<js_sys::Error>()
        .map(|e| String::from(e.message()))
        .or_else(|| e.as_string())
        .unwrap_or_else(|| format!("{e:?}"));
    format!("{context}: {detail}")
}

/// `navigator.gpu.requestAdapter()` in the worker: the adapter's description, or `None` when
/// the browser has no WebGPU or no adapter to give.
async fn webgpu_adapter() -> Option<String> {
    let navigator = Reflect::get(&global(), &"navigator".into()).ok()?;
    let gpu = Reflect::get(&navigator, &"gpu".into()).ok()?;
    if gpu.is_undefined() || gpu.is_null() {
        return None;
    }
    let request: Function = Reflect::get(&gpu, &"requestAdapter".into())
        .ok()?
        .dyn_into()
        .ok()?;
    let adapter = JsFuture::from(request.call0(&gpu).ok()?.dyn_into::<Promise>().ok()?)
        .await
        .ok()?;
    if adapter.is_null() || adapter.is_undefined() {
        return None;
    }
    let info = Reflect::get(&adapter, &"info".into()).ok();
    let field = |name: &str| {
        info.as_ref()
            .and_then(|i| Reflect::get(i, &name.into()).ok())
            .and_then(|v| v.as_string())
            .filter(|s| !s.is_empty())
    };
    Some(
        [field("vendor"), field("architecture"), field("description")]
            .into_iter()
            .flatten()
            .collect::<Vec<_>>()
            .join(" "),
    )
}

fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn cache_key(file: &FileRef) -> String {
    let sep = if file.url.contains('?') { '&' } else { '?' };
    format!("{}{sep}sha256={}", file.url, file.sha256)
}

async fn open_cache() -> Result<Cache, String> {
    let caches = global()
        .caches()
        .map_err(|e| js_error("Cache API unavailable", e))?;
    let cache = JsFuture::from(caches.open(CACHE_NAME))
        .await
        .map_err(|e| js_error("opening the weights cache", e))?;
    Ok(cache.unchecked_into())
}

async fn response_bytes(response: &Response, file: &str) -> Result<Vec<u8>, String> {
    let buffer = JsFuture::from(
        response
            .array_buffer()
            .map_err(|e| js_error(&format!("{file}: reading the body"), e))?,
    )
    .await
    .map_err(|e| js_error(&format!("{file}: reading the body"), e))?;
    Ok(Uint8Array::new(&buffer).to_vec())
}

async fn from_cache(cache: &Cache, file: &FileRef) -> Option<Vec<u8>> {
    let hit = JsFuture::from(cache.match_with_str(&cache_key(file)))
        .await
        .ok()?;
    let response: Response = hit.dyn_into().ok()?;
    let bytes = response_bytes(&response, &file.name).await.ok()?;
    if sha256_hex(&bytes) == file.sha256 {
        Some(bytes)
    } else {
        // Damaged or tampered with in storage: drop it and download again.
        let _ = cache.delete_with_str(&cache_key(file));
        None
    }
}

async fn get(url: &str, range: Option<(u64, u64)>, file: &str) -> Result<Vec<u8>, String> {
    let init = RequestInit::new();
    init.set_method("GET");
    let expected = match range {
        Some((start, end)) => {
            let headers = Headers::new().map_err(|e| js_error("headers", e))?;
            headers
                .set("Range", &format!("bytes={start}-{end}"))
                .map_err(|e| js_error("headers", e))?;
            init.set_headers(&headers);
            206
        }
        None => 200,
    };
    let request = Request::new_with_str_and_init(url, &init)
        .map_err(|e| js_error(&format!("{file}: bad URL {url}"), e))?;
    let response: Response = JsFuture::from(global().fetch_with_request(&request))
        .await
        .map_err(|e| js_error(&format!("{file}: fetching {url}"), e))?
        .unchecked_into();
    if response.status() != expected {
        return Err(format!(
            "{file}: {url} answered HTTP {} (expected {expected})",
            response.status()
        ));
    }
    let bytes = response_bytes(&response, file).await?;
    if let Some((start, end)) = range
        && bytes.len() as u64 != end - start + 1
    {
        return Err(format!(
            "{file}: range {start}-{end} returned {} bytes",
            bytes.len()
        ));
    }
    Ok(bytes)
}

/// One file: from the cache when it holds these exact bytes, else from the node (in `Range`
/// chunks when large), checked against the listed hash, then cached. A cache that refuses the
/// write (quota) leaves the file in memory for this session, with a notice.
async fn download(
    scope: &mut Scope,
    file: &FileRef,
    fetching: Fetching,
) -> Result<Vec<u8>, String> {
    let cache = if fetching.use_cache {
        match open_cache().await {
            Ok(c) => Some(c),
            Err(e) => {
                notice(scope, &format!("{e}; weights stay in memory only")).await;
                None
            }
        }
    } else {
        None
    };
    let progress = |done: u64, from_cache: bool| FromWorker::Progress {
        file: file.name.clone(),
        done,
        total: file.bytes,
        from_cache,
    };
    if let Some(cache) = &cache
        && let Some(bytes) = from_cache(cache, file).await
    {
        let _ = scope.send(progress(file.bytes, true)).await;
        return Ok(bytes);
    }
    let _ = scope.send(progress(0, false)).await;
    let chunk = fetching.range_chunk.max(1);
    let bytes = if file.bytes > chunk {
        let mut bytes = Vec::with_capacity(file.bytes as usize);
        while (bytes.len() as u64) < file.bytes {
            let start = bytes.len() as u64;
            let end = (start + chunk).min(file.bytes) - 1;
            bytes.extend(get(&file.url, Some((start, end)), &file.name).await?);
            let _ = scope.send(progress(bytes.len() as u64, false)).await;
        }
        bytes
    } else {
        let bytes = get(&file.url, None, &file.name).await?;
        let _ = scope.send(progress(bytes.len() as u64, false)).await;
        bytes
    };
    let got = sha256_hex(&bytes);
    if got != file.sha256 {
        return Err(format!(
            "{}: sha256 {got} does not match the listed {}",
            file.name, file.sha256
        ));
    }
    if let Some(cache) = &cache {
        let body = Uint8Array::from(bytes.as_slice());
        let stored = match Response::new_with_opt_buffer_source(Some(&body)) {
            Ok(response) => JsFuture::from(cache.put_with_str(&cache_key(file), &response))
                .await
                .map(|_| ()),
            Err(e) => Err(e),
        };
        if let Err(e) = stored {
            notice(
                scope,
                &js_error(
                    &format!("could not cache {} (keeping it in memory only)", file.name),
                    e,
                ),
            )
            .await;
        }
    }
    Ok(bytes)
}
