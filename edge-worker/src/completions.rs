//! `POST /v1/completions` on the isolate's CPU: the node's engine (continuous batching, paged KV,
//! adapters through SGMV) over burn's NdArray backend, for a base small enough for an isolate's
//! 128 MB.
//!
//! The base (`BASE_MODEL`) lives in R2 under `models/<name>/` as Hugging Face files; it is loaded
//! once per isolate, on the first request, after its safetensors headers have been read to size
//! it: one that would not fit is refused with 413 before a byte of weights is fetched. Adapters
//! are the ones this worker stores (`<base>:<adapter id>`), fetched on first use, checked against
//! the base (422 if made for another) and forgotten again, least recently asked for first, so the
//! isolate never holds more than its budget of adapter bytes.
//!
//! Requests in flight in one isolate share one engine: whichever request needs a token next runs
//! a step for all of them and leaves the others' tokens in their queues.

use std::cell::RefCell;
use std::collections::{HashMap, VecDeque};
use std::path::PathBuf;
use std::rc::Rc;
use std::sync::Arc;

use burn::backend::NdArray;
use futures_util::StreamExt as _;
use futures_util::lock::Mutex;
use futures_util::stream;
use serde_json::Value;
use tributary_model::{AdapterWeights, Model, ModelConfig, ModelError, Tokenizer, WeightFiles};
use tributary_peft::{CONFIG_FILE, WEIGHTS_FILE};
use tributary_serve::openai::{self, ChunkStream, Reply, Shape};
use tributary_serve::{
    AdapterSource, AdapterStore, Budgets, Engine, EngineConfig, EngineError, Event,
    Request as EngineRequest, RequestId,
};
use worker::{Bucket, Date, Env, Headers, Range, Request, Response, Result};

use crate::manifest::{blob_key, parse_sha256};
use crate::{ApiError, json, read_limited, var_u64};

const BUCKET: &str = "ADAPTERS";
/// Completion bodies are a prompt and a few fields.
const MAX_BODY: usize = 64 * 1024;
/// When `MODEL_MEMORY_BYTES` is absent: what loading the base may take (its safetensors bytes
/// and its f32 tensors, both held while the tensors are built).
const DEFAULT_MODEL_MEMORY: u64 = 64_000_000;
/// When `ADAPTER_MEMORY_BYTES` is absent: each of the three places an adapter lives (its files,
/// its parsed weights, its pages in the SGMV pool) is held within this.
const DEFAULT_ADAPTER_MEMORY: u64 = 8_000_000;
/// The paged KV cache, all layers.
const KV_BYTES: u64 = 8 << 20;
/// Safetensors caps its JSON header at 100 MB; a longer one is a broken file, not a big model
/// (and no header longer than the model budget is read at all).
const MAX_HEADER: u64 = 100_000_000;

/// The byte budgets of this isolate, from the worker's vars.
#[derive(Debug, Clone, Copy)]
struct Limits {
    model: u64,
    adapter: u64,
}

impl Limits {
    fn from_env(env: &Env) -> Self {
        Self {
            model: var_u64(env, "MODEL_MEMORY_BYTES", DEFAULT_MODEL_MEMORY),
            adapter: var_u64(env, "ADAPTER_MEMORY_BYTES", DEFAULT_ADAPTER_MEMORY),
        }
    }
}

/// The loaded base and everything that serves it.
struct Base {
    name: String,
    tokenizer: Tokenizer,
    eos: Vec<u32>,
    store: Arc<AdapterStore<NdArray>>,
    engine: Mutex<Engine<NdArray>>,
    /// Requests in flight: their events, waiting for their response streams to take them.
    live: RefCell<HashMap<RequestId, Live>>,
    /// Requests whose clients went away; cancelled (and forgotten) before the next step.
    dropped: RefCell<Vec<RequestId>>,
    /// Registered adapters with their source bytes, least recently asked for first.
    registered: RefCell<VecDeque<(String, u64)>>,
    /// Requests in flight per adapter: those are not forgotten while a request may still load them.
    in_use: RefCell<HashMap<String, usize>>,
    /// What loading took: safetensors bytes + f32 tensor bytes.
    load_bytes: u64,
}

