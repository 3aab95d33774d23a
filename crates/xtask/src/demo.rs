//! `cargo xtask demo`: the project's main job. The `tributary serve` OpenAI-compatible API on the
//! embedded fixture checkpoint (random weights) with two LoRA adapters, checked with one real
//! request; and the browser smoke pages — the WGSL kernels over WebGPU checked against their CPU
//! references, and the model with a LoRA adapter generating in the tab, checked against
//! transformers — run once in headless Chromium so the results show in the terminal. Both stay up
//! until Ctrl-C (or exit at once with `--once`).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, ExitCode, Stdio};

use anyhow::{Context, Result, bail};

use crate::cmd::{self, Workspace};
use crate::{setup, smoke};

/// Kills the API server when the demo ends, however it ends.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `tributary serve` on the fixture checkpoint with its adapters; returns it and its URL.
fn start_api(root: &Path, ws: &Workspace, port: u16) -> Result<(Killed, String)> {
    println!("== demo: building and starting `tributary serve` ==");
    cmd::run(
        cmd::cargo()
            .current_dir(root)
            .args(["build", "-p", "tributary-node"]),
    )?;
    let fixture = root.join("crates/tributary-model/tests/fixtures/llama-gqa");
    let adapter = |name: &str| format!("{name}={}", fixture.join("adapters").join(name).display());
    let mut child = Command::new(ws.target_dir.join("debug/tributary"))
        .args(["serve", "--port", &port.to_string(), "--model"])
        .arg(&fixture)
        .args([
            "--adapter",
            &adapter("attn-r8"),
            "--adapter",
            &adapter("mlp-r4"),
        ])
        .stdout(Stdio::piped())
        .spawn()
        .context("could not start `tributary serve`")?;
    let mut banner = String::new();
    BufReader::new(child.stdout.take().context("api stdout")?).read_line(&mut banner)?;
    let child = Killed(child);
    let Some(url) = banner
        .split_whitespace()
        .last()
        .filter(|u| u.starts_with("http://"))
    else {
        bail!("`tributary serve` did not start (port {port} in use?)");
    };
    Ok((child, url.to_owned()))
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
    setup::install(root)?;
    let ws = Workspace::read(root)?;
    let (_api, api) = start_api(root, &ws, api_port)?;
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
    println!("== demo: building the smoke pages ==");
    let pkg = smoke::build(root, &ws)?;
    crate::pkg::build(root, &ws)?; // verifier.html loads the wallet package

    let mut server = smoke::node(root, &pkg)
        .args(["serve.mjs", "--port", &port.to_string()])
        .stdout(Stdio::piped())
        .spawn()
        .context("could not start `node serve.mjs`")?;
    // serve.mjs prints its URL once it listens; anything else first means it failed.
    let mut first_line = String::new();
    let stdout = server.stdout.take().context("server stdout")?;
    let mut reader = BufReader::new(stdout);
    reader.read_line(&mut first_line)?;
    let Some(url) = first_line.trim().strip_prefix("serving ") else {
        let _ = server.kill();
        bail!("the smoke page server did not start (port {port} in use?)");
    };
    let url = url.to_owned();

    println!("== demo: running the page in headless Chromium ==");
    let check = cmd::run(smoke::node(root, &pkg).args(["run-smoke.mjs", &url]));
    println!(
        "\nThe smoke pages are at {url} (matvec kernel), {url}sgmv.html (SGMV, many adapters in \
         one batch), {url}model.html (model) and {url}verifier.html (a receipt verified by the \
         wallet package)"
    );
    println!("Open them in a browser with WebGPU (Chromium: --enable-unsafe-webgpu).");
    if once {
        let _ = server.kill();
        check?;
        return Ok(ExitCode::SUCCESS);
    }
    if let Err(err) = check {
        eprintln!("xtask: the headless run failed: {err:#}");
    }
    println!("Serving until Ctrl-C.");
    // Keep relaying the server's log lines until it exits.
    for line in reader.lines() {
        println!("{}", line?);
    }
    let status = server.wait()?;
    Ok(if status.success() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
