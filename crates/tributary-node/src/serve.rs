//! `tributary serve`: the OpenAI-compatible HTTP API over the continuous-batching engine.
//!
//! The engine lives on its own thread (it owns the model's device state and steps as long as
//! work is queued); handlers talk to it over channels. A request's events come back on its own
//! channel; when a client goes away its receiver is dropped, the next event fails to send, and the
//! engine cancels the request, which frees its KV blocks.
//!
//! For a tab that runs the model itself, the server also hands out the model's and adapters'
//! files (hashed once at startup, in ranges, revalidated by hash), the web app that does so, and
//! span attribution of the tab's answers with a receipt this node signs.

use std::collections::HashMap;
use std::io::SeekFrom;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{SystemTime, UNIX_EPOCH};

use alloy::signers::local::PrivateKeySigner;
use anyhow::{Context, Result, bail};
use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::sse::{Event as SseEvent, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use burn::backend::{NdArray, Wgpu};
use clap::Args;
use futures_util::stream;
use serde_json::{Value, json};
use tokio::sync::{mpsc as tmpsc, oneshot};
use tributary_http::{Answer, Conditions};
use tributary_model::{
    AdapterWeights, ChatMessage, ChatTemplate, ModelSource, QuantBackend, SgmvBackend, StopReason,
    Tokenizer,
};
use tributary_receipt::{
    Address, B256, Domain, MAX_ATTRIBUTIONS, METHOD_SPAN, Receipt, SignedReceipt, keccak256,
};
use tributary_serve::openai::{self, ChunkStream, Reply, Shape};
use tributary_serve::{
    AdapterSource, AdapterStore, Budgets, Engine, EngineConfig, EngineError, EngineMetrics, Event,
    FetchError, Request, fetch_adapter,
};

use crate::attribute::{Places, SpanAttributor};
use crate::files::{FileEntry, Manifest};
use crate::run::Device;

/// Anvil's first contract address (account 0, nonce 0): where the ReceiptAnchor lands on a fresh
/// local chain, so receipts signed by default verify against the usual development setup.
const DEFAULT_ANCHOR: &str = "0x5FbDB2315678afecb367f032d93F642f64180aa3";

/// Share of the span evidence kept in a receipt, as `tributary attribute`'s default.
const ATTRIBUTION_SHARE: f64 = 0.95;

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Hugging Face model folder (config.json, model.safetensors, tokenizer.json) or a .gguf
    /// file. Default: the embedded model (SmolLM2-135M-Instruct, Q4_1), which
    /// `cargo xtask setup` installs.
    #[arg(long)]
    model: Option<PathBuf>,
    /// Adapters to register at start, as NAME=FOLDER or NAME=URL (http(s):// folder or
    /// hf://ORG/REPO[@REVISION]); repeatable. Loaded on first use; URLs are downloaded first.
    #[arg(long = "adapter", value_name = "NAME=FOLDER|URL")]
    adapters: Vec<String>,
    /// Where adapters registered by URL are kept, one folder per content hash.
    #[arg(long, env = "TRIBUTARY_ADAPTER_CACHE", value_name = "DIR")]
    adapter_cache: Option<PathBuf>,
    /// Largest adapter file accepted from a URL, MiB.
    #[arg(long, default_value_t = 1024)]
    adapter_max_mib: u64,
    /// A Jinja chat template for /v1/chat/completions, in place of the model folder's own
    /// (chat_template.jinja or tokenizer_config.json).
    #[arg(long, value_name = "FILE")]
    chat_template: Option<PathBuf>,
    #[arg(long, default_value = "127.0.0.1", env = "TRIBUTARY_HOST")]
    host: String,
    /// 0 picks a free port; the URL is printed on stdout either way.
    #[arg(long, default_value_t = 8000, env = "TRIBUTARY_PORT")]
    port: u16,
    #[arg(long, value_enum, default_value = "cpu")]
    device: Device,
    #[arg(long, default_value_t = 32)]
    max_batch: usize,
    #[arg(long, default_value_t = 256)]
    max_queue: usize,
    #[arg(long, default_value_t = 16)]
    block_tokens: usize,
    /// Log as JSON lines (the same as the global --log-json).
    #[arg(long)]
    pub json: bool,
    #[arg(long, default_value_t = 256)]
    kv_budget_mib: u64,
    /// Device memory for resident adapters, KiB (least recently used ones are evicted beyond it).
    #[arg(long, default_value_t = 256 * 1024)]
    adapter_budget_kib: u64,
    /// Host memory for parsed adapters kept off the device, KiB.
    #[arg(long, default_value_t = 1024 * 1024)]
    adapter_host_budget_kib: u64,
    /// A built web app to serve at / (index.html there): a tab that runs the model itself, with
    /// the files /v1/models lists under /v1/files.
    #[arg(long, value_name = "DIR")]
    web: Option<PathBuf>,
    /// The datanet POST /v1/attribution traces answers against, at its latest snapshot, whose
    /// span index `tributary index build` must have built. Without it the route answers 404.
    #[arg(long)]
    datanet: Option<String>,
    #[command(flatten)]
    places: Places,
    /// The node's private key, hex, that signs attribution receipts (prefer the environment
    /// variable to the command line). Without one a fresh key is made at startup and its address
    /// printed: its receipts verify, but name a node no chain knows.
    #[arg(
        long,
        env = "TRIBUTARY_NODE_KEY",
        hide_env_values = true,
        value_name = "HEX"
    )]
    node_key: Option<String>,
    /// The chain receipts are signed for (their EIP-712 domain); 31337 is anvil's.
    #[arg(long, default_value_t = 31337)]
    chain_id: u64,
    /// The ReceiptAnchor contract receipts are signed for (EIP-712 verifyingContract). The
    /// default is where a fresh anvil puts the first contract deployed. A receipt verifies only as
    /// Signed until its batch is anchored there; then as Anchored.
    #[arg(long, default_value = DEFAULT_ANCHOR)]
    anchor: Address,
}