/// What the isolate keeps of one request in flight.
struct Live {
    events: VecDeque<Event>,
    adapter: Option<String>,
    /// Set while the client's request signal can still abort it.
    _watch: Option<Watch>,
}

/// An `abort` listener on a request's signal (compatibility flag `enable_request_signal`): it
/// records the request as dropped. Needed because the workerd of our tests (1.20260730) no longer
/// cancels a streamed body when its client disconnects (workerd#6832): the stream is simply not
/// pulled again, so without the signal a request whose client left would run to its end.
struct Watch {
    signal: worker::AbortSignal,
    listener: wasm_bindgen::closure::Closure<dyn FnMut()>,
    fired: Rc<std::cell::Cell<bool>>,
}

impl Watch {
    fn new(signal: worker::AbortSignal, id: RequestId, base: &Rc<Base>) -> Self {
        use wasm_bindgen::JsCast as _;
        let fired = Rc::new(std::cell::Cell::new(false));
        let (flag, weak) = (Rc::clone(&fired), Rc::downgrade(base));
        // Runs in the aborted request's own context and touches only Rust state.
        let listener = wasm_bindgen::closure::Closure::<dyn FnMut()>::new(move || {
            flag.set(true);
            if let Some(base) = weak.upgrade() {
                base.dropped.borrow_mut().push(id);
            }
        });
        let _ = signal.add_event_listener_with_callback("abort", listener.as_ref().unchecked_ref());
        Self {
            signal,
            listener,
            fired,
        }
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        use wasm_bindgen::JsCast as _;
        // A fired listener is done; one that did not fire is removed before its closure goes.
        if !self.fired.get() {
            let _ = self.signal.remove_event_listener_with_callback(
                "abort",
                self.listener.as_ref().unchecked_ref(),
            );
        }
    }
}

thread_local! {
    static LOADED: RefCell<Option<Rc<Base>>> = const { RefCell::new(None) };
    /// Held while the base loads, so concurrent first requests load it once.
    static LOADING: Rc<Mutex<()>> = Rc::new(Mutex::new(()));
}

/// What `/healthz` reports about inference in this isolate.
pub fn health() -> Value {
    let base = LOADED.with(|b| b.borrow().clone());
    serde_json::json!({
        "base": base.as_ref().map(|b| {
            // A step in progress holds the engine; its counts are then not reported.
            let engine = b.engine.try_lock().map(|e| {
                let m = e.metrics();
                serde_json::json!({"waiting": m.waiting, "running": m.running,
                                   "kv_blocks_used": m.kv_blocks_used,
                                   "kv_blocks_total": m.kv_blocks_total, "tokens": m.tokens})
            });
            serde_json::json!({
                "name": b.name,
                "load_bytes": b.load_bytes,
                "adapters": b.store.metrics().registered,
                "engine": engine,
            })
        }),
        // Linear memory only grows; its size is the isolate's high-water mark for Rust's heap.
        "wasm_memory_bytes": wasm_memory_bytes(),
    })
}

fn wasm_memory_bytes() -> u64 {
    #[cfg(target_arch = "wasm32")]
    {
        (core::arch::wasm32::memory_size::<0>() as u64) * 65536
    }
    #[cfg(not(target_arch = "wasm32"))]
    {
        0
    }
}

