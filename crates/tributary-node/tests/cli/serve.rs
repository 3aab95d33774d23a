//! `tributary serve` over real HTTP on loopback, against the fixtures' transformers reference and
//! against requests issued alone.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tributary_model::{AdapterWeights, ModelConfig, Target};

use crate::common;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tributary-model/tests/fixtures")
}

/// A running server, killed on drop.
struct Server {
    child: Child,
    url: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn serve(extra: &[&str]) -> Server {
    let model = fixtures().join("llama-gqa");
    serve_model(&["--model", model.to_str().unwrap()], extra)
}

/// `tributary serve` with `model` as its model flags (none: the embedded default).
fn serve_model(model: &[&str], extra: &[&str]) -> Server {
    let mut child = Command::new(env!("CARGO_BIN_EXE_tributary"))
        .args(["serve", "--port", "0"])
        .args(model)
        .args(extra)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let url = line
        .split_whitespace()
        .last()
        .expect("the banner ends with the URL")
        .to_owned();
    assert!(url.starts_with("http://"), "banner: {line}");
    Server { child, url }
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(120)))
        .build()
        .into()
}

/// (status, JSON body) of a POST.
fn post(url: &str, body: &str) -> (u16, Value) {
    let mut r = agent()
        .post(url)
        .header("content-type", "application/json")
        .send(body)
        .unwrap();
    let status = r.status().as_u16();
    (
        status,
        serde_json::from_str(&r.body_mut().read_to_string().unwrap()).unwrap(),
    )
}

fn get(url: &str) -> String {
    agent()
        .get(url)
        .call()
        .unwrap()
        .body_mut()
        .read_to_string()
        .unwrap()
}

fn metric(server: &Server, name: &str) -> f64 {
    get(&format!("{}/metrics", server.url))
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{name} ")))
        .unwrap_or_else(|| panic!("no metric {name}"))
        .parse()
        .unwrap()
}

fn completion(server: &Server, model: &str, prompt: &str, max_tokens: usize) -> Value {
    let body = json!({"model": model, "prompt": prompt, "max_tokens": max_tokens, "temperature": 0, "ignore_eos": true});
    let (status, v) = post(&format!("{}/v1/completions", server.url), &body.to_string());
    assert_eq!(status, 200, "{v}");
    v
}

/// Writes a random rank-4 PEFT adapter for `config` into a fresh folder.
fn write_adapter(config: &ModelConfig, dir: &Path, seed: u64) {
    let weights = AdapterWeights::random(config, "", (4, 8.0), &[Target::Q, Target::V], 0.1, seed);
    let (cfg, st) = weights.to_peft_bytes();
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join("adapter_config.json"), cfg).unwrap();
    std::fs::write(dir.join("adapter_model.safetensors"), st).unwrap();
}