pub fn serve(args: ServeArgs) -> Result<()> {
    match args.device {
        Device::Cpu => serve_on::<NdArray>(args, &Default::default()),
        Device::Wgpu => serve_on::<Wgpu>(args, &burn::backend::wgpu::WgpuDevice::default()),
    }
}

enum Command {
    Submit {
        request: Request,
        reply: oneshot::Sender<Result<u64, EngineError>>,
        events: tmpsc::UnboundedSender<Event>,
    },
}

struct AppState<B: SgmvBackend> {
    base: String,
    store: Arc<AdapterStore<B>>,
    tokenizer: Tokenizer,
    engine: mpsc::Sender<Command>,
    metrics: Arc<Mutex<EngineMetrics>>,
    eos: Vec<u32>,
    chat_template: Option<ChatTemplate>,
    fetcher: Fetcher,
    files: Files,
    node: Node,
    attributor: Option<Arc<SpanAttributor>>,
}

impl<B: SgmvBackend> AppState<B> {
    /// The adapter a model id names (`BASE` or `BASE:ADAPTER`); 404 for another base.
    fn resolve(&self, model: &str) -> Result<Option<String>, ApiError> {
        match openai::resolve(model, &self.base) {
            Some(adapter) => Ok(adapter.map(str::to_owned)),
            None => Err(ApiError::new(
                StatusCode::NOT_FOUND,
                "model_not_found",
                format!("no model `{model}`; see /v1/models"),
            )),
        }
    }

    fn adapter_manifest(&self, name: &str) -> Option<Arc<Manifest>> {
        self.files
            .adapters
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(name)
            .cloned()
    }
}

/// The files a tab downloads, hashed when the model or adapter was registered, and what was
/// sent of them.
#[derive(Debug)]
struct Files {
    base: Arc<Manifest>,
    adapters: Mutex<HashMap<String, Arc<Manifest>>>,
    requests: AtomicU64,
    /// Shared with the response bodies, which count as they are sent.
    bytes: Arc<AtomicU64>,
}

/// Who signs receipts, for which chain and anchor, and the next nonce.
#[derive(Debug)]
struct Node {
    signer: PrivateKeySigner,
    domain: Domain,
    /// Starts at a random value, so a restarted node does not reuse its earlier nonces.
    nonce: AtomicU64,
}

impl Node {
    fn new(key: Option<&str>, domain: Domain) -> Result<Self> {
        let signer = match key {
            Some(hex) => hex
                .trim()
                .parse()
                .context("--node-key / TRIBUTARY_NODE_KEY: not a hex private key")?,
            None => PrivateKeySigner::random(),
        };
        Ok(Self {
            signer,
            domain,
            nonce: AtomicU64::new(rand::random()),
        })
    }

    fn address(&self) -> Address {
        self.signer.address()
    }

    fn json(&self) -> Value {
        json!({"node": self.address(), "chainId": self.domain.chain_id, "anchor": self.domain.anchor})
    }
}

/// Turns an adapter location into a local folder, downloading URLs into the cache.
#[derive(Debug, Clone)]
struct Fetcher {
    cache: PathBuf,
    max_bytes: u64,
}

impl Fetcher {
    /// The folder to load from and, for a download, the content hash to pin it to.
    fn local(
        &self,
        location: &str,
        sha256: Option<[u8; 32]>,
    ) -> Result<(PathBuf, Option<[u8; 32]>), FetchError> {
        if location.contains("://") {
            let (dir, hash) = fetch_adapter(location, &self.cache, self.max_bytes, sha256)?;
            Ok((dir, Some(hash)))
        } else {
            Ok((PathBuf::from(location), sha256))
        }
    }
}

