//! `cargo xtask demo`: the project's main job. `tributary serve` on the embedded fixture
//! checkpoint (random weights) with two LoRA adapters, a datanet and its attribution index,
//! serving the OpenAI-compatible API (checked with real requests) and the in-tab app (web/,
//! built by trunk), which headless Chromium then runs once — two adapters in one batch over
//! WebGPU, receipts verified in the tab; and the browser smoke pages (kernels and model against
//! their references). Everything stays up until Ctrl-C (or exits at once with `--once`).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, ChildStdout, Command, ExitCode, Stdio};

use anyhow::{Context, Result, bail};

use crate::cmd::{self, Workspace};
use crate::setup::{self, Tool};

/// Stops a server when the demo ends, however it ends: SIGTERM first, so a `node` script can stop
/// the `tributary serve` it started, then SIGKILL if it is still there.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.0.id().to_string()])
            .status();
        for _ in 0..50 {
            if matches!(self.0.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts a `node` script that prints `serving URL` once it listens; returns it and the URL.
fn start_server(
    mut command: Command,
    what: &str,
) -> Result<(Killed, String, BufReader<ChildStdout>)> {
    let mut child = command
        .stdout(Stdio::piped())
        .spawn()
        .with_context(|| format!("could not start {what}"))?;
    let mut reader = BufReader::new(child.stdout.take().context("server stdout")?);
    let child = Killed(child);
    let mut first_line = String::new();
    reader.read_line(&mut first_line)?;
    let Some(url) = first_line.trim().strip_prefix("serving ") else {
        bail!("{what} did not start (port in use?)");
    };
    Ok((child, url.trim_end_matches('/').to_owned(), reader))
}

/// One POST to `path` over plain HTTP/1.1 (what the printed curl line does); returns the body.
fn ask(url: &str, path: &str, body: &str) -> Result<String> {
    let host = url.trim_start_matches("http://");
    let mut stream = TcpStream::connect(host).with_context(|| format!("connecting to {host}"))?;
    write!(
        stream,
        "POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
    if !head.starts_with("HTTP/1.1 200") {
        bail!("the API answered: {head}\n{body}");
    }
    Ok(body.to_owned())
}

pub fn run(root: &Path, port: u16, api_port: u16, once: bool) -> Result<ExitCode> {
    // The demo builds the app and the smoke pages; it needs no fuzzer and no edge build.
    setup::install(root, &[Tool::WasmBindgen, Tool::Trunk])?;
    let ws = Workspace::read(root)?;
    println!("== demo: building the app (trunk), the smoke pages and the node ==");
    let mut app_node = crate::web::playwright(root, &ws, crate::web::NodeBuild::Alone)?;
    let smoke_node = crate::smoke::node(root, &crate::smoke::page_dir(&ws));
    app_node.args(["app-node.mjs", "--port", &api_port.to_string()]);
    println!("== demo: starting `tributary serve` with a datanet, its index and the app ==");
    let (_api, api, api_log) = start_server(app_node, "`tributary serve` (app-node.mjs)")?;
    let body = r#"{"model": "llama-gqa:attn-r8", "prompt": "This License applies to any program", "max_tokens": 16, "temperature": 0}"#;
    println!("The weights are random (a test fixture): the text is not meant to read.");
    for (path, body) in [
        ("/v1/completions", body),
        (
            "/v1/chat/completions",
            r#"{"model": "llama-gqa:mlp-r4", "messages": [{"role": "user", "content": "What is a datanet?"}], "max_tokens": 16, "temperature": 0}"#,
        ),
    ] {
        println!("$ curl {api}{path} -H 'Content-Type: application/json' -d '{body}'");
        println!("{}", ask(&api, path, body)?);
    }
    println!("(also: {api}/v1/models, {api}/metrics, \"stream\": true for SSE)\n");

    let mut smoke = smoke_node;
    smoke.args(["serve.mjs", "--port", &port.to_string()]);
    let (_smoke, url, _smoke_log) = start_server(smoke, "the smoke page server (serve.mjs)")?;
    let url = format!("{url}/");

    println!("== demo: the app and the smoke pages in headless Chromium ==");
    let mut check = crate::smoke::node(root, &crate::smoke::page_dir(&ws));
    let app_check = cmd::run(check.args(["run-app.mjs", &api]));
    let mut check = crate::smoke::node(root, &crate::smoke::page_dir(&ws));
    let smoke_check = cmd::run(check.args(["run-smoke.mjs", &url]));
    println!(
        "\nThe app is at {api}/ : pick an adapter (or two, to compare them in one batch), \
         generate in the tab over WebGPU, and see the receipt verified in the tab."
    );
    println!(
        "The smoke pages are at {url} (matvec kernel), {url}sgmv.html (SGMV, many adapters in \
         one batch), {url}model.html (model) and {url}verifier.html (a receipt verified by the \
         wallet package)"
    );
    println!("Open them in a browser with WebGPU (Chromium: --enable-unsafe-webgpu).");
    if once {
        app_check?;
        smoke_check?;
        return Ok(ExitCode::SUCCESS);
    }
    for err in [app_check.err(), smoke_check.err()].into_iter().flatten() {
        eprintln!("xtask: a headless run failed: {err:#}");
    }
    println!("Serving until Ctrl-C.");
    // Keep relaying the node's log lines until it exits.
    for line in api_log.lines() {
        println!("{}", line?);
    }
    Ok(ExitCode::FAILURE)
}