fn temp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("tributary-serve-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

#[test]
fn completions_match_transformers_and_streams_match_completions() {
    let attn = fixtures().join("llama-gqa/adapters/attn-r8");
    let spec = format!("attn-r8={}", attn.display());
    let server = serve(&["--adapter", &spec]);
    let models = get(&format!("{}/v1/models", server.url));
    assert!(models.contains("\"llama-gqa:attn-r8\""), "{models}");

    let reference: Value = serde_json::from_slice(
        &std::fs::read(fixtures().join("llama-gqa/reference.json")).unwrap(),
    )
    .unwrap();
    let prompt = reference["prompts"][0].as_str().unwrap();
    for (model, case) in [
        ("llama-gqa", &reference["base"][0]),
        ("llama-gqa:attn-r8", &reference["adapters"]["attn-r8"][0]),
    ] {
        let want = case["greedy"].as_array().unwrap();
        let v = completion(&server, model, prompt, want.len());
        assert_eq!(
            &v["choices"][0]["token_ids"], &case["greedy"],
            "{model}: transformers' greedy tokens"
        );
        assert_eq!(v["usage"]["completion_tokens"], want.len());
    }

    // The same request streamed: the deltas add up to the completion's text.
    let whole = completion(&server, "llama-gqa:attn-r8", prompt, 12);
    let body = json!({"model": "llama-gqa:attn-r8", "prompt": prompt, "max_tokens": 12, "temperature": 0, "ignore_eos": true, "stream": true});
    let mut r = agent()
        .post(&format!("{}/v1/completions", server.url))
        .send(body.to_string())
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let text = r.body_mut().read_to_string().unwrap();
    let datas: Vec<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .collect();
    assert_eq!(datas.last(), Some(&"[DONE]"));
    let streamed: String = datas[..datas.len() - 1]
        .iter()
        .map(|d| {
            serde_json::from_str::<Value>(d).unwrap()["choices"][0]["text"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert_eq!(streamed, whole["choices"][0]["text"].as_str().unwrap());
}

#[test]
fn sixteen_concurrent_requests_over_sixteen_adapters_equal_their_single_runs() {
    let config = ModelConfig::from_file(&fixtures().join("llama-gqa/config.json")).unwrap();
    let root = temp("sixteen");
    let server = serve(&[]);
    for k in 0..16 {
        let dir = root.join(format!("a{k}"));
        write_adapter(&config, &dir, k);
        let (status, v) = post(
            &format!("{}/v1/adapters", server.url),
            &json!({"name": format!("a{k}"), "path": dir}).to_string(),
        );
        assert_eq!(status, 201, "{v}");
    }
    let prompts: Vec<String> = (0..16)
        .map(|k| format!("This License {k} applies"))
        .collect();
    let concurrent: Vec<Value> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..16)
            .map(|k| {
                let (server, prompt) = (&server, &prompts[k]);
                scope.spawn(move || completion(server, &format!("llama-gqa:a{k}"), prompt, 10))
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for (k, v) in concurrent.iter().enumerate() {
        let alone = completion(&server, &format!("llama-gqa:a{k}"), &prompts[k], 10);
        assert_eq!(
            v["choices"][0]["token_ids"], alone["choices"][0]["token_ids"],
            "adapter a{k}"
        );
    }
    let distinct: std::collections::HashSet<String> = concurrent
        .iter()
        .map(|v| v["choices"][0]["token_ids"].to_string())
        .collect();
    assert!(distinct.len() > 8, "different adapters answer differently");
    let _ = std::fs::remove_dir_all(&root);
}

#[test]
fn errors_come_back_in_openai_shape_with_the_right_status() {
    let server = serve(&[]);
    let url = format!("{}/v1/completions", server.url);
    let cases = [
        (
            json!({"model": "llama-gqa:nope", "prompt": "x"}).to_string(),
            404,
        ),
        (
            json!({"model": "other-model", "prompt": "x"}).to_string(),
            404,
        ),
        ("{not json".to_owned(), 400),
        (
            json!({"model": "llama-gqa", "prompt": "word ".repeat(400)}).to_string(),
            413,
        ),
    ];
    for (body, want) in cases {
        let (status, v) = post(&url, &body);
        assert_eq!(status, want, "{v}");
        assert!(
            v["error"]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty()),
            "{v}"
        );
        assert!(v["error"]["type"].is_string(), "{v}");
    }
    // An adapter made for another base (Qwen2's) is refused at registration.
    let qwen = fixtures().join("qwen2-bias/adapters/all-r6");
    let (status, v) = post(
        &format!("{}/v1/adapters", server.url),
        &json!({"name": "q", "path": qwen}).to_string(),
    );
    assert_eq!(status, 422, "{v}");
}

#[test]
fn ten_adapters_rotate_through_a_budget_of_two_and_a_disconnect_frees_kv() {
    let config = ModelConfig::from_file(&fixtures().join("llama-gqa/config.json")).unwrap();
    let root = temp("rotate");
    // One rank-4 q/v adapter is 7 KiB of f32 here: a 15 KiB budget holds two.
    let server = serve(&[
        "--adapter-budget-kib",
        "15",
        "--adapter-host-budget-kib",
        "15",
    ]);
    for k in 0..10 {
        let dir = root.join(format!("r{k}"));
        write_adapter(&config, &dir, 100 + k);
        post(
            &format!("{}/v1/adapters", server.url),
            &json!({"name": format!("r{k}"), "path": dir}).to_string(),
        );
    }
    for round in 0..2 {
        for k in 0..10 {
            let v = completion(&server, &format!("llama-gqa:r{k}"), "Hello", 3);
            assert_eq!(
                v["usage"]["completion_tokens"], 3,
                "round {round}, adapter r{k}"
            );
        }
    }
    assert!(
        metric(
            &server,
            "tributary_adapter_evictions_total{tier=\"device\"}"
        ) >= 18.0
    );

    // A client that goes away mid-stream: its KV blocks come back, and generation stops early.
    let tokens_before = metric(&server, "tributary_tokens_generated_total");
    let body = json!({"model": "llama-gqa", "prompt": "Hello", "max_tokens": 200, "temperature": 0, "ignore_eos": true, "stream": true});
    let mut r = agent()
        .post(&format!("{}/v1/completions", server.url))
        .send(body.to_string())
        .unwrap();
    let mut reader = BufReader::new(r.body_mut().as_reader());
    let mut line = String::new();
    reader.read_line(&mut line).unwrap();
    assert!(line.starts_with("data: "), "{line}");
    // (The gauge is refreshed after each engine step, so it is not read here: it may lag the
    // first event. Blocks back at 0 with fewer than 200 tokens generated is the evidence.)
    drop(reader);
    drop(r);
    let start = Instant::now();
    while metric(&server, "tributary_kv_blocks_used") > 0.0 {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "KV blocks were not freed"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(metric(&server, "tributary_requests_running"), 0.0);
    let generated = metric(&server, "tributary_tokens_generated_total") - tokens_before;
    assert!(
        generated < 200.0,
        "the request ran to the end ({generated} tokens): not cancelled"
    );
    let _ = std::fs::remove_dir_all(&root);
}

/// The data lines of a server-sent-events body, without the final `[DONE]` (asserted present).
fn sse_events(body: &str) -> Vec<Value> {
    let datas: Vec<&str> = body
        .lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .collect();
    assert_eq!(datas.last(), Some(&"[DONE]"), "{body}");
    datas[..datas.len() - 1]
        .iter()
        .map(|d| serde_json::from_str(d).unwrap())
        .collect()
}

#[test]
fn chat_completions_use_the_models_template_and_stream() {
    let attn = fixtures().join("llama-gqa/adapters/attn-r8");
    let server = serve(&["--adapter", &format!("attn-r8={}", attn.display())]);
    let messages = json!([
        {"role": "system", "content": "You answer briefly."},
        {"role": "user", "content": [{"type": "text", "text": "What is "}, {"type": "text", "text": "a datanet?"}]},
    ]);
    let url = format!("{}/v1/chat/completions", server.url);
    let body = json!({"model": "llama-gqa:attn-r8", "messages": messages, "max_tokens": 12,
                      "temperature": 0, "ignore_eos": true});
    let (status, chat) = post(&url, &body.to_string());
    assert_eq!(status, 200, "{chat}");
    assert_eq!(chat["object"], "chat.completion");
    assert_eq!(chat["choices"][0]["message"]["role"], "assistant");
    assert_eq!(chat["choices"][0]["finish_reason"], "length");

    // The same tokens as a plain completion of the prompt the template renders (the template
    // rendering itself is checked against transformers in tributary-model's tests).
    let template = tributary_model::ChatTemplate::from_model_dir(&fixtures().join("llama-gqa"))
        .unwrap()
        .unwrap();
    let prompt = template
        .render(
            &[
                tributary_model::ChatMessage {
                    role: "system".into(),
                    content: "You answer briefly.".into(),
                },
                tributary_model::ChatMessage {
                    role: "user".into(),
                    content: "What is a datanet?".into(),
                },
            ],
            true,
        )
        .unwrap();
    let plain = completion(&server, "llama-gqa:attn-r8", &prompt, 12);
    assert_eq!(
        chat["choices"][0]["token_ids"],
        plain["choices"][0]["token_ids"]
    );
    assert_eq!(
        chat["usage"]["prompt_tokens"],
        plain["usage"]["prompt_tokens"]
    );

    // Streamed: a role delta first, content deltas adding up to the whole, then the reason.
    let mut streamed = body.clone();
    streamed["stream"] = json!(true);
    let mut r = agent().post(&url).send(streamed.to_string()).unwrap();
    assert_eq!(r.status().as_u16(), 200);
    assert!(
        r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream")
    );
    let events = sse_events(&r.body_mut().read_to_string().unwrap());
    assert_eq!(events.len(), 13, "12 tokens and the finish");
    assert!(
        events
            .iter()
            .all(|e| e["object"] == "chat.completion.chunk" && e["id"] == events[0]["id"])
    );
    assert_eq!(events[0]["choices"][0]["delta"]["role"], "assistant");
    let last = &events[12]["choices"][0];
    assert_eq!(last["finish_reason"], "length");
    // The last delta is empty, or carries bytes held back because they never formed a character.
    assert!(
        last["delta"]
            .as_object()
            .unwrap()
            .keys()
            .all(|k| k == "content"),
        "{last}"
    );
    let text: String = events
        .iter()
        .map(|e| {
            e["choices"][0]["delta"]["content"]
                .as_str()
                .unwrap_or_default()
        })
        .collect();
    assert_eq!(
        text,
        chat["choices"][0]["message"]["content"].as_str().unwrap()
    );

    // Malformed conversations are 400s in OpenAI's shape.
    for bad in [
        json!({"model": "llama-gqa", "messages": []}),
        json!({"model": "llama-gqa", "messages": "hi"}),
        json!({"model": "llama-gqa", "messages": [{"role": "user", "content": [{"type": "image_url"}]}]}),
        json!({"model": "llama-gqa", "messages": [{"content": "no role"}]}),
    ] {
        let (status, v) = post(&url, &bad.to_string());
        assert_eq!(status, 400, "{bad} -> {v}");
        assert!(v["error"]["message"].is_string());
    }
}

/// Resident set size of a process, in bytes (Linux).
fn rss_bytes(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .expect("VmRSS in /proc/PID/status");
    kib << 10
}

/// A bounded load: 8 clients, 6 rounds of 8 requests each, over 4 adapters (streamed and not).
/// No request may fail, and the server's memory after the last round is within a small margin of
/// its memory after the first (allocator caches and tracing buffers settle in the first rounds).
#[test]
fn bounded_load_has_no_errors_and_flat_memory() {
    let config = ModelConfig::from_file(&fixtures().join("llama-gqa/config.json")).unwrap();
    let root = temp("load");
    let server = serve(&["--max-batch", "8"]);
    for k in 0..4 {
        let dir = root.join(format!("l{k}"));
        write_adapter(&config, &dir, 300 + k);
        let (status, _) = post(
            &format!("{}/v1/adapters", server.url),
            &json!({"name": format!("l{k}"), "path": dir}).to_string(),
        );
        assert_eq!(status, 201);
    }
    let round = |n: usize| {
        std::thread::scope(|scope| {
            for client in 0..8 {
                let server = &server;
                scope.spawn(move || {
                    for i in 0..8 {
                        let model = format!("llama-gqa:l{}", (client + i) % 4);
                        let body = json!({"model": model, "prompt": format!("Round {n} client {client} says"),
                                          "max_tokens": 8, "temperature": 0.7, "seed": i,
                                          "ignore_eos": true, "stream": i % 2 == 0});
                        let mut r = agent()
                            .post(&format!("{}/v1/completions", server.url))
                            .send(body.to_string())
                            .unwrap();
                        let status = r.status().as_u16();
                        let text = r.body_mut().read_to_string().unwrap();
                        assert_eq!(status, 200, "{text}");
                        if i % 2 == 0 {
                            assert_eq!(sse_events(&text).len(), 9, "8 tokens and the finish");
                        } else {
                            let v: Value = serde_json::from_str(&text).unwrap();
                            assert_eq!(v["usage"]["completion_tokens"], 8);
                        }
                    }
                });
            }
        })
    };
    let pid = server.child.id();
    round(0);
    round(1);
    let settled = rss_bytes(pid);
    for n in 2..6 {
        round(n);
    }
    let after = rss_bytes(pid);
    let margin = settled / 10 + (8 << 20);
    assert!(
        after <= settled + margin,
        "memory grew from {settled} to {after} bytes over 256 requests"
    );
    assert_eq!(metric(&server, "tributary_kv_blocks_used"), 0.0);
    let _ = std::fs::remove_dir_all(&root);
}

/// Serves `dir` over HTTP on loopback (tower-http's static files) until the process ends.
fn file_server(dir: PathBuf) -> String {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async move {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            tx.send(listener.local_addr().unwrap()).unwrap();
            let app =
                axum::Router::new().fallback_service(tower_http::services::ServeDir::new(dir));
            axum::serve(listener, app).await.unwrap();
        });
    });
    format!("http://{}", rx.recv().unwrap())
}

#[test]
fn adapters_register_by_url_with_a_verified_hash() {
    let fixtures = fixtures();
    let files = file_server(fixtures.join("llama-gqa/adapters"));
    let cache = temp("url-cache");
    let server = serve(&["--adapter-cache", cache.to_str().unwrap()]);
    let register = |body: Value| post(&format!("{}/v1/adapters", server.url), &body.to_string());
    let attn = fixtures.join("llama-gqa/adapters/attn-r8");
    let hash = tributary_serve::content_hash(
        &std::fs::read(attn.join("adapter_config.json")).unwrap(),
        &std::fs::read(attn.join("adapter_model.safetensors")).unwrap(),
    );
    let hex: String = hash.iter().map(|b| format!("{b:02x}")).collect();

    // A wrong hash, a missing folder, a scheme we do not fetch: refused, nothing registered.
    let (status, v) = register(
        json!({"name": "x", "url": format!("{files}/attn-r8"), "sha256": "00".repeat(32)}),
    );
    assert_eq!(status, 422, "{v}");
    assert!(
        v["error"]["message"].as_str().unwrap().contains(&hex),
        "{v}"
    );
    let (status, v) = register(json!({"name": "x", "url": format!("{files}/missing")}));
    assert_eq!(status, 502, "{v}");
    let (status, v) = register(json!({"name": "x", "url": "ftp://example.org/a"}));
    assert_eq!(status, 400, "{v}");
    let (status, v) =
        register(json!({"name": "x", "url": format!("{files}/attn-r8"), "sha256": "xyz"}));
    assert_eq!(status, 400, "{v}");
    assert!(!get(&format!("{}/v1/models", server.url)).contains("llama-gqa:x"));

    // The right hash: downloaded into the cache under it, and it answers as transformers does.
    let (status, v) =
        register(json!({"name": "attn", "url": format!("{files}/attn-r8/"), "sha256": hex}));
    assert_eq!(status, 201, "{v}");
    assert!(cache.join(&hex).join("adapter_model.safetensors").is_file());
    let reference: Value =
        serde_json::from_slice(&std::fs::read(fixtures.join("llama-gqa/reference.json")).unwrap())
            .unwrap();
    let want = &reference["adapters"]["attn-r8"][0]["greedy"];
    let prompt = reference["prompts"][0].as_str().unwrap();
    let v = completion(
        &server,
        "llama-gqa:attn",
        prompt,
        want.as_array().unwrap().len(),
    );
    assert_eq!(&v["choices"][0]["token_ids"], want);

    // Without a hash the download is pinned to what arrived; a second name reuses the cache.
    let (status, v) = register(json!({"name": "again", "url": format!("{files}/attn-r8")}));
    assert_eq!(status, 201, "{v}");
    let entries = std::fs::read_dir(&cache).unwrap().count();
    assert_eq!(
        entries, 1,
        "one content-addressed folder, no partial downloads left"
    );

    // Files over the size limit are refused.
    let small = serve(&[
        "--adapter-cache",
        cache.to_str().unwrap(),
        "--adapter-max-mib",
        "0",
    ]);
    let (status, v) = post(
        &format!("{}/v1/adapters", small.url),
        &json!({"name": "big", "url": format!("{files}/mlp-r4")}).to_string(),
    );
    assert_eq!(status, 502, "{v}");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("larger than"),
        "{v}"
    );
    let _ = std::fs::remove_dir_all(&cache);
}

#[test]
fn json_logs_are_json_lines() {
    let model = fixtures().join("llama-gqa");
    let mut child = Command::new(env!("CARGO_BIN_EXE_tributary"))
        .args(["serve", "--port", "0", "--json", "--model"])
        .arg(&model)
        .env("RUST_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stderr.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let _ = child.kill();
    let _ = child.wait();
    let v: Value = serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line}"));
    assert_eq!(v["level"], "INFO", "{v}");
    assert_eq!(v["fields"]["message"], "serving", "{v}");
    assert!(v["fields"]["url"].as_str().unwrap().starts_with("http://"));
}

/// A GET with headers: (status, headers, body bytes).
fn fetch(url: &str, headers: &[(&str, &str)]) -> (u16, ureq::http::HeaderMap, Vec<u8>) {
    let mut request = agent().get(url);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let mut r = request.call().unwrap();
    let status = r.status().as_u16();
    let body = r
        .body_mut()
        .with_config()
        .limit(u64::MAX)
        .read_to_vec()
        .unwrap();
    (status, r.headers().clone(), body)
}

fn header<'a>(headers: &'a ureq::http::HeaderMap, name: &str) -> &'a str {
    headers
        .get(name)
        .unwrap_or_else(|| panic!("no {name} header"))
        .to_str()
        .unwrap()
}

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest as _;
    sha2::Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[test]