fn default_cache() -> PathBuf {
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(std::env::temp_dir);
    base.join("tributary/adapters")
}

fn serve_on<B: SgmvBackend + QuantBackend>(args: ServeArgs, device: &B::Device) -> Result<()> {
    // What can be wrong with the flags is found before the model is loaded.
    if let Some(web) = &args.web
        && !web.join("index.html").is_file()
    {
        bail!("--web {}: no index.html there", web.display());
    }
    let node = Node::new(
        args.node_key.as_deref(),
        Domain {
            chain_id: args.chain_id,
            anchor: args.anchor,
        },
    )?;
    let model_path = crate::run::model_path(args.model.as_deref())?;
    let source = ModelSource::open(&model_path)?;
    let attributor = match &args.datanet {
        Some(datanet) => Some(Arc::new(
            SpanAttributor::open(&args.places, datanet, &model_path)
                .with_context(|| format!("--datanet {datanet}"))?,
        )),
        None => None,
    };
    let base_files = Arc::new(Manifest::of_model(&source)?);
    let tokenizer = source.tokenizer()?;
    let chat_template = match &args.chat_template {
        Some(file) => {
            let text = std::fs::read_to_string(file)
                .with_context(|| format!("--chat-template {}", file.display()))?;
            // The model's special tokens still apply to a template given on its own.
            let own = source.chat_template()?;
            let (bos, eos) = own.as_ref().map_or((String::new(), String::new()), |t| {
                (t.bos_token().to_owned(), t.eos_token().to_owned())
            });
            Some(ChatTemplate::new(file, &text, &bos, &eos)?)
        }
        None => source.chat_template()?,
    };
    let model = Arc::new(source.load::<B>(device)?);
    let base = source.name();
    let mib = |m: u64| m << 20;
    let store = Arc::new(AdapterStore::new(
        Arc::clone(&model),
        Budgets {
            device_bytes: args.adapter_budget_kib << 10,
            host_bytes: args.adapter_host_budget_kib << 10,
        },
    ));
    let fetcher = Fetcher {
        cache: args.adapter_cache.clone().unwrap_or_else(default_cache),
        max_bytes: args.adapter_max_mib << 20,
    };
    let mut adapter_files = HashMap::new();
    for spec in &args.adapters {
        let (name, location) = spec
            .split_once('=')
            .with_context(|| format!("--adapter {spec}: expected NAME=FOLDER or NAME=URL"))?;
        let (dir, hash) = fetcher.local(location, None)?;
        AdapterWeights::open_dir(&dir, &model.config)?;
        let manifest = Manifest::of_adapter(&dir)?;
        store.register(name, AdapterSource::Dir(dir), hash)?;
        adapter_files.insert(name.to_owned(), Arc::new(manifest));
    }
    let config = EngineConfig {
        max_queue: args.max_queue,
        max_batch: args.max_batch,
        block_tokens: args.block_tokens,
        kv_budget_bytes: mib(args.kv_budget_mib),
    };
    let engine = Engine::new(Arc::clone(&store), config)?;
    let metrics = Arc::new(Mutex::new(engine.metrics()));
    let (tx, rx) = mpsc::channel();
    let engine_metrics = Arc::clone(&metrics);
    std::thread::Builder::new()
        .name("engine".into())
        .spawn(move || engine_loop(engine, rx, engine_metrics))?;
    let state = Arc::new(AppState {
        base,
        eos: model.config.eos_token_ids.clone(),
        store,
        tokenizer,
        engine: tx,
        metrics,
        chat_template,
        fetcher,
        files: Files {
            base: base_files,
            adapters: Mutex::new(adapter_files),
            requests: AtomicU64::new(0),
            bytes: Arc::new(AtomicU64::new(0)),
        },
        node,
        attributor,
    });
    let node = state.node.address();
    let mut app = Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/v1/models", get(models::<B>))
        .route("/v1/node", get(node_info::<B>))
        .route("/v1/files/{id}/{file}", get(file::<B>))
        .route("/v1/completions", post(completions::<B>))
        .route("/v1/chat/completions", post(chat_completions::<B>))
        .route("/v1/attribution", post(attribution::<B>))
        .route("/v1/adapters", post(register::<B>))
        .route("/metrics", get(metrics_text::<B>))
        .with_state(state);
    if let Some(web) = &args.web {
        // index.html at /; tower-http types files by extension, so .wasm goes out as
        // application/wasm, which WebAssembly.instantiateStreaming insists on.
        app = app.fallback_service(
            tower_http::services::ServeDir::new(web).append_index_html_on_directories(true),
        );
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let addr: SocketAddr = format!("{}:{}", args.host, args.port).parse()?;
        let listener = tokio::net::TcpListener::bind(addr).await?;
        let url = format!("http://{}", listener.local_addr()?);
        // The URL stays the last word: scripts and tests take it from there.
        println!(
            "tributary: serving {} as node {node} at {url}",
            model_path.display()
        );
        use std::io::Write as _;
        std::io::stdout().flush()?;
        tracing::info!(%url, model = %model_path.display(), %node, "serving");
        axum::serve(listener, app).await?;
        anyhow::Ok(())
    })
}