/// `POST /v1/completions`, OpenAI's legacy text completions, streamed as server-sent events when
/// `stream` is true.
pub async fn completions(mut req: Request, env: &Env) -> Result<Response> {
    let body = match read_limited(&mut req, MAX_BODY).await? {
        Ok(body) => body,
        Err(refusal) => return refusal.response(),
    };
    let v: Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(e) => {
            return ApiError::bad_request(format!("the body is not valid JSON: {e}")).response();
        }
    };
    let Some(prompt) = v["prompt"].as_str() else {
        return ApiError::bad_request("`prompt` must be a string").response();
    };
    let Some(model) = v["model"].as_str() else {
        return ApiError::bad_request("`model` is required").response();
    };
    let Some(base_name) = env
        .var("BASE_MODEL")
        .ok()
        .map(|v| v.to_string())
        .filter(|n| !n.is_empty())
    else {
        return ApiError::new(
            404,
            "model_not_found",
            format!("no model `{model}`: this worker serves no base model (BASE_MODEL is unset)"),
        )
        .response();
    };
    let Some(adapter) = openai::resolve(model, &base_name) else {
        return ApiError::new(
            404,
            "model_not_found",
            format!("no model `{model}`; this worker serves `{base_name}` and `{base_name}:<adapter id>`"),
        )
        .response();
    };
    let limits = Limits::from_env(env);
    let base = match base(env, &base_name, limits).await? {
        Ok(base) => base,
        Err(refusal) => return refusal.response(),
    };
    if let Some(id) = adapter
        && let Err(refusal) = ensure_adapter(&base, id, env, limits).await?
    {
        return refusal.response();
    }
    let prompt_ids = match base.tokenizer.encode(prompt) {
        Ok(ids) => ids,
        Err(e) => return ApiError::bad_request(e.to_string()).response(),
    };
    let request = EngineRequest {
        adapter: adapter.map(str::to_owned),
        prompt: prompt_ids.clone(),
        params: openai::sampling(&v, &base.eos),
    };
    let signal = worker::AbortSignal::from(req.inner().signal());
    let mut pending = match Base::submit(&base, request, Some(signal)).await {
        Ok(pending) => pending,
        Err(e) => {
            return ApiError::new(openai::status(&e), "invalid_request_error", e.to_string())
                .response();
        }
    };
    let id = pending.id;
    let now = Date::now().as_millis();
    let reply = Reply::new(
        model,
        Shape::Text,
        now / 1000,
        u128::from(now) * 1_000_000 + u128::from(id),
    );
    if v["stream"].as_bool() == Some(true) {
        return stream_reply(pending, ChunkStream::new(reply, base.tokenizer.clone()));
    }
    let mut tokens = Vec::new();
    let reason = loop {
        match pending.next().await {
            Ok(Event::Token { token, .. }) => tokens.push(token),
            Ok(Event::Finished { reason, .. }) => break reason,
            Ok(Event::Failed { error, .. }) | Err(error) => {
                return ApiError::server(error).response();
            }
        }
    };
    let text = base.tokenizer.decode(&tokens).unwrap_or_default();
    json(
        200,
        &reply.complete(&text, &tokens, prompt_ids.len(), &reason),
    )
}

/// Server-sent events, one per token, then the finish reason and `[DONE]`. Each chunk is one
/// engine step away: the runtime pulls the next one when the client has taken the last.
fn stream_reply(pending: Pending, chunks: ChunkStream) -> Result<Response> {
    let events = stream::unfold(
        (pending, chunks, false),
        |(mut pending, mut chunks, ended)| async move {
            if ended {
                return None;
            }
            let (data, ended) = match pending.next().await {
                Ok(Event::Token { token, .. }) => (chunks.token(token), false),
                Ok(Event::Finished { reason, .. }) => (chunks.finished(&reason), true),
                Ok(Event::Failed { error, .. }) | Err(error) => {
                    (openai::stream_error(&error), true)
                }
            };
            let frame = format!("data: {data}\n\n").into_bytes();
            Some((Ok::<_, worker::Error>(frame), (pending, chunks, ended)))
        },
    )
    .chain(stream::once(async { Ok(b"data: [DONE]\n\n".to_vec()) }));
    let headers = Headers::new();
    headers.set("content-type", "text/event-stream")?;
    headers.set("cache-control", "no-cache")?;
    Ok(Response::from_stream(events)?.with_headers(headers))
}

