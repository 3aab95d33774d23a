//! `cargo xtask demo`: the project's main job. Until the serving issues land it is the browser
//! smoke pages — the WGSL kernel over WebGPU checked against its CPU reference, and the model with
//! a LoRA adapter generating in the tab, checked against transformers — served locally, run once
//! in headless Chromium so the results show in the terminal, then left up for a browser.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{ExitCode, Stdio};

use anyhow::{Context, Result, bail};

use crate::cmd::{self, Workspace};
use crate::{setup, smoke};

pub fn run(root: &Path, port: u16, once: bool) -> Result<ExitCode> {
    setup::install(root)?;
    let ws = Workspace::read(root)?;
    println!("== demo: building the smoke pages ==");
    let pkg = smoke::build(root, &ws)?;

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
         one batch) and {url}model.html (model)"
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