/// Steps while there is work; blocks for the next command when idle.
fn engine_loop<B: SgmvBackend>(
    mut engine: Engine<B>,
    commands: mpsc::Receiver<Command>,
    metrics: Arc<Mutex<EngineMetrics>>,
) {
    let mut listeners: std::collections::HashMap<u64, tmpsc::UnboundedSender<Event>> =
        std::collections::HashMap::new();
    loop {
        let next = if engine.is_idle() {
            match commands.recv() {
                Ok(c) => Some(c),
                Err(_) => return, // the server is gone
            }
        } else {
            commands.try_recv().ok()
        };
        if let Some(Command::Submit {
            request,
            reply,
            events,
        }) = next
        {
            let result = engine.submit(request);
            if let Ok(id) = &result {
                listeners.insert(*id, events);
            }
            let _ = reply.send(result);
            continue; // take every queued command before stepping
        }
        let stepped = pollster::block_on(engine.step());
        // Publish the counts before the events, so a client that has its last token sees its
        // blocks released in /metrics.
        *metrics.lock().unwrap_or_else(|e| e.into_inner()) = engine.metrics();
        match stepped {
            Ok(events) => {
                for event in events {
                    let (id, last) = match &event {
                        Event::Token { id, .. } => (*id, false),
                        Event::Finished { id, .. } | Event::Failed { id, .. } => (*id, true),
                    };
                    let gone = listeners.get(&id).is_none_or(|l| l.send(event).is_err());
                    if last || gone {
                        listeners.remove(&id);
                    }
                    if gone && !last {
                        engine.cancel(id); // the client went away: free its blocks now
                    }
                }
            }
            Err(e) => tracing::error!(error = %e, "engine step failed"),
        }
        *metrics.lock().unwrap_or_else(|e| e.into_inner()) = engine.metrics();
    }
}

/// An error in OpenAI's shape, with its HTTP status.
#[derive(Debug)]
struct ApiError {
    status: StatusCode,
    kind: &'static str,
    message: String,
}

impl ApiError {
    fn new(status: StatusCode, kind: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            kind,
            message: message.into(),
        }
    }

    fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_request_error", message)
    }

    fn engine_stopped() -> Self {
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "server_error",
            "the engine has stopped",
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = tributary_http::error_body(self.kind, &self.message);
        (self.status, axum::Json(body)).into_response()
    }
}

fn error(status: StatusCode, kind: &'static str, message: impl Into<String>) -> Response {
    ApiError::new(status, kind, message).into_response()
}

async fn models<B: SgmvBackend>(State(s): State<Arc<AppState<B>>>) -> Response {
    let entry = |id: &str, files: Option<&Manifest>| {
        let files: Vec<Value> = files
            .into_iter()
            .flat_map(|m| &m.files)
            .map(|f| {
                json!({"name": f.name, "url": file_url(id, &f.name), "sha256": f.sha256_hex(),
                       "bytes": f.bytes})
            })
            .collect();
        json!({"id": id, "object": "model", "owned_by": "tributary", "files": files})
    };
    let mut data = vec![entry(&s.base, Some(&s.files.base))];
    for name in s.store.names() {
        let id = format!("{}:{name}", s.base);
        data.push(entry(&id, s.adapter_manifest(&name).as_deref()));
    }
    let mut body = s.node.json();
    body["object"] = json!("list");
    body["data"] = json!(data);
    axum::Json(body).into_response()
}

/// Which node signs this server's receipts, and what attribution runs against.
async fn node_info<B: SgmvBackend>(State(s): State<Arc<AppState<B>>>) -> Response {
    let mut body = s.node.json();
    body["attribution"] = match &s.attributor {
        Some(a) => json!({"datanet": a.datanet(), "method": "span",
                          "snapshot": {"version": a.version(), "root": a.root()}}),
        None => Value::Null,
    };
    axum::Json(body).into_response()
}

/// `/v1/files/{id}/{file}` with each segment percent-encoded (the colon of `BASE:ADAPTER` too);
/// the route decodes, so the raw colon works as well.
fn file_url(id: &str, name: &str) -> String {
    fn encode(segment: &str) -> String {
        segment
            .bytes()
            .map(|b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                    char::from(b).to_string()
                }
                _ => format!("%{b:02X}"),
            })
            .collect()
    }
    format!("/v1/files/{}/{}", encode(id), encode(name))
}