/// One request's place in the shared engine. Dropping it before the end (the client went away)
/// cancels the request, which frees its KV blocks.
struct Pending {
    base: Rc<Base>,
    id: RequestId,
    done: bool,
}

impl Pending {
    /// The request's next event, stepping the engine (for every request in flight) until there
    /// is one.
    async fn next(&mut self) -> std::result::Result<Event, String> {
        loop {
            let event = match self.base.live.borrow_mut().get_mut(&self.id) {
                Some(live) => live.events.pop_front(),
                None => {
                    self.done = true;
                    return Err("the request was cancelled".into());
                }
            };
            if let Some(event) = event {
                if !matches!(event, Event::Token { .. }) {
                    self.end(false);
                }
                return Ok(event);
            }
            // Let requests that have arrived meanwhile submit first, so they join this step.
            #[cfg(target_arch = "wasm32")]
            worker::Delay::from(std::time::Duration::ZERO).await;
            match self.base.step().await {
                Ok(idle) => {
                    let empty = self
                        .base
                        .live
                        .borrow()
                        .get(&self.id)
                        .is_none_or(|live| live.events.is_empty());
                    if idle && empty {
                        // Every request the engine takes ends with an event; never spin.
                        self.end(true);
                        return Err("the engine has no record of this request".into());
                    }
                }
                Err(e) => {
                    self.end(true);
                    return Err(e);
                }
            }
        }
    }

    /// Leaves the engine: unless it ended there, it is cancelled before the next step.
    fn end(&mut self, cancel: bool) {
        if self.done {
            return;
        }
        self.done = true;
        self.base.forget(self.id);
        if cancel {
            self.base.dropped.borrow_mut().push(self.id);
        }
    }
}

impl Drop for Pending {
    fn drop(&mut self) {
        self.end(true);
    }
}

impl Base {
    /// The base from its parsed files, with an empty adapter store and engine.
    fn new(
        name: &str,
        config: ModelConfig,
        tokenizer: Tokenizer,
        weights: &WeightFiles,
        limits: Limits,
        load_bytes: u64,
    ) -> std::result::Result<Self, ModelError> {
        let model = Model::<NdArray>::from_weights(config, weights, &Default::default())?;
        let eos = model.config.eos_token_ids.clone();
        let store = Arc::new(AdapterStore::new(
            Arc::new(model),
            Budgets {
                device_bytes: limits.adapter,
                host_bytes: limits.adapter,
            },
        ));
        let engine = Engine::new(
            Arc::clone(&store),
            EngineConfig {
                max_queue: 32,
                max_batch: 8,
                block_tokens: 16,
                kv_budget_bytes: KV_BYTES,
            },
        )
        .map_err(|e| ModelError::Generation(e.to_string()))?;
        Ok(Self {
            name: name.to_owned(),
            tokenizer,
            eos,
            store,
            engine: Mutex::new(engine),
            live: RefCell::default(),
            dropped: RefCell::default(),
            registered: RefCell::default(),
            in_use: RefCell::default(),
            load_bytes,
        })
    }

    /// Queues a request with the shared engine; its events come from the returned handle.
    /// `signal` (the client's request signal) cancels the request when it aborts.
    async fn submit(
        base: &Rc<Self>,
        request: EngineRequest,
        signal: Option<worker::AbortSignal>,
    ) -> std::result::Result<Pending, EngineError> {
        let adapter = request.adapter.clone();
        let id = base.engine.lock().await.submit(request)?;
        if let Some(name) = &adapter {
            *base.in_use.borrow_mut().entry(name.clone()).or_default() += 1;
        }
        let live = Live {
            events: VecDeque::new(),
            adapter,
            _watch: signal.map(|signal| Watch::new(signal, id, base)),
        };
        base.live.borrow_mut().insert(id, live);
        Ok(Pending {
            base: Rc::clone(base),
            id,
            done: false,
        })
    }

