//! `tributary serve`: the OpenAI-compatible HTTP API over the continuous-batching engine.
//!
//! The engine lives on its own thread (it owns the model's device state and steps as long as
//! work is queued); handlers talk to it over channels. A request's events come back on its own
//! channel; when a client goes away its receiver is dropped, the next event fails to send, and the
//! engine cancels the request, which frees its KV blocks.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, mpsc};
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result};
use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::sse::{Event as SseEvent, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use burn::backend::{NdArray, Wgpu};
use clap::Args;
use futures_util::stream;
use serde_json::{Value, json};
use tokio::sync::{mpsc as tmpsc, oneshot};
use tributary_model::{AdapterWeights, Model, SamplingParams, SgmvBackend, StopReason, Tokenizer};
use tributary_serve::{
    AdapterSource, AdapterStore, Budgets, Engine, EngineConfig, EngineError, EngineMetrics, Event,
    Request,
};

use crate::run::Device;

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Hugging Face model folder (config.json, model.safetensors, tokenizer.json).
    #[arg(long)]
    model: PathBuf,
    /// Adapters to register at start, as NAME=FOLDER (repeatable); loaded on first use.
    #[arg(long = "adapter", value_name = "NAME=FOLDER")]
    adapters: Vec<String>,
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
    #[arg(long, default_value_t = 256)]
    kv_budget_mib: u64,
    /// Device memory for resident adapters, KiB (least recently used ones are evicted beyond it).
    #[arg(long, default_value_t = 256 * 1024)]
    adapter_budget_kib: u64,
    /// Host memory for parsed adapters kept off the device, KiB.
    #[arg(long, default_value_t = 1024 * 1024)]
    adapter_host_budget_kib: u64,
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
}

fn serve_on<B: SgmvBackend>(args: ServeArgs, device: &B::Device) -> Result<()> {
    let tokenizer = Tokenizer::from_file(&args.model.join("tokenizer.json"))?;
    let model = Arc::new(Model::<B>::load(&args.model, device)?);
    let base = args
        .model
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "base".into());
    let mib = |m: u64| m << 20;
    let store = Arc::new(AdapterStore::new(
        Arc::clone(&model),
        Budgets {
            device_bytes: args.adapter_budget_kib << 10,
            host_bytes: args.adapter_host_budget_kib << 10,
        },
    ));
    for spec in &args.adapters {
        let (name, dir) = spec
            .split_once('=')
            .with_context(|| format!("--adapter {spec}: expected NAME=FOLDER"))?;
        AdapterWeights::open_dir(dir.as_ref(), &model.config)?;
        store.register(name, AdapterSource::Dir(dir.into()), None)?;
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
    });
    let app = Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/v1/models", get(models::<B>))
        .route("/v1/completions", post(completions::<B>))
        .route("/v1/adapters", post(register::<B>))
        .route("/metrics", get(metrics_text::<B>))
        .with_state(state);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let addr: SocketAddr = format!("{}:{}", args.host, args.port).parse()?;
        let listener = tokio::net::TcpListener::bind(addr).await?;
        let url = format!("http://{}", listener.local_addr()?);
        println!(
            "tributary: serving {} (weights as given; fixtures are random) at {url}",
            args.model.display()
        );
        use std::io::Write as _;
        std::io::stdout().flush()?;
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
        match pollster::block_on(engine.step()) {
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

/// An error in OpenAI's shape.
fn error(status: StatusCode, kind: &str, message: impl Into<String>) -> Response {
    let body =
        json!({"error": {"message": message.into(), "type": kind, "param": null, "code": null}});
    (status, axum::Json(body)).into_response()
}

async fn models<B: SgmvBackend>(State(s): State<Arc<AppState<B>>>) -> Response {
    let mut data = vec![json!({"id": s.base, "object": "model", "owned_by": "tributary"})];
    for name in s.store.names() {
        data.push(
            json!({"id": format!("{}:{name}", s.base), "object": "model", "owned_by": "tributary"}),
        );
    }
    axum::Json(json!({"object": "list", "data": data})).into_response()
}

async fn register<B: SgmvBackend>(State(s): State<Arc<AppState<B>>>, body: Bytes) -> Response {
    let Ok(v) = serde_json::from_slice::<Value>(&body) else {
        return error(
            StatusCode::BAD_REQUEST,
            "invalid_request_error",
            "the body is not valid JSON",
        );
    };
    let (Some(name), Some(path)) = (v["name"].as_str(), v["path"].as_str()) else {
        return error(
            StatusCode::BAD_REQUEST,
            "invalid_request_error",
            "`name` and `path` are required",
        );
    };
    // Validate against the base now, so a wrong adapter is refused at registration.
    if let Err(e) = AdapterWeights::open_dir(path.as_ref(), &s.store.model().config) {
        return error(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_adapter",
            e.to_string(),
        );
    }
    match s
        .store
        .register(name, AdapterSource::Dir(path.into()), None)
    {
        Ok(()) => (
            StatusCode::CREATED,
            axum::Json(json!({"id": format!("{}:{name}", s.base)})),
        )
            .into_response(),
        Err(e) => error(StatusCode::CONFLICT, "invalid_request_error", e.to_string()),
    }
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
         # TYPE tributary_adapter_resident_bytes gauge\ntributary_adapter_resident_bytes{{tier=\"device\"}} {}\ntributary_adapter_resident_bytes{{tier=\"host\"}} {}\n",
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
        a.host_bytes
    )
}