/// `GET /v1/files/{id}/{file}`: only the files `/v1/models` lists, looked up by name, so no
/// path reaches the disk from the URL.
async fn file<B: SgmvBackend>(
    State(s): State<Arc<AppState<B>>>,
    path: Result<Path<(String, String)>, PathRejection>,
    headers: HeaderMap,
) -> Response {
    s.files.requests.fetch_add(1, Ordering::Relaxed);
    let not_found = |what: String| {
        error(
            StatusCode::NOT_FOUND,
            "not_found_error",
            format!("{what}; see /v1/models"),
        )
    };
    let Ok(Path((id, name))) = path else {
        return not_found("no such file".into());
    };
    let manifest = match s.resolve(&id) {
        Ok(None) => Some(Arc::clone(&s.files.base)),
        Ok(Some(adapter)) => s.adapter_manifest(&adapter),
        Err(_) => None,
    };
    let Some(manifest) = manifest else {
        return not_found(format!("no model `{id}`"));
    };
    match manifest.get(&name) {
        Some(entry) => send_file(entry, &headers, Arc::clone(&s.files.bytes)).await,
        None => not_found(format!("model `{id}` has no file `{name}`")),
    }
}

/// The file, or the range of it asked for, with its hash as a strong ETag: the names are not
/// content-addressed, so the tab revalidates (`no-cache`) and a 304 costs no body.
async fn send_file(entry: &FileEntry, headers: &HeaderMap, sent: Arc<AtomicU64>) -> Response {
    use tokio::io::{AsyncReadExt as _, AsyncSeekExt as _};

    let hex = entry.sha256_hex();
    let builder = Response::builder()
        .header(header::ETAG, tributary_http::etag(&hex))
        .header("x-content-sha256", &hex)
        .header(header::ACCEPT_RANGES, "bytes")
        .header(header::CACHE_CONTROL, "no-cache");
    let reply = |builder: axum::http::response::Builder, status: StatusCode, body: Body| {
        builder.status(status).body(body).unwrap_or_else(|e| {
            error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "server_error",
                e.to_string(),
            )
        })
    };
    let header_str = |name| {
        headers
            .get(name)
            .and_then(|v: &HeaderValue| v.to_str().ok())
    };
    let conditions = Conditions {
        if_none_match: header_str(header::IF_NONE_MATCH),
        if_range: header_str(header::IF_RANGE),
        range: header_str(header::RANGE),
    };
    let size = entry.bytes;
    let (status, start, len, builder) = match conditions.answer(&hex, size) {
        Answer::NotModified => return reply(builder, StatusCode::NOT_MODIFIED, Body::empty()),
        Answer::Whole => (StatusCode::OK, 0, size, builder),
        Answer::Unsatisfiable => {
            let builder = builder.header(header::CONTENT_RANGE, format!("bytes */{size}"));
            return reply(builder, StatusCode::RANGE_NOT_SATISFIABLE, Body::empty());
        }
        Answer::Part(first, last) => (
            StatusCode::PARTIAL_CONTENT,
            first,
            last - first + 1,
            builder.header(
                header::CONTENT_RANGE,
                format!("bytes {first}-{last}/{size}"),
            ),
        ),
    };
    let opened = async {
        let mut file = tokio::fs::File::open(&entry.path).await?;
        // The hash and size were taken at startup; a file changed since would go out under a
        // tag that is no longer true.
        if file.metadata().await?.len() != size {
            return Err(std::io::Error::other(
                "changed on disk since the server hashed it; restart the server",
            ));
        }
        file.seek(SeekFrom::Start(start)).await?;
        Ok(file.take(len))
    };
    let file = match opened.await {
        Ok(f) => f,
        Err(e) => {
            tracing::error!(file = %entry.path.display(), error = %e, "serving a model file");
            return error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "server_error",
                format!("{}: {e}", entry.name),
            );
        }
    };
    let body =
        futures_util::StreamExt::inspect(tokio_util::io::ReaderStream::new(file), move |chunk| {
            if let Ok(chunk) = chunk {
                sent.fetch_add(chunk.len() as u64, Ordering::Relaxed);
            }
        });
    let content_type = if entry.name.ends_with(".json") {
        "application/json"
    } else if entry.name.ends_with(".jinja") {
        "text/plain; charset=utf-8"
    } else {
        "application/octet-stream"
    };
    let builder = builder
        .header(header::CONTENT_TYPE, content_type)
        .header(header::CONTENT_LENGTH, len);
    reply(builder, status, Body::from_stream(body))
}