    /// Drops what the isolate keeps of a request (idempotent): its events, its listener, its
    /// claim on its adapter.
    fn forget(&self, id: RequestId) {
        let Some(live) = self.live.borrow_mut().remove(&id) else {
            return;
        };
        if let Some(name) = &live.adapter {
            let mut in_use = self.in_use.borrow_mut();
            if let Some(n) = in_use.get_mut(name) {
                *n -= 1;
                if *n == 0 {
                    in_use.remove(name);
                }
            }
        }
    }

    /// One engine step for every request in flight; each event goes to its request's queue.
    /// True when the engine is idle afterwards.
    async fn step(&self) -> std::result::Result<bool, String> {
        let mut engine = self.engine.lock().await;
        for id in self.dropped.take() {
            engine.cancel(id);
            self.forget(id);
        }
        let events = engine.step().await.map_err(|e| e.to_string())?;
        let mut live = self.live.borrow_mut();
        for event in events {
            let id = match &event {
                Event::Token { id, .. } | Event::Finished { id, .. } | Event::Failed { id, .. } => {
                    *id
                }
            };
            if let Some(live) = live.get_mut(&id) {
                live.events.push_back(event);
            }
        }
        Ok(engine.is_idle())
    }
}

/// The loaded base, loading it on the first request of this isolate.
async fn base(
    env: &Env,
    name: &str,
    limits: Limits,
) -> Result<std::result::Result<Rc<Base>, ApiError>> {
    if let Some(base) = LOADED.with(|b| b.borrow().clone()) {
        return Ok(Ok(base));
    }
    let loading = LOADING.with(Rc::clone);
    let _guard = loading.lock().await;
    if let Some(base) = LOADED.with(|b| b.borrow().clone()) {
        return Ok(Ok(base));
    }
    let base = match load_base(env, name, limits).await? {
        Ok(base) => Rc::new(base),
        Err(refusal) => return Ok(Err(refusal)),
    };
    LOADED.with(|b| *b.borrow_mut() = Some(Rc::clone(&base)));
    Ok(Ok(base))
}

async fn load_base(
    env: &Env,
    name: &str,
    limits: Limits,
) -> Result<std::result::Result<Base, ApiError>> {
    let bucket = env.bucket(BUCKET)?;
    let prefix = format!("models/{name}/");
    let listing = bucket.list().prefix(prefix.clone()).execute().await?;
    let mut sizes = HashMap::new();
    for object in listing.objects() {
        let key = object.key();
        sizes.insert(key[prefix.len()..].to_owned(), object.size());
    }
    let missing = |file: &str| {
        ApiError::server(format!(
            "base model `{name}`: R2 has no {prefix}{file} (upload the model's Hugging Face files there)"
        ))
    };
    // Single-file or sharded safetensors: every .safetensors file is a shard.
    let mut shards: Vec<(String, u64)> = sizes
        .iter()
        .filter(|(file, _)| file.ends_with(".safetensors"))
        .map(|(file, size)| (file.clone(), *size))
        .collect();
    shards.sort();
    if shards.is_empty() {
        return Ok(Err(missing("model.safetensors")));
    }
    for file in ["config.json", "tokenizer.json"] {
        if !sizes.contains_key(file) {
            return Ok(Err(missing(file)));
        }
    }

    let broken = |e: ModelError| ApiError::server(format!("base model `{name}`: {e}"));
    let config_bytes = read_whole(&bucket, &format!("{prefix}config.json"), 0).await?;
    let config = match ModelConfig::from_bytes(&PathBuf::from("config.json"), &config_bytes) {
        Ok(c) => c,
        Err(e) => return Ok(Err(broken(e))),
    };

    // Size the model from its headers before fetching any weights. Tied embeddings are one
    // tensor in the file but two in memory (the model keeps the output projection transposed).
    let file_bytes: u64 = shards.iter().map(|(_, size)| size).sum();
    let mut tensor_bytes = if config.tie_word_embeddings {
        (config.vocab_size as u64)
            .saturating_mul(config.hidden_size as u64)
            .saturating_mul(4)
    } else {
        0
    };
    let header_limit = MAX_HEADER.min(limits.model);
    for (file, size) in &shards {
        match f32_bytes(&bucket, &format!("{prefix}{file}"), *size, header_limit).await? {
            Ok(bytes) => tensor_bytes += bytes,
            Err(reason) => {
                return Ok(Err(ApiError::server(format!(
                    "base model `{name}`: {prefix}{file}: {reason}"
                ))));
            }
        }
    }
    let load_bytes = file_bytes + tensor_bytes;
    if load_bytes > limits.model {
        return Ok(Err(ApiError::new(
            413,
            "invalid_request_error",
            format!(
                "base model `{name}` is too big for this worker: loading it takes {load_bytes} \
                 bytes ({file_bytes} of safetensors and {tensor_bytes} of f32 tensors), over \
                 MODEL_MEMORY_BYTES = {}",
                limits.model
            ),
        )));
    }

    let tokenizer_bytes = read_whole(&bucket, &format!("{prefix}tokenizer.json"), 0).await?;
    let tokenizer = match Tokenizer::from_bytes(&PathBuf::from("tokenizer.json"), &tokenizer_bytes)
    {
        Ok(t) => t,
        Err(e) => return Ok(Err(broken(e))),
    };
    drop(tokenizer_bytes);
    let mut files = Vec::with_capacity(shards.len());
    for (file, size) in &shards {
        let bytes = read_whole(&bucket, &format!("{prefix}{file}"), *size).await?;
        files.push((PathBuf::from(file), bytes));
    }
    let base = WeightFiles::from_bytes(files)
        .and_then(|weights| Base::new(name, config, tokenizer, &weights, limits, load_bytes));
    Ok(base.map_err(broken))
}

