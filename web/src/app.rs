//! The page: model and adapter pickers from the node's `/v1/models`, a prompt, streamed answers
//! (two side by side in compare mode, batched together in the worker), live speed, and for each
//! answer the node's attribution with its receipt verified here in the tab.

use futures::channel::mpsc;
use futures::{SinkExt, StreamExt};
use gloo::worker::Spawnable;
use gloo::worker::reactor::ReactorBridge;
use leptos::prelude::*;
use leptos::task::spawn_local;
use serde_json::{Value, json};
use tributary_receipt::{Address, B256, SignedReceipt, keccak256, verify};

use crate::models::{self, Base};
use crate::protocol::{Backend, Fetching, FromWorker, Sampling, ToWorker};
use crate::worker::Inference;

/// Switches read from the page's query string (for users, and for the browser tests).
#[derive(Debug, Clone, Copy)]
struct Flags {
    backend: Backend,
    fetching: Fetching,
}

impl Flags {
    fn from_location() -> Self {
        let search = window().location().search().unwrap_or_default();
        let params = web_sys::UrlSearchParams::new_with_str(&search).ok();
        let get = |k: &str| params.as_ref().and_then(|p| p.get(k));
        Flags {
            backend: match get("backend").as_deref() {
                Some("cpu") => Backend::Cpu,
                _ => Backend::Auto,
            },
            fetching: Fetching {
                range_chunk: get("chunk").and_then(|c| c.parse().ok()).unwrap_or(4 << 20),
                use_cache: get("nocache").is_none(),
            },
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
struct FileProgress {
    name: String,
    done: u64,
    total: u64,
    from_cache: bool,
}

#[derive(Debug, Clone, PartialEq)]
enum Verdict {
    Verified { trust: String },
    Rejected { step: String, reason: String },
}

#[derive(Debug, Clone, PartialEq)]
struct Share {
    who: String,
    ppm: f64,
    /// The matched spans of this contributor's (or datanet's) contributions, for the hover.
    spans: Vec<String>,
}

#[derive(Debug, Clone, PartialEq)]
enum AttributionView {
    Pending,
    Unavailable(String),
    Shown {
        verdict: Verdict,
        node: String,
        contributors: Vec<Share>,
        datanets: Vec<Share>,
    },
}

#[derive(Debug, Clone, PartialEq)]
struct Lane {
    model: String,
    text: String,
    tokens: Vec<u32>,
    done: bool,
    first_ms: Option<f64>,
    last_ms: f64,
    worker_memory_bytes: u64,
    attribution: AttributionView,
}

impl Lane {
    fn new(model: String) -> Self {
        Lane {
            model,
            text: String::new(),
            tokens: Vec::new(),
            done: false,
            first_ms: None,
            last_ms: 0.0,
            worker_memory_bytes: 0,
            attribution: AttributionView::Pending,
        }
    }

    /// Decode speed over the tokens after the first (the first includes the prefill).
    fn tokens_per_s(&self) -> Option<f64> {
        let first = self.first_ms?;
        let n = self.tokens.len();
        (n > 1 && self.last_ms > first).then(|| (n - 1) as f64 * 1000.0 / (self.last_ms - first))
    }
}

/// Everything the page shows, as signals.
#[derive(Clone, Copy)]
struct State {
    bases: RwSignal<Vec<Base>>,
    phase: RwSignal<&'static str>,
    backend: RwSignal<String>,
    notices: RwSignal<Vec<String>>,
    error: RwSignal<Option<String>>,
    files: RwSignal<Vec<FileProgress>>,
    lanes: RwSignal<Vec<Lane>>,
    prompt: RwSignal<String>,
    job: RwSignal<u32>,
}

pub fn main() {
    console_error_panic_hook_install();
    leptos::mount::mount_to_body(App);
}

fn console_error_panic_hook_install() {
    std::panic::set_hook(Box::new(|info| {
        web_sys::console::error_1(&format!("panic: {info}").into());
    }));
}

#[component]
fn App() -> impl IntoView {
    let flags = Flags::from_location();
    let state = State {
        bases: RwSignal::new(Vec::new()),
        phase: RwSignal::new("starting"),
        backend: RwSignal::new(String::new()),
        notices: RwSignal::new(Vec::new()),
        error: RwSignal::new(None),
        files: RwSignal::new(Vec::new()),
        lanes: RwSignal::new(Vec::new()),
        prompt: RwSignal::new("This License applies to any program".to_owned()),
        job: RwSignal::new(0),
    };
    let base = RwSignal::new(String::new());
    let adapter_a = RwSignal::new(String::new());
    let adapter_b = RwSignal::new(String::new());
    let compare = RwSignal::new(false);
    let temperature = RwSignal::new(0.0f32);
    let top_p = RwSignal::new(1.0f32);
    let top_k = RwSignal::new(0usize);
    let max_tokens = RwSignal::new(24usize);
    let seed = RwSignal::new(0u64);

    // The worker's inbox: the page sends through a channel, one task forwards to the bridge.
    let (to_worker, mut outbox) = mpsc::unbounded::<ToWorker>();
    let bridge: ReactorBridge<Inference> = Inference::spawner().spawn("./worker.js");
    let (mut sink, mut stream) = bridge.split();
    spawn_local(async move {
        while let Some(message) = outbox.next().await {
            if sink.send(message).await.is_err() {
                break;
            }
        }
    });
    spawn_local(async move {
        while let Some(message) = stream.next().await {
            on_worker(state, message);
        }
    });

    // The model list, then the base model into the worker.
    {
        let to_worker = to_worker.clone();
        spawn_local(async move {
            match load_models().await {
                Ok(bases) => {
                    let first = bases[0].clone();
                    base.set(first.id.clone());
                    if let Some(a) = first.adapters.first() {
                        adapter_a.set(a.name.clone());
                    }
                    if let Some(b) = first.adapters.get(1) {
                        adapter_b.set(b.name.clone());
                    }
                    state.bases.set(bases);
                    state.phase.set("loading");
                    let _ = to_worker.unbounded_send(ToWorker::Load {
                        base: first.id,
                        files: first.files,
                        backend: flags.backend,
                        fetching: flags.fetching,
                    });
                }
                Err(e) => fail(state, e),
            }
        });
    }

    let generate = {
        let to_worker = to_worker.clone();
        move |_| {
            let bases = state.bases.get_untracked();
            let Some(b) = bases.iter().find(|b| b.id == base.get_untracked()) else {
                return;
            };
            let pick = |name: String| b.adapters.iter().find(|a| a.name == name).cloned();
            let mut lanes = vec![pick(adapter_a.get_untracked())];
            if compare.get_untracked() {
                lanes.push(pick(adapter_b.get_untracked()));
            }
            let model_id = |lane: &Option<crate::protocol::AdapterRef>| match lane {
                Some(a) => format!("{}:{}", b.id, a.name),
                None => b.id.clone(),
            };
            state
                .lanes
                .set(lanes.iter().map(|l| Lane::new(model_id(l))).collect());
            let job = state.job.get_untracked() + 1;
            state.job.set(job);
            state.error.set(None);
            state.phase.set("generating");
            let _ = to_worker.unbounded_send(ToWorker::Generate {
                job,
                prompt: state.prompt.get_untracked(),
                lanes,
                sampling: Sampling {
                    temperature: temperature.get_untracked(),
                    top_k: top_k.get_untracked(),
                    top_p: top_p.get_untracked(),
                    seed: seed.get_untracked(),
                    max_tokens: max_tokens.get_untracked(),
                },
            });
        }
    };

    let adapter_options = move || {
        let bases = state.bases.get();
        let adapters = bases
            .iter()
            .find(|b| b.id == base.get())
            .map(|b| b.adapters.clone())
            .unwrap_or_default();
        std::iter::once((String::new(), "(base model only)".to_owned()))
            .chain(adapters.into_iter().map(|a| (a.name.clone(), a.name)))
            .collect::<Vec<_>>()
    };
    let options = move |selected: RwSignal<String>| {
        adapter_options()
            .into_iter()
            .map(|(value, label)| {
                let v = value.clone();
                view! { <option value=value selected=move || selected.get() == v>{label}</option> }
            })
            .collect_view()
    };

    view! {
        <main id="app" data-phase=move || state.phase.get() data-backend=move || state.backend.get()>
            <header>
                <h1>"Tributary"</h1>
                <p class="tagline">"LoRA adapters in your tab, with receipts for where the answer came from."</p>
                <p id="backend">{move || {
                    let b = state.backend.get();
                    if b.is_empty() { "starting…".to_owned() } else { format!("running on {b}") }
                }}</p>
            </header>
            <section id="notices">
                {move || state.notices.get().into_iter().map(|n| view! { <p class="notice">{n}</p> }).collect_view()}
                {move || state.error.get().map(|e| view! { <p id="error" class="error">{e}</p> })}
            </section>
            <section id="downloads">
                {move || state.files.get().into_iter().map(|f| {
                    let label = if f.from_cache { format!("{} (from cache)", f.name) } else { f.name.clone() };
                    view! {
                        <div class="file" data-file=f.name.clone() data-from-cache=f.from_cache.to_string()>
                            <span>{label}</span>
                            <progress max=f.total.max(1).to_string() value=f.done.to_string()></progress>
                            <span class="bytes">{format!("{} / {} bytes", f.done, f.total)}</span>
                        </div>
                    }
                }).collect_view()}
            </section>
            <section id="controls">
                <label>"Base "
                    <select id="base" on:change=move |ev| base.set(event_target_value(&ev))>
                        {move || state.bases.get().into_iter().map(|b| view! { <option value=b.id.clone()>{b.id.clone()}</option> }).collect_view()}
                    </select>
                </label>
                <label>"Adapter "
                    <select id="adapter" on:change=move |ev| adapter_a.set(event_target_value(&ev))>
                        {move || options(adapter_a)}
                    </select>
                </label>
                <label><input id="compare" type="checkbox" prop:checked=move || compare.get()
                    on:change=move |ev| compare.set(event_target_checked(&ev))/>" compare with "</label>
                <select id="adapter-b" disabled=move || !compare.get() on:change=move |ev| adapter_b.set(event_target_value(&ev))>
                    {move || options(adapter_b)}
                </select>
                <textarea id="prompt" rows="3" prop:value=move || state.prompt.get()
                    on:input=move |ev| state.prompt.set(event_target_value(&ev))></textarea>
                <fieldset id="sampling">
                    <legend>"Sampling"</legend>
                    <label>"temperature " <input id="temperature" type="number" step="0.1" min="0"
                        prop:value=move || temperature.get().to_string()
                        on:change=move |ev| temperature.set(event_target_value(&ev).parse().unwrap_or(0.0))/></label>
                    <label>"top-p " <input id="top-p" type="number" step="0.05" min="0" max="1"
                        prop:value=move || top_p.get().to_string()
                        on:change=move |ev| top_p.set(event_target_value(&ev).parse().unwrap_or(1.0))/></label>
                    <label>"top-k " <input id="top-k" type="number" min="0"
                        prop:value=move || top_k.get().to_string()
                        on:change=move |ev| top_k.set(event_target_value(&ev).parse().unwrap_or(0))/></label>
                    <label>"max tokens " <input id="max-tokens" type="number" min="1"
                        prop:value=move || max_tokens.get().to_string()
                        on:change=move |ev| max_tokens.set(event_target_value(&ev).parse().unwrap_or(24))/></label>
                    <label>"seed " <input id="seed" type="number" min="0"
                        prop:value=move || seed.get().to_string()
                        on:change=move |ev| seed.set(event_target_value(&ev).parse().unwrap_or(0))/></label>
                </fieldset>
                <button id="generate" on:click=generate disabled=move || state.phase.get() != "ready">"Generate"</button>
            </section>
            <section id="answers">
                {move || state.lanes.get().into_iter().enumerate().map(|(i, lane)| lane_view(i, lane)).collect_view()}
            </section>
        </main>
    }
}

fn lane_view(index: usize, lane: Lane) -> impl IntoView {
    let tokens = lane
        .tokens
        .iter()
        .map(u32::to_string)
        .collect::<Vec<_>>()
        .join(",");
    // Token times are the worker's, counted from when it took the request.
    let ttft = lane.first_ms;
    let tps = lane.tokens_per_s();
    let stats = format!(
        "{} tokens · first token {} · {}",
        lane.tokens.len(),
        ttft.map_or("–".to_owned(), |t| format!("{t:.0} ms")),
        tps.map_or("–".to_owned(), |t| format!("{t:.1} tokens/s")),
    );
    view! {
        <article class="lane" data-lane=index.to_string() data-model=lane.model.clone()
            data-tokens=tokens data-done=lane.done.to_string()
            data-ttft-ms=ttft.map(|t| format!("{t:.1}")).unwrap_or_default()
            data-tokens-per-s=tps.map(|t| format!("{t:.2}")).unwrap_or_default()
            data-worker-memory=lane.worker_memory_bytes.to_string()>
            <h2>{lane.model.clone()}</h2>
            <pre class="text">{lane.text.clone()}</pre>
            <p class="stats">{stats}</p>
            {attribution_view(&lane.attribution)}
        </article>
    }
}

fn share_bars(title: &'static str, shares: &[Share]) -> impl IntoView {
    let rows = shares
        .iter()
        .map(|s| {
            let pct = s.ppm / 1e4;
            let spans = s.spans.clone();
            view! {
                <div class="share" title=format!("{}: {pct:.2}%", s.who)>
                    <span class="who">{s.who.clone()}</span>
                    <span class="bar"><span style=format!("width:{pct:.2}%")></span></span>
                    <span class="pct">{format!("{pct:.1}%")}</span>
                    <ul class="spans">{spans.into_iter().map(|t| view! { <li>{t}</li> }).collect_view()}</ul>
                </div>
            }
        })
        .collect_view();
    view! { <div class="chart"><h4>{title}</h4>{rows}</div> }
}

fn attribution_view(view: &AttributionView) -> AnyView {
    match view {
        AttributionView::Pending => view! { <div class="attribution" data-state="pending"></div> }.into_any(),
        AttributionView::Unavailable(why) => view! {
            <div class="attribution" data-state="unavailable"><p>{format!("No attribution: {why}")}</p></div>
        }
        .into_any(),
        AttributionView::Shown {
            verdict,
            node,
            contributors,
            datanets,
        } => {
            let (trust, step, line) = match verdict {
                Verdict::Verified { trust } => (
                    trust.clone(),
                    String::new(),
                    format!("Receipt verified in this tab: {trust} by node {node}"),
                ),
                Verdict::Rejected { step, reason } => (
                    "Rejected".to_owned(),
                    step.clone(),
                    format!("Receipt rejected at step `{step}`: {reason}"),
                ),
            };
            view! {
                <div class="attribution" data-state="shown">
                    <h3>"Where this answer came from"</h3>
                    <p class="receipt" data-trust=trust data-step=step>{line}</p>
                    {share_bars("Contributors", contributors)}
                    {share_bars("Datanets", datanets)}
                </div>
            }
            .into_any()
        }
    }
}

fn fail(state: State, error: impl std::fmt::Display) {
    web_sys::console::warn_1(&format!("tributary: {error}").into());
    state.error.set(Some(error.to_string()));
    state.phase.set("error");
}

fn on_worker(state: State, message: FromWorker) {
    match message {
        FromWorker::Progress {
            file,
            done,
            total,
            from_cache,
        } => state.files.update(|files| {
            let p = FileProgress {
                name: file.clone(),
                done,
                total,
                from_cache,
            };
            match files.iter_mut().find(|f| f.name == file) {
                Some(f) => *f = p,
                None => files.push(p),
            }
        }),
        FromWorker::Notice(text) => state.notices.update(|n| n.push(text)),
        FromWorker::Ready { backend, device } => {
            state.backend.set(match device {
                Some(d) if !d.is_empty() => format!("{backend} ({d})"),
                _ => backend,
            });
            state.phase.set("ready");
        }
        FromWorker::Started { .. } => {}
        FromWorker::Token {
            job,
            lane,
            text,
            token,
            at_ms,
        } => {
            if job != state.job.get_untracked() {
                return;
            }
            let t = at_ms;
            state.lanes.update(|lanes| {
                if let Some(l) = lanes.get_mut(lane) {
                    l.tokens.push(token);
                    l.text = text;
                    l.first_ms.get_or_insert(t);
                    l.last_ms = t;
                }
            });
        }
        FromWorker::Done {
            job,
            lane,
            tokens,
            text,
            worker_memory_bytes,
            ..
        } => {
            if job != state.job.get_untracked() {
                return;
            }
            state.lanes.update(|lanes| {
                if let Some(l) = lanes.get_mut(lane) {
                    l.tokens = tokens;
                    l.text = text.clone();
                    l.done = true;
                    l.worker_memory_bytes = worker_memory_bytes;
                }
            });
            let model = state
                .lanes
                .with_untracked(|l| l.get(lane).map(|l| l.model.clone()));
            if state.lanes.with_untracked(|l| l.iter().all(|l| l.done)) {
                state.phase.set("ready");
            }
            if let Some(model) = model {
                let prompt = state.prompt.get_untracked();
                spawn_local(async move {
                    let view = attribute(&model, &prompt, &text).await;
                    if job == state.job.get_untracked() {
                        state.lanes.update(|lanes| {
                            if let Some(l) = lanes.get_mut(lane) {
                                l.attribution = view;
                            }
                        });
                    }
                });
            }
        }
        FromWorker::Failed { error, .. } => fail(state, error),
    }
}

async fn load_models() -> Result<Vec<Base>, String> {
    let response = gloo::net::http::Request::get("/v1/models")
        .send()
        .await
        .map_err(|e| format!("/v1/models: {e}"))?;
    if !response.ok() {
        return Err(format!("/v1/models answered HTTP {}", response.status()));
    }
    let text = response
        .text()
        .await
        .map_err(|e| format!("/v1/models: {e}"))?;
    let origin = window().location().origin().unwrap_or_default();
    models::parse(&text, &origin).map_err(|e| e.to_string())
}

/// Asks the node which contributions the answer draws on, then checks the receipt here: its
/// signature and weights (tributary-receipt, the wallet's verifier), and that it is about this
/// prompt and this very text.
async fn attribute(model: &str, prompt: &str, text: &str) -> AttributionView {
    let request = gloo::net::http::Request::post("/v1/attribution")
        .json(&json!({"model": model, "prompt": prompt, "text": text}));
    let response = match request {
        Ok(r) => r.send().await,
        Err(e) => return AttributionView::Unavailable(e.to_string()),
    };
    let body: Value = match response {
        Ok(r) if r.ok() => match r.json().await {
            Ok(v) => v,
            Err(e) => return AttributionView::Unavailable(format!("unreadable answer: {e}")),
        },
        Ok(r) => {
            let status = r.status();
            let message = r
                .json::<Value>()
                .await
                .ok()
                .and_then(|v| v["error"]["message"].as_str().map(str::to_owned))
                .unwrap_or_default();
            return AttributionView::Unavailable(format!("HTTP {status} {message}"));
        }
        Err(e) => return AttributionView::Unavailable(e.to_string()),
    };
    let signed: SignedReceipt = match serde_json::from_value(body["receipt"].clone()) {
        Ok(s) => s,
        Err(e) => {
            return AttributionView::Shown {
                verdict: Verdict::Rejected {
                    step: "format".into(),
                    reason: format!("the receipt does not parse: {e}"),
                },
                node: String::new(),
                contributors: Vec::new(),
                datanets: Vec::new(),
            };
        }
    };
    let verdict = match verify(&signed, None) {
        Err(e) => Verdict::Rejected {
            step: e.step().into(),
            reason: e.to_string(),
        },
        Ok(_) if signed.receipt.prompt != keccak256(prompt.as_bytes()) => Verdict::Rejected {
            step: "prompt".into(),
            reason: "the receipt is for another prompt".into(),
        },
        Ok(_) if signed.receipt.output != keccak256(text.as_bytes()) => Verdict::Rejected {
            step: "output".into(),
            reason: "the receipt is for another answer".into(),
        },
        Ok(trust) => Verdict::Verified {
            trust: format!("{trust:?}"),
        },
    };
    let attribution = &body["attribution"];
    // Which spans each contribution matched, and whose each contribution is.
    let spans: Vec<(String, Vec<B256>)> = attribution["spans"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|s| {
            let text = s["text"].as_str().unwrap_or_default().to_owned();
            let ids = s["contributions"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|c| c.as_str()?.parse().ok())
                .collect();
            (text, ids)
        })
        .collect();
    let owner = |id: &B256| -> Option<Address> {
        signed
            .receipt
            .attributions
            .iter()
            .find(|a| &a.contributionId == id)
            .map(|a| a.contributor)
    };
    let shares = |key: &str, spans_of: &dyn Fn(&str) -> Vec<String>| -> Vec<Share> {
        attribution[key]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|entry| {
                let who = entry[0].as_str()?.to_owned();
                Some(Share {
                    spans: spans_of(&who),
                    ppm: entry[1].as_f64()?,
                    who,
                })
            })
            .collect()
    };
    let contributor_spans = |who: &str| -> Vec<String> {
        let who: Option<Address> = who.parse().ok();
        spans
            .iter()
            .filter(|(_, ids)| ids.iter().any(|id| owner(id).is_some() && owner(id) == who))
            .map(|(t, _)| t.clone())
            .collect()
    };
    let all_spans = |_: &str| -> Vec<String> { spans.iter().map(|(t, _)| t.clone()).collect() };
    AttributionView::Shown {
        verdict,
        node: signed.receipt.node.to_string(),
        contributors: shares("byContributor", &contributor_spans),
        datanets: shares("byDatanet", &all_spans),
    }
}