fn model_files_are_listed_by_hash_and_served_whole_in_ranges_and_revalidated() {
    let model = fixtures().join("llama-gqa");
    let adapters = model.join("adapters");
    let web = temp("web");
    std::fs::create_dir_all(&web).unwrap();
    std::fs::write(web.join("index.html"), "<!doctype html><title>tab</title>").unwrap();
    std::fs::write(web.join("app_bg.wasm"), b"\0asm\x01\0\0\0").unwrap();
    let server = serve(&[
        "--adapter",
        &format!("attn-r8={}", adapters.join("attn-r8").display()),
        "--web",
        web.to_str().unwrap(),
    ]);
    // An adapter registered later is listed with its files too.
    let (status, v) = post(
        &format!("{}/v1/adapters", server.url),
        &json!({"name": "mlp-r4", "path": adapters.join("mlp-r4")}).to_string(),
    );
    assert_eq!(status, 201, "{v}");

    let models: Value = serde_json::from_str(&get(&format!("{}/v1/models", server.url))).unwrap();
    assert!(
        models["node"].as_str().unwrap().starts_with("0x"),
        "{models}"
    );
    assert_eq!(models["chainId"], 31337);
    let (mut requests, mut sent) = (0u64, 0u64);
    let cases: [(&str, PathBuf, &[&str]); 3] = [
        (
            "llama-gqa",
            model.clone(),
            &[
                "config.json",
                "model.safetensors",
                "tokenizer.json",
                "tokenizer_config.json",
                "chat_template.jinja",
                "generation_config.json",
            ],
        ),
        (
            "llama-gqa:attn-r8",
            adapters.join("attn-r8"),
            &["adapter_config.json", "adapter_model.safetensors"],
        ),
        (
            "llama-gqa:mlp-r4",
            adapters.join("mlp-r4"),
            &["adapter_config.json", "adapter_model.safetensors"],
        ),
    ];
    for (id, dir, names) in cases {
        let entry = models["data"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["id"] == id)
            .unwrap_or_else(|| panic!("{id} not listed: {models}"));
        let files = entry["files"].as_array().unwrap();
        let listed: Vec<&str> = files.iter().map(|f| f["name"].as_str().unwrap()).collect();
        assert_eq!(listed, names, "{id}");
        for f in files {
            let disk = std::fs::read(dir.join(f["name"].as_str().unwrap())).unwrap();
            let sha = sha256_hex(&disk);
            assert_eq!(f["sha256"], sha.as_str(), "{id} {f}");
            assert_eq!(f["bytes"], disk.len(), "{id} {f}");
            let url = format!("{}{}", server.url, f["url"].as_str().unwrap());
            let (status, headers, body) = fetch(&url, &[]);
            requests += 1;
            sent += body.len() as u64;
            assert_eq!(status, 200, "{url}");
            assert!(body == disk, "{url}: the download differs from the file");
            assert_eq!(header(&headers, "x-content-sha256"), sha);
            assert_eq!(header(&headers, "etag"), format!("\"{sha}\""));
            assert_eq!(header(&headers, "accept-ranges"), "bytes");
            assert_eq!(header(&headers, "cache-control"), "no-cache");
        }
    }
    let adapter_url = models["data"][1]["files"][0]["url"].as_str().unwrap();
    assert!(
        adapter_url.starts_with("/v1/files/llama-gqa%3Aattn-r8/"),
        "{adapter_url}"
    );
    // The colon unencoded names the same file.
    let (status, _, body) = fetch(
        &format!(
            "{}/v1/files/llama-gqa:attn-r8/adapter_config.json",
            server.url
        ),
        &[],
    );
    requests += 1;
    sent += body.len() as u64;
    assert_eq!(status, 200);
    assert_eq!(
        body,
        std::fs::read(adapters.join("attn-r8/adapter_config.json")).unwrap()
    );

    // Ranges: a middle, a suffix, and past the end.
    let weights = std::fs::read(model.join("model.safetensors")).unwrap();
    let n = weights.len();
    let url = format!("{}/v1/files/llama-gqa/model.safetensors", server.url);
    let (status, headers, body) = fetch(&url, &[("range", "bytes=100-1099")]);
    requests += 1;
    sent += body.len() as u64;
    assert_eq!(status, 206);
    assert_eq!(body, &weights[100..1100]);
    assert_eq!(
        header(&headers, "content-range"),
        format!("bytes 100-1099/{n}")
    );
    let (status, headers, body) = fetch(&url, &[("range", "bytes=-16")]);
    requests += 1;
    sent += body.len() as u64;
    assert_eq!(status, 206);
    assert_eq!(body, &weights[n - 16..]);
    assert_eq!(
        header(&headers, "content-range"),
        format!("bytes {}-{}/{n}", n - 16, n - 1)
    );
    let (status, headers, body) = fetch(&url, &[("range", &format!("bytes={n}-"))]);
    requests += 1;
    assert_eq!(status, 416);
    assert!(body.is_empty());
    assert_eq!(header(&headers, "content-range"), format!("bytes */{n}"));

    // Revalidation by hash: 304 without a body for the current tag, the file for another.
    let tag = format!("\"{}\"", sha256_hex(&weights));
    let (status, headers, body) = fetch(&url, &[("if-none-match", &tag)]);
    requests += 1;
    assert_eq!(status, 304);
    assert!(body.is_empty());
    assert_eq!(header(&headers, "etag"), tag);
    let (status, _, body) = fetch(&url, &[("if-none-match", "\"0000\"")]);
    requests += 1;
    sent += body.len() as u64;
    assert_eq!(status, 200);
    assert_eq!(body.len(), n);

    // Only listed files, by name: anything else is a 404 in OpenAI's error shape.
    for path in [
        "llama-gqa/reference.json",
        "llama-gqa/adapters%2Fattn-r8%2Fadapter_config.json",
        "llama-gqa:attn-r8/..%2Fconfig.json",
        "llama-gqa:attn-r8/config.json",
        "llama-gqa:nope/adapter_config.json",
        "other/config.json",
    ] {
        let (status, _, body) = fetch(&format!("{}/v1/files/{path}", server.url), &[]);
        requests += 1;
        assert_eq!(status, 404, "{path}");
        let v: Value = serde_json::from_slice(&body).unwrap();
        assert!(v["error"]["message"].is_string(), "{path}: {v}");
    }

    assert_eq!(
        metric(&server, "tributary_file_requests_total"),
        requests as f64
    );
    assert_eq!(metric(&server, "tributary_file_bytes_total"), sent as f64);

    // The web app at /, wasm typed for instantiateStreaming.
    let (status, _, body) = fetch(&format!("{}/", server.url), &[]);
    assert_eq!(status, 200);
    assert_eq!(body, b"<!doctype html><title>tab</title>");
    let (status, headers, _) = fetch(&format!("{}/app_bg.wasm", server.url), &[]);
    assert_eq!(status, 200);
    assert_eq!(header(&headers, "content-type"), "application/wasm");

    // No --datanet: no attribution.
    let (status, v) = post(
        &format!("{}/v1/attribution", server.url),
        &json!({"model": "llama-gqa", "prompt": "p", "text": "t"}).to_string(),
    );
    assert_eq!(status, 404, "{v}");
    assert_eq!(
        v["error"]["message"],
        "attribution is not configured (start with --datanet)"
    );
    let node: Value = serde_json::from_str(&get(&format!("{}/v1/node", server.url))).unwrap();
    assert_eq!(node["node"], models["node"]);
    assert_eq!(node["attribution"], Value::Null);
    let _ = std::fs::remove_dir_all(&web);
}