/// The bytes a safetensors file's tensors take as f32, from its header alone (two ranged reads).
async fn f32_bytes(
    bucket: &Bucket,
    key: &str,
    size: u64,
    header_limit: u64,
) -> Result<std::result::Result<u64, String>> {
    let head = read_range(bucket, key, 0, 8).await?;
    let Ok(head) = <[u8; 8]>::try_from(head.as_slice()) else {
        return Ok(Err("shorter than a safetensors header".into()));
    };
    let n = u64::from_le_bytes(head);
    if n > header_limit || 8 + n > size {
        return Ok(Err(format!(
            "header length {n} does not fit the file ({size} bytes)"
        )));
    }
    let header = read_range(bucket, key, 8, n).await?;
    let metadata: safetensors::tensor::Metadata = match serde_json::from_slice(&header) {
        Ok(m) => m,
        Err(e) => return Ok(Err(format!("header: {e}"))),
    };
    let mut bytes = 0u64;
    for (_, info) in metadata.tensors() {
        let numel = info
            .shape
            .iter()
            .try_fold(1u64, |n, &d| n.checked_mul(d as u64));
        match numel.and_then(|n| n.checked_mul(4)) {
            Some(b) => bytes = bytes.saturating_add(b),
            None => return Ok(Err("a tensor's shape overflows".into())),
        }
    }
    Ok(Ok(bytes))
}

async fn read_range(bucket: &Bucket, key: &str, offset: u64, length: u64) -> Result<Vec<u8>> {
    let object = bucket
        .get(key)
        .range(Range::OffsetWithLength { offset, length })
        .execute()
        .await?
        .ok_or_else(|| worker::Error::RustError(format!("R2 has no {key}")))?;
    match object.body() {
        Some(body) => body.bytes().await,
        None => Ok(Vec::new()),
    }
}