/// `POST /v1/attribution` with `{model, prompt, text}`: the span attribution of `text` against
/// the configured datanet, and a receipt this node signs for it. The tab generated `text`
/// itself; the receipt commits to what it was told, so a wallet checks it against the answer it
/// showed.
async fn attribution<B: SgmvBackend>(State(s): State<Arc<AppState<B>>>, body: Bytes) -> Response {
    let Some(attributor) = s.attributor.clone() else {
        return error(
            StatusCode::NOT_FOUND,
            "not_found_error",
            "attribution is not configured (start with --datanet)",
        );
    };
    let v = match parse_json(&body) {
        Ok(v) => v,
        Err(e) => return e.into_response(),
    };
    let (Some(model), Some(prompt), Some(text)) = (
        v["model"].as_str(),
        v["prompt"].as_str(),
        v["text"].as_str(),
    ) else {
        return bad_request("`model`, `prompt` and `text` must be strings");
    };
    let adapter = match s.resolve(model) {
        Ok(None) => B256::ZERO,
        Ok(Some(name)) => match s.adapter_manifest(&name) {
            Some(m) => m.keccak,
            None => {
                return error(
                    StatusCode::NOT_FOUND,
                    "model_not_found",
                    format!("no adapter `{name}` is registered; see /v1/models"),
                );
            }
        },
        Err(e) => return e.into_response(),
    };
    let root = attributor.root();
    let traced = {
        let text = text.to_owned();
        tokio::task::spawn_blocking(move || attributor.attribute(&text, ATTRIBUTION_SHARE)).await
    };
    let out = match traced {
        Ok(Ok(out)) => out,
        // Only the tokenizer fails here, on text it cannot encode.
        Ok(Err(e)) => return bad_request(format!("{e:#}")),
        Err(e) => {
            return error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "server_error",
                e.to_string(),
            );
        }
    };
    let attributions = out.split.attributions(METHOD_SPAN);
    if attributions.len() > MAX_ATTRIBUTIONS {
        return error(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_request_error",
            format!(
                "{} contributions share this text, more than a receipt holds ({MAX_ATTRIBUTIONS})",
                attributions.len()
            ),
        );
    }
    let receipt = Receipt {
        node: s.node.address(),
        baseModel: s.files.base.keccak,
        adapter,
        prompt: keccak256(prompt.as_bytes()),
        output: keccak256(text.as_bytes()),
        datanetRoots: vec![root],
        attributions,
        thresholdPpm: out.split.threshold_ppm(),
        timestamp: SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs(),
        nonce: s.node.nonce.fetch_add(1, Ordering::Relaxed),
    };
    let signed: SignedReceipt = match receipt.sign(s.node.domain, &s.node.signer) {
        Ok(signed) => signed,
        Err(e) => {
            return error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "server_error",
                format!("signing the receipt: {e}"),
            );
        }
    };
    axum::Json(json!({"attribution": out.json, "receipt": signed})).into_response()
}

/// `POST /v1/adapters` with `{name, path}` (a folder on the server) or `{name, url}`, and
/// optionally `sha256`, the hex [`content_hash`](tributary_serve::content_hash) to insist on.
async fn register<B: SgmvBackend>(State(s): State<Arc<AppState<B>>>, body: Bytes) -> Response {
    let v = match parse_json(&body) {
        Ok(v) => v,
        Err(e) => return e.into_response(),
    };
    let location = v["url"].as_str().or(v["path"].as_str()).map(str::to_owned);
    let (Some(name), Some(location)) = (v["name"].as_str(), location) else {
        return bad_request("`name` and one of `path` or `url` are required");
    };
    let sha256 = match v["sha256"].as_str().map(parse_hash).transpose() {
        Ok(h) => h,
        Err(e) => return bad_request(e),
    };
    if s.store.contains(name) {
        return error(
            StatusCode::CONFLICT,
            "invalid_request_error",
            format!("an adapter named `{name}` is already registered"),
        );
    }
    // Downloads and hashing block; keep them off the request threads.
    let fetcher = s.fetcher.clone();
    let fetched = tokio::task::spawn_blocking(move || {
        let (dir, hash) = fetcher.local(&location, sha256)?;
        let manifest = Manifest::of_adapter(&dir);
        Ok::<_, FetchError>((dir, hash, manifest))
    })
    .await;
    let (dir, hash, manifest) = match fetched {
        Ok(Ok(found)) => found,
        Ok(Err(e @ FetchError::BadUrl(_))) => return bad_request(e.to_string()),
        Ok(Err(e @ FetchError::Hash { .. })) => {
            return error(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_adapter",
                e.to_string(),
            );
        }
        Ok(Err(e)) => {
            return error(
                StatusCode::BAD_GATEWAY,
                "adapter_fetch_failed",
                e.to_string(),
            );
        }
        Err(e) => {
            return error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "server_error",
                e.to_string(),
            );
        }
    };
    // Validate against the base now, so a wrong adapter is refused at registration.
    if let Err(e) = AdapterWeights::open_dir(&dir, &s.store.model().config) {
        return error(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_adapter",
            e.to_string(),
        );
    }
    let manifest = match manifest {
        Ok(m) => Arc::new(m),
        Err(e) => {
            return error(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_adapter",
                format!("{e:#}"),
            );
        }
    };
    match s.store.register(name, AdapterSource::Dir(dir), hash) {
        Ok(()) => {
            s.files
                .adapters
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(name.to_owned(), manifest);
            (
                StatusCode::CREATED,
                axum::Json(json!({"id": format!("{}:{name}", s.base)})),
            )
                .into_response()
        }
        Err(e) => error(StatusCode::CONFLICT, "invalid_request_error", e.to_string()),
    }
}

