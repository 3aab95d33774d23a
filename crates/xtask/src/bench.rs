//! `cargo xtask bench model`: a report, not a test. Each engine runs in its own process on the
//! same random checkpoint; figures are medians of a few runs and are quoted as ratios measured in
//! this one run, since these machines are shared and noisy.

use std::path::Path;
use std::process::{Command, ExitCode};

use anyhow::{Context, Result, bail};
use serde_json::Value;

use crate::cmd::{self, Workspace};

pub fn run(root: &Path, what: &str) -> Result<ExitCode> {
    match what {
        "model" => model(root),
        other => bail!("unknown benchmark `{other}` (available: model)"),
    }
}

fn model(root: &Path) -> Result<ExitCode> {
    let ws = Workspace::read(root)?;
    cmd::run(cmd::cargo().current_dir(root).args([
        "build",
        "--release",
        "-p",
        "tributary-bench",
        "--bin",
        "bench-model",
    ]))?;
    let bin = ws.target_dir.join("release/bench-model");
    let dir = ws.target_dir.join("bench/llama-6x512");
    if !dir.join("model.safetensors").exists() {
        cmd::run(Command::new(&bin).arg("--make").arg("--dir").arg(&dir))?;
    }
    let icd = cmd::lavapipe_icd()?;
    let mut results = Vec::new();
    for (engine, reps) in [("ours-cpu", "3"), ("candle", "3"), ("ours-wgpu", "2")] {
        println!("bench: {engine}");
        let mut command = Command::new(&bin);
        command
            .args(["--engine", engine, "--reps", reps, "--dir"])
            .arg(&dir)
            .env("VK_ICD_FILENAMES", &icd);
        let out = command
            .output()
            .with_context(|| format!("running {}", cmd::display(&command)))?;
        if !out.status.success() {
            bail!("{engine} failed: {}", String::from_utf8_lossy(&out.stderr));
        }
        let line: Value = serde_json::from_slice(&out.stdout)
            .with_context(|| format!("{engine} printed no JSON result"))?;
        results.push((engine, line));
    }
    let get = |engine: &str, key: &str| {
        results
            .iter()
            .find(|(e, _)| *e == engine)
            .and_then(|(_, v)| v[key].as_f64())
            .unwrap_or(f64::NAN)
    };
    println!(
        "\nmodel: Llama, 6 layers, hidden 512, GQA 8/4 heads, vocab 8192, f32, random weights"
    );
    println!("prefill 128 tokens, then 64 greedy decode steps; medians\n");
    println!("| engine | prefill tok/s | decode tok/s | peak RSS MiB |");
    println!("|---|---|---|---|");
    for (engine, _) in &results {
        println!(
            "| {engine} | {:.1} | {:.1} | {:.0} |",
            get(engine, "prefill_tokens_per_s"),
            get(engine, "decode_tokens_per_s"),
            get(engine, "peak_rss_mib")
        );
    }
    println!(
        "\nours/candle on CPU: prefill {:.2}x, decode {:.2}x (goal: >= 1.0x)",
        get("ours-cpu", "prefill_tokens_per_s") / get("candle", "prefill_tokens_per_s"),
        get("ours-cpu", "decode_tokens_per_s") / get("candle", "decode_tokens_per_s"),
    );
    println!(
        "ours on lavapipe / ours on CPU: prefill {:.2}x, decode {:.2}x",
        get("ours-wgpu", "prefill_tokens_per_s") / get("ours-cpu", "prefill_tokens_per_s"),
        get("ours-wgpu", "decode_tokens_per_s") / get("ours-cpu", "decode_tokens_per_s"),
    );
    Ok(ExitCode::SUCCESS)
}