/// A whole object, read in the stream's chunks into one buffer of the object's size, so the
/// isolate does not hold a second whole copy on the JavaScript side.
async fn read_whole(bucket: &Bucket, key: &str, size: u64) -> Result<Vec<u8>> {
    let object = bucket
        .get(key)
        .execute()
        .await?
        .ok_or_else(|| worker::Error::RustError(format!("R2 has no {key}")))?;
    let mut out = Vec::with_capacity(usize::try_from(size).unwrap_or(0));
    if let Some(body) = object.body() {
        let mut chunks = body.stream()?;
        while let Some(chunk) = chunks.next().await {
            out.extend_from_slice(&chunk?);
        }
    }
    Ok(out)
}

/// Registers the adapter with the engine's store the first time it is asked for: 404 if this
/// worker has no such adapter, 413 if it is over the adapter budget, 422 if it was made for
/// another base.
async fn ensure_adapter(
    base: &Base,
    id: &str,
    env: &Env,
    limits: Limits,
) -> Result<std::result::Result<(), ApiError>> {
    if base.store.contains(id) {
        let mut registered = base.registered.borrow_mut();
        if let Some(at) = registered.iter().position(|(n, _)| n == id)
            && let Some(entry) = registered.remove(at)
        {
            registered.push_back(entry);
        }
        return Ok(Ok(()));
    }
    let manifest = match crate::adapters::load(id, env).await? {
        Ok(m) => m,
        // As the node answers a model id naming an adapter it does not have.
        Err(refusal) => {
            return Ok(Err(ApiError::new(
                refusal.status,
                "invalid_request_error",
                refusal.message,
            )));
        }
    };
    let tensor_bytes = manifest.summary.parameters.saturating_mul(4);
    let source_bytes = manifest.summary.bytes;
    if tensor_bytes.max(source_bytes) > limits.adapter {
        return Ok(Err(ApiError::new(
            413,
            "invalid_request_error",
            format!(
                "adapter `{id}` is too big for this worker: {source_bytes} bytes of files, \
                 {tensor_bytes} bytes as f32, over ADAPTER_MEMORY_BYTES = {}",
                limits.adapter
            ),
        )));
    }
    let (Some(config_file), Some(weights_file)) =
        (manifest.file(CONFIG_FILE), manifest.file(WEIGHTS_FILE))
    else {
        return Ok(Err(ApiError::server(format!(
            "adapter `{id}`: its manifest lacks a file"
        ))));
    };
    let bucket = env.bucket(BUCKET)?;
    let config = read_whole(&bucket, &blob_key(&config_file.sha256), config_file.bytes).await?;
    let safetensors =
        read_whole(&bucket, &blob_key(&weights_file.sha256), weights_file.bytes).await?;
    // Checked against the base now, so a mismatch is the client's 422, not a failed stream.
    if let Err(e) =
        AdapterWeights::from_bytes(id, &config, safetensors.clone(), &base.store.model().config)
    {
        return Ok(Err(ApiError::new(
            422,
            "invalid_request_error",
            format!(
                "adapter `{id}` does not fit base model `{}`: {e}",
                base.name
            ),
        )));
    }
    let hash = parse_sha256(&manifest.summary.hash)
        .and_then(|h| tributary_peft::parse_sha256_hex(&h))
        .ok_or_else(|| worker::Error::RustError(format!("adapter `{id}`: bad content hash")))?;
    let bytes = (config.len() + safetensors.len()) as u64;
    let source = AdapterSource::Bytes {
        config: config.into(),
        safetensors: safetensors.into(),
    };
    match base.store.register(id, source, Some(hash)) {
        // Another request registered it while this one was fetching.
        Ok(()) | Err(tributary_serve::StoreError::Duplicate(_)) => {}
        Err(e) => return Ok(Err(ApiError::server(e.to_string()))),
    }
    let mut registered = base.registered.borrow_mut();
    if !registered.iter().any(|(n, _)| n == id) {
        registered.push_back((id.to_owned(), bytes));
    }
    // Forget the least recently asked for until the sources fit the budget: never the new one,
    // nor one a request in flight may still have to load.
    let in_use = base.in_use.borrow();
    while registered.iter().map(|(_, b)| b).sum::<u64>() > limits.adapter {
        let Some(at) = registered
            .iter()
            .position(|(n, _)| n != id && !in_use.contains_key(n))
        else {
            break;
        };
        if let Some((oldest, _)) = registered.remove(at) {
            let _ = base.store.unregister(&oldest);
        }
    }
    Ok(Ok(()))
}