async fn completions<B: SgmvBackend>(State(s): State<Arc<AppState<B>>>, body: Bytes) -> Response {
    let Ok(v) = serde_json::from_slice::<Value>(&body) else {
        return error(
            StatusCode::BAD_REQUEST,
            "invalid_request_error",
            "the body is not valid JSON",
        );
    };
    let Some(model) = v["model"].as_str() else {
        return error(
            StatusCode::BAD_REQUEST,
            "invalid_request_error",
            "`model` is required",
        );
    };
    let Some(prompt) = v["prompt"].as_str() else {
        return error(
            StatusCode::BAD_REQUEST,
            "invalid_request_error",
            "`prompt` must be a string",
        );
    };
    let adapter = match model.split_once(':') {
        None if model == s.base => None,
        Some((base, adapter)) if base == s.base => Some(adapter.to_owned()),
        _ => {
            return error(
                StatusCode::NOT_FOUND,
                "model_not_found",
                format!("no model `{model}`; see /v1/models"),
            );
        }
    };
    let prompt_ids = match s.tokenizer.encode(prompt) {
        Ok(ids) => ids,
        Err(e) => {
            return error(
                StatusCode::BAD_REQUEST,
                "invalid_request_error",
                e.to_string(),
            );
        }
    };
    let params = SamplingParams {
        temperature: v["temperature"].as_f64().unwrap_or(1.0) as f32,
        top_k: 0,
        top_p: v["top_p"].as_f64().unwrap_or(1.0) as f32,
        seed: v["seed"].as_u64().unwrap_or(0),
        max_tokens: v["max_tokens"].as_u64().unwrap_or(16) as usize,
        // `ignore_eos` as vLLM spells it: keep going past end-of-sequence.
        stop_tokens: if v["ignore_eos"].as_bool() == Some(true) {
            Vec::new()
        } else {
            s.eos.clone()
        },
    };
    let (reply, id_rx) = oneshot::channel();
    let (events, mut rx) = tmpsc::unbounded_channel();
    let request = Request {
        adapter,
        prompt: prompt_ids.clone(),
        params,
    };
    if s.engine
        .send(Command::Submit {
            request,
            reply,
            events,
        })
        .is_err()
    {
        return error(
            StatusCode::SERVICE_UNAVAILABLE,
            "server_error",
            "the engine has stopped",
        );
    }
    match id_rx.await {
        Ok(Ok(_)) => {}
        Ok(Err(e)) => {
            let status = match &e {
                EngineError::UnknownAdapter(_) => StatusCode::NOT_FOUND,
                EngineError::OverContext(..) | EngineError::OverKvBudget(..) => {
                    StatusCode::PAYLOAD_TOO_LARGE
                }
                EngineError::QueueFull(_) => StatusCode::TOO_MANY_REQUESTS,
                _ => StatusCode::BAD_REQUEST,
            };
            return error(status, "invalid_request_error", e.to_string());
        }
        Err(_) => {
            return error(
                StatusCode::SERVICE_UNAVAILABLE,
                "server_error",
                "the engine has stopped",
            );
        }
    }
    let id = format!(
        "cmpl-{}",
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos())
    );
    let created = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let finish = |r: &StopReason| {
        if *r == StopReason::StopToken {
            "stop"
        } else {
            "length"
        }
    };
    if v["stream"].as_bool() == Some(true) {
        let tokenizer = s.tokenizer.clone();
        let model = model.to_owned();
        // Decode everything so far and send what is new, so characters split across tokens come
        // out whole.
        let stream = stream::unfold(
            (rx, Vec::<u32>::new(), 0usize, false),
            move |(mut rx, mut tokens, mut sent, done)| {
                let (tokenizer, model, id) = (tokenizer.clone(), model.clone(), id.clone());
                async move {
                    if done {
                        return None;
                    }
                    let chunk = |text: &str, reason: Value| {
                        json!({"id": id, "object": "text_completion", "created": created, "model": model,
                               "choices": [{"index": 0, "text": text, "finish_reason": reason}]})
                    };
                    match rx.recv().await {
                        Some(Event::Token { token, .. }) => {
                            tokens.push(token);
                            let text = tokenizer.decode(&tokens).unwrap_or_default();
                            let delta = if text.len() > sent && text.is_char_boundary(sent) {
                                text[sent..].to_owned()
                            } else {
                                String::new()
                            };
                            sent = sent.max(text.len());
                            let e =
                                SseEvent::default().data(chunk(&delta, Value::Null).to_string());
                            Some((
                                Ok::<_, std::convert::Infallible>(e),
                                (rx, tokens, sent, false),
                            ))
                        }
                        Some(Event::Finished { reason, .. }) => {
                            let e = SseEvent::default()
                                .data(chunk("", finish(&reason).into()).to_string());
                            Some((Ok(e), (rx, tokens, sent, true)))
                        }
                        Some(Event::Failed { error, .. }) => {
                            let e = SseEvent::default().data(
                                json!({"error": {"message": error, "type": "server_error"}})
                                    .to_string(),
                            );
                            Some((Ok(e), (rx, tokens, sent, true)))
                        }
                        None => None,
                    }
                }
            },
        );
        let done = stream::once(async { Ok(SseEvent::default().data("[DONE]")) });
        return Sse::new(futures_util::StreamExt::chain(stream, done)).into_response();
    }
    let mut tokens = Vec::new();
    let mut reason = StopReason::MaxTokens;
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
    axum::Json(json!({
        "id": id, "object": "text_completion", "created": created, "model": model,
        "choices": [{"index": 0, "text": text, "finish_reason": finish(&reason), "token_ids": tokens}],
        "usage": {"prompt_tokens": prompt_ids.len(), "completion_tokens": tokens.len(),
                  "total_tokens": prompt_ids.len() + tokens.len()},
    }))
    .into_response()
}