fn parse_hash(hex: &str) -> Result<[u8; 32], String> {
    tributary_peft::parse_sha256_hex(hex)
        .ok_or_else(|| format!("`sha256` must be 64 hex digits, got `{hex}`"))
}

async fn metrics_text<B: SgmvBackend>(State(s): State<Arc<AppState<B>>>) -> String {
    let e = *s.metrics.lock().unwrap_or_else(|e| e.into_inner());
    let a = s.store.metrics();
    format!(
        "# TYPE tributary_requests_waiting gauge\ntributary_requests_waiting {}\n\
         # TYPE tributary_requests_running gauge\ntributary_requests_running {}\n\
         # TYPE tributary_kv_blocks_used gauge\ntributary_kv_blocks_used {}\n\
         # TYPE tributary_kv_blocks_total gauge\ntributary_kv_blocks_total {}\n\
         # TYPE tributary_tokens_generated_total counter\ntributary_tokens_generated_total {}\n\
         # TYPE tributary_adapter_hits_total counter\ntributary_adapter_hits_total {}\n\
         # TYPE tributary_adapter_host_hits_total counter\ntributary_adapter_host_hits_total {}\n\
         # TYPE tributary_adapter_misses_total counter\ntributary_adapter_misses_total {}\n\
         # TYPE tributary_adapter_evictions_total counter\ntributary_adapter_evictions_total{{tier=\"device\"}} {}\ntributary_adapter_evictions_total{{tier=\"host\"}} {}\n\
         # TYPE tributary_adapter_resident_bytes gauge\ntributary_adapter_resident_bytes{{tier=\"device\"}} {}\ntributary_adapter_resident_bytes{{tier=\"host\"}} {}\n\
         # TYPE tributary_file_requests_total counter\ntributary_file_requests_total {}\n\
         # TYPE tributary_file_bytes_total counter\ntributary_file_bytes_total {}\n",
        e.waiting,
        e.running,
        e.kv_blocks_used,
        e.kv_blocks_total,
        e.tokens,
        a.hits,
        a.host_hits,
        a.misses,
        a.device_evictions,
        a.host_evictions,
        a.device_bytes,
        a.host_bytes,
        s.files.requests.load(Ordering::Relaxed),
        s.files.bytes.load(Ordering::Relaxed),
    )
}

fn bad_request(message: impl Into<String>) -> Response {
    ApiError::bad_request(message).into_response()
}

fn parse_json(body: &[u8]) -> Result<Value, ApiError> {
    serde_json::from_slice::<Value>(body)
        .map_err(|e| ApiError::bad_request(format!("the body is not valid JSON: {e}")))
}

async fn completions<B: SgmvBackend>(State(s): State<Arc<AppState<B>>>, body: Bytes) -> Response {
    let v = match parse_json(&body) {
        Ok(v) => v,
        Err(e) => return e.into_response(),
    };
    let Some(prompt) = v["prompt"].as_str() else {
        return bad_request("`prompt` must be a string");
    };
    complete(&s, &v, prompt, Shape::Text).await
}

async fn chat_completions<B: SgmvBackend>(
    State(s): State<Arc<AppState<B>>>,
    body: Bytes,
) -> Response {
    let v = match parse_json(&body) {
        Ok(v) => v,
        Err(e) => return e.into_response(),
    };
    let Some(template) = &s.chat_template else {
        return bad_request(
            "this model has no chat template (chat_template.jinja or tokenizer_config.json); \
             start the server with --chat-template FILE, or use /v1/completions",
        );
    };
    let messages = match chat_messages(&v["messages"]) {
        Ok(m) => m,
        Err(e) => return bad_request(e),
    };
    match template.render(&messages, true) {
        Ok(prompt) => complete(&s, &v, &prompt, Shape::Chat).await,
        // The template refused the conversation (roles out of order, say).
        Err(e) => bad_request(e.to_string()),
    }
}