impl std::fmt::Debug for Base {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Base").field("name", &self.name).finish()
    }
}

impl std::fmt::Debug for Pending {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pending").field("id", &self.id).finish()
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use tributary_model::SamplingParams;

    use super::*;

    fn fixture() -> Rc<Base> {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../crates/tributary-model/tests/fixtures/llama-gqa");
        let config = ModelConfig::from_file(&dir.join("config.json")).unwrap();
        let tokenizer = Tokenizer::from_file(&dir.join("tokenizer.json")).unwrap();
        let weights = WeightFiles::open_dir(&dir, "model").unwrap();
        let limits = Limits {
            model: DEFAULT_MODEL_MEMORY,
            adapter: DEFAULT_ADAPTER_MEMORY,
        };
        Rc::new(Base::new("llama-gqa", config, tokenizer, &weights, limits, 0).unwrap())
    }

    fn request(prompt: Vec<u32>, tokens: usize) -> EngineRequest {
        EngineRequest {
            adapter: None,
            prompt,
            params: SamplingParams::greedy(tokens),
        }
    }

    /// The path a stream the runtime drops takes (the JS tests cover the request signal's:
    /// workerd since 1.20260619 no longer drops a streamed body when its client disconnects,
    /// workerd#6832).
    #[test]
    fn a_dropped_request_is_cancelled_and_its_blocks_freed() {
        let base = fixture();
        let mut long =
            pollster::block_on(Base::submit(&base, request(vec![5, 6, 7], 200), None)).unwrap();
        let mut short =
            pollster::block_on(Base::submit(&base, request(vec![8, 9], 5), None)).unwrap();
        for _ in 0..3 {
            assert!(matches!(
                pollster::block_on(long.next()),
                Ok(Event::Token { .. })
            ));
        }
        drop(long);
        let mut tokens = 0;
        loop {
            match pollster::block_on(short.next()).unwrap() {
                Event::Token { .. } => tokens += 1,
                Event::Finished { .. } => break,
                Event::Failed { error, .. } => panic!("{error}"),
            }
        }
        assert_eq!(tokens, 5);
        let engine = base.engine.try_lock().unwrap();
        let m = engine.metrics();
        assert_eq!((m.running, m.waiting, m.kv_blocks_used), (0, 0, 0), "{m:?}");
        assert!(
            m.tokens < 20,
            "the dropped request ran on: {} tokens",
            m.tokens
        );
        assert!(base.live.borrow().is_empty());
    }

    /// An adapter a request in flight uses is counted until that request ends, however it ends.
    #[test]
    fn adapters_in_use_are_counted_until_their_requests_end() {
        let base = fixture();
        base.store
            .register(
                "a",
                AdapterSource::Dir(
                    Path::new(env!("CARGO_MANIFEST_DIR")).join(
                        "../crates/tributary-model/tests/fixtures/llama-gqa/adapters/attn-r8",
                    ),
                ),
                None,
            )
            .unwrap();
        let with = |n| EngineRequest {
            adapter: Some("a".into()),
            ..request(vec![5], n)
        };
        let mut one = pollster::block_on(Base::submit(&base, with(2), None)).unwrap();
        let two = pollster::block_on(Base::submit(&base, with(2), None)).unwrap();
        assert_eq!(base.in_use.borrow().get("a"), Some(&2));
        drop(two);
        assert_eq!(base.in_use.borrow().get("a"), Some(&1));
        while !matches!(pollster::block_on(one.next()), Ok(Event::Finished { .. })) {}
        assert!(base.in_use.borrow().is_empty());
    }
}