/// keccak256("cow"), EIP-712's example key, and its address.
const COW_KEY: &str = "c85ef7d79691fe79573b1a7064c19c1a9819ebdbd1faaab1a8ec92344438aaf4";
const COW: &str = "0xCD2a3d9F938E13CD947Ec05AbC7FE734Df8DD826";

/// Runs `tributary serve` expecting it to fail before it serves: its stderr.
fn serve_fails(args: &[&str]) -> String {
    let mut child = Command::new(env!("CARGO_BIN_EXE_tributary"))
        .args(["serve", "--port", "0", "--model"])
        .arg(fixtures().join("llama-gqa"))
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let start = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if start.elapsed() > Duration::from_secs(120) {
            let _ = child.kill();
            panic!("`serve {}` did not fail", args.join(" "));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = child.wait_with_output().unwrap();
    assert!(!out.status.success());
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn attribution_signs_a_receipt_that_names_the_quoted_contribution() {
    use alloy::primitives::keccak256;
    use tributary_datanet::Store;
    use tributary_receipt::{B256, SignedReceipt, Trust, verify};

    // A datanet of GPL-3 paragraphs dealt to four contributors, accepted and snapshotted.
    let common::Gpl {
        dir,
        db,
        paragraphs,
        people,
        subs,
        ..
    } = common::gpl_datanet(&temp("attribution"), 24, 4);
    let store = Store::open(&db).unwrap();
    let root = store.snapshot_root("gpl", 1).unwrap();
    drop(store);

    let model = fixtures().join("llama-gqa");
    let attn = model.join("adapters/attn-r8");
    let db_arg = db.to_str().unwrap();
    let flags = [
        "--datanet",
        "gpl",
        "--db",
        db_arg,
        "--node-key",
        COW_KEY,
        "--adapter",
        &format!("attn-r8={}", attn.display()),
    ];
    // Before the index is built the server refuses to start, saying how to build it.
    let stderr = serve_fails(&flags);
    assert!(stderr.contains("tributary index build"), "{stderr}");
    let out = Command::new(env!("CARGO_BIN_EXE_tributary"))
        .args([
            "index",
            "build",
            "--datanet",
            "gpl",
            "--db",
            db_arg,
            "--model",
        ])
        .arg(&model)
        .output()
        .unwrap();
    common::assert_succeeded(&out);
    let server = serve(&flags);

    let quoted = 9;
    let t = &paragraphs[quoted];
    let (from, to) = (t.len() / 8, t.len() * 7 / 8);
    let (from, to) = (
        (from..).find(|&i| t.is_char_boundary(i)).unwrap(),
        (to..).find(|&i| t.is_char_boundary(i)).unwrap(),
    );
    let text = &t[from..to];
    let prompt = "Quote the part of the licence about this.";
    let attribute = |model: &str| {
        post(
            &format!("{}/v1/attribution", server.url),
            &json!({"model": model, "prompt": prompt, "text": text}).to_string(),
        )
    };
    let (status, v) = attribute("llama-gqa:attn-r8");
    assert_eq!(status, 200, "{v}");
    let signed: SignedReceipt = serde_json::from_value(v["receipt"].clone()).unwrap();
    assert_eq!(verify(&signed, None).unwrap(), Trust::Signed);
    let r = &signed.receipt;
    assert_eq!(r.node, COW.parse::<alloy::primitives::Address>().unwrap());
    assert_eq!(r.output, keccak256(text.as_bytes()));
    assert_eq!(r.prompt, keccak256(prompt.as_bytes()));
    assert_eq!(r.datanetRoots, vec![root]);
    let concat = |dir: &Path, names: &[&str]| -> B256 {
        let bytes: Vec<u8> = names
            .iter()
            .flat_map(|n| std::fs::read(dir.join(n)).unwrap())
            .collect();
        keccak256(&bytes)
    };
    assert_eq!(
        r.baseModel,
        concat(&model, &["config.json", "model.safetensors"])
    );
    assert_eq!(
        r.adapter,
        concat(&attn, &["adapter_config.json", "adapter_model.safetensors"])
    );
    assert_eq!(signed.domain.chain_id, 31337);
    // The planted contribution carries the largest weight.
    let top = r
        .attributions
        .iter()
        .max_by_key(|a| a.weightPpm)
        .expect("some attribution");
    assert_eq!(top.contributionId, subs[quoted].content_hash(), "{v:#}");
    assert_eq!(top.contributor, people[quoted % 4].address());
    assert_eq!(
        r.attributions[0].contributionId,
        subs[quoted].content_hash()
    );
    // The server's attribution is the CLI's, and the receipt carries its attributions.
    assert_eq!(
        v["attribution"]["attributions"],
        serde_json::to_value(&r.attributions).unwrap()
    );
    let out = Command::new(env!("CARGO_BIN_EXE_tributary"))
        .args([
            "attribute",
            "--method",
            "span",
            "--json",
            "--datanet",
            "gpl",
        ])
        .args(["--db", db_arg, &format!("--text={text}"), "--model"])
        .arg(&model)
        .output()
        .unwrap();
    common::assert_succeeded(&out);
    let cli: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["attribution"], cli);

    // Tampering with what the node signed fails at the signature step.
    let mut tampered = signed.clone();
    tampered.receipt.output = keccak256(b"another answer");
    assert_eq!(verify(&tampered, None).unwrap_err().step(), "signature");

    // The base model alone: a zero adapter hash, and the next nonce.
    let (status, base) = attribute("llama-gqa");
    assert_eq!(status, 200, "{base}");
    let again: SignedReceipt = serde_json::from_value(base["receipt"].clone()).unwrap();
    assert_eq!(again.receipt.adapter, B256::ZERO);
    assert_eq!(again.receipt.nonce, r.nonce.wrapping_add(1));
    assert_eq!(verify(&again, None).unwrap(), Trust::Signed);

    // Errors as the completion routes give them.
    let url = format!("{}/v1/attribution", server.url);
    let (status, e) = post(&url, "{not json");
    assert_eq!(status, 400, "{e}");
    let (status, e) = post(
        &url,
        &json!({"model": "llama-gqa", "prompt": "p"}).to_string(),
    );
    assert_eq!(status, 400, "{e}");
    assert_eq!(attribute("llama-gqa:nope").0, 404);
    let (status, e) = attribute("other");
    assert_eq!(status, 404, "{e}");
    assert_eq!(e["error"]["type"], "model_not_found");

    let node: Value = serde_json::from_str(&get(&format!("{}/v1/node", server.url))).unwrap();
    assert_eq!(
        node["node"].as_str().unwrap().to_lowercase(),
        COW.to_lowercase()
    );
    assert_eq!(node["attribution"]["datanet"], "gpl");
    assert_eq!(
        node["attribution"]["snapshot"]["root"],
        serde_json::to_value(root).unwrap()
    );
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
}

/// `serve` with no `--model` runs the embedded default (SmolLM2-135M-Instruct, Q4_1 GGUF):
/// /v1/chat/completions renders the GGUF's chat template and answers with transformers' greedy
/// tokens (crates/tributary-model/tests/fixtures/smollm2/reference.json).
#[test]
fn chat_completions_on_the_default_model_match_transformers() {
    let server = serve_model(&[], &[]);
    let models: Value = serde_json::from_str(&get(&format!("{}/v1/models", server.url))).unwrap();
    let base = models["data"][0]["id"].as_str().unwrap().to_owned();

    let reference: Value =
        serde_json::from_slice(&std::fs::read(fixtures().join("smollm2/reference.json")).unwrap())
            .unwrap();
    let prompt = reference["prompts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["kind"] == "chat" && p["messages"].as_array().unwrap().len() == 2)
        .expect("a chat prompt with a system turn");
    let greedy: Vec<u32> = serde_json::from_value(prompt["greedy"].clone()).unwrap();
    let body = json!({"model": base, "messages": prompt["messages"], "max_tokens": greedy.len(),
                      "temperature": 0, "ignore_eos": true});
    let (status, chat) = post(
        &format!("{}/v1/chat/completions", server.url),
        &body.to_string(),
    );
    assert_eq!(status, 200, "{chat}");
    assert_eq!(
        chat["usage"]["prompt_tokens"],
        prompt["ids"].as_array().unwrap().len()
    );
    let tokenizer =
        tributary_model::ModelSource::open(&tributary_models::DEFAULT.locate().unwrap())
            .unwrap()
            .tokenizer()
            .unwrap();
    assert_eq!(
        chat["choices"][0]["message"]["content"].as_str().unwrap(),
        tokenizer.decode(&greedy).unwrap()
    );
}