/// `messages` as OpenAI sends them: content a string or a list of text parts.
fn chat_messages(v: &Value) -> Result<Vec<ChatMessage>, String> {
    let list = v.as_array().ok_or("`messages` must be a list")?;
    if list.is_empty() {
        return Err("`messages` is empty".into());
    }
    list.iter()
        .enumerate()
        .map(|(i, m)| {
            let role = m["role"]
                .as_str()
                .ok_or(format!("messages[{i}].role must be a string"))?;
            let content = match &m["content"] {
                Value::String(text) => text.clone(),
                Value::Array(parts) => parts
                    .iter()
                    .map(|p| match (p["type"].as_str(), p["text"].as_str()) {
                        (Some("text"), Some(text)) => Ok(text),
                        _ => Err(format!(
                            "messages[{i}].content: only text parts are supported"
                        )),
                    })
                    .collect::<Result<String, _>>()?,
                _ => return Err(format!("messages[{i}].content must be a string or a list")),
            };
            Ok(ChatMessage {
                role: role.to_owned(),
                content,
            })
        })
        .collect()
}

/// Submits `prompt` with the request's sampling fields and answers in `shape`, streamed as
/// server-sent events when asked.
async fn complete<B: SgmvBackend>(
    s: &AppState<B>,
    v: &Value,
    prompt: &str,
    shape: Shape,
) -> Response {
    let Some(model) = v["model"].as_str() else {
        return bad_request("`model` is required");
    };
    let adapter = match s.resolve(model) {
        Ok(adapter) => adapter,
        Err(e) => return e.into_response(),
    };
    let prompt_ids = match s.tokenizer.encode(prompt) {
        Ok(ids) => ids,
        Err(e) => return bad_request(e.to_string()),
    };
    let params = openai::sampling(v, &s.eos);
    let request = Request {
        adapter,
        prompt: prompt_ids.clone(),
        params,
    };
    let rx = match submit(s, request).await {
        Ok(rx) => rx,
        Err(e) => return e.into_response(),
    };
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let reply = Reply::new(model, shape, now.as_secs(), now.as_nanos());
    if v["stream"].as_bool() == Some(true) {
        return stream_reply(reply, rx, s.tokenizer.clone());
    }
    let mut tokens = Vec::new();
    let mut reason = StopReason::MaxTokens;
    let mut rx = rx;
    while let Some(event) = rx.recv().await {
        match event {
            Event::Token { token, .. } => tokens.push(token),
            Event::Finished { reason: r, .. } => {
                reason = r;
                break;
            }
            Event::Failed { error: e, .. } => {
                return error(StatusCode::INTERNAL_SERVER_ERROR, "server_error", e);
            }
        }
    }
    let text = s.tokenizer.decode(&tokens).unwrap_or_default();
    let body = reply.complete(&text, &tokens, prompt_ids.len(), &reason);
    axum::Json(body).into_response()
}

/// Hands the request to the engine; the events come back on the returned channel.
async fn submit<B: SgmvBackend>(
    s: &AppState<B>,
    request: Request,
) -> Result<tmpsc::UnboundedReceiver<Event>, ApiError> {
    let (reply, id_rx) = oneshot::channel();
    let (events, rx) = tmpsc::unbounded_channel();
    s.engine
        .send(Command::Submit {
            request,
            reply,
            events,
        })
        .map_err(|_| ApiError::engine_stopped())?;
    match id_rx.await {
        Ok(Ok(_)) => Ok(rx),
        Ok(Err(e)) => {
            let status =
                StatusCode::from_u16(openai::status(&e)).unwrap_or(StatusCode::BAD_REQUEST);
            Err(ApiError::new(
                status,
                "invalid_request_error",
                e.to_string(),
            ))
        }
        Err(_) => Err(ApiError::engine_stopped()),
    }
}

/// Server-sent events, one per token, then the finish reason and `[DONE]`.
fn stream_reply(
    reply: Reply,
    rx: tmpsc::UnboundedReceiver<Event>,
    tokenizer: Tokenizer,
) -> Response {
    let start = (rx, ChunkStream::new(reply, tokenizer), false);
    let stream = stream::unfold(start, |(mut rx, mut chunks, done)| async move {
        if done {
            return None;
        }
        let (data, done) = match rx.recv().await? {
            Event::Token { token, .. } => (chunks.token(token), false),
            Event::Finished { reason, .. } => (chunks.finished(&reason), true),
            Event::Failed { error, .. } => (openai::stream_error(&error), true),
        };
        let event = SseEvent::default().data(data.to_string());
        Some((Ok::<_, std::convert::Infallible>(event), (rx, chunks, done)))
    });
    let done = stream::once(async { Ok(SseEvent::default().data("[DONE]")) });
    Sse::new(futures_util::StreamExt::chain(stream, done)).into_response()
}
