//! `cargo xtask test`: every suite, each under its own header, then one summary line.
//!
//! A failing suite does not stop the others, so one run reports everything that is broken.

use std::path::Path;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{Context, Result, bail};

use crate::cmd::{self, Workspace};
use crate::setup;

type Suite = fn(&Path, &Workspace) -> Result<()>;

const SUITES: &[(&str, Suite)] = &[
    ("format (cargo fmt --check)", format),
    ("lint (cargo clippy, native)", clippy),
    (
        "contract artifacts match their Solidity (solc-js)",
        crate::chain::check,
    ),
    ("native tests (cargo test --workspace)", native),
    ("GPU tests on Mesa lavapipe (Vulkan on the CPU)", lavapipe),
    ("wasm32 build and lint of the browser/edge crates", wasm32),
    (
        "wallet package pkg/ (tsc, Node tests, interop)",
        crate::pkg::test,
    ),
    (
        "edge worker in workerd (worker-build, Miniflare)",
        crate::edge::test,
    ),
    ("fuzz the receipt bundle decoder (cargo fuzz, 60 s)", fuzz),
    (
        "browser tests (Playwright, headless Chromium, WebGPU)",
        browser,
    ),
];

pub fn run(root: &Path) -> Result<ExitCode> {
    setup::install(root)?;
    let ws = Workspace::read(root)?;
    let started = Instant::now();
    let mut failed = Vec::new();
    for (index, (name, suite)) in SUITES.iter().enumerate() {
        println!("\n== suite {}/{}: {name} ==", index + 1, SUITES.len());
        let t = Instant::now();
        let outcome = suite(root, &ws);
        let secs = t.elapsed().as_secs_f64();
        match outcome {
            Ok(()) => println!("-- {name}: passed in {secs:.0} s"),
            Err(err) => {
                println!("-- {name}: FAILED in {secs:.0} s: {err:#}");
                failed.push(*name);
            }
        }
    }
    println!(
        "\nall suites took {:.0} s; failed: {}",
        started.elapsed().as_secs_f64(),
        if failed.is_empty() {
            "none".to_owned()
        } else {
            failed.join("; ")
        }
    );
    println!(
        "{} passed, {} failed",
        SUITES.len() - failed.len(),
        failed.len()
    );
    Ok(if failed.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn format(root: &Path, _: &Workspace) -> Result<()> {
    cmd::run(
        cmd::cargo()
            .current_dir(root)
            .args(["fmt", "--all", "--check"]),
    )
}

fn clippy(root: &Path, _: &Workspace) -> Result<()> {
    cmd::run(cmd::cargo().current_dir(root).args([
        "clippy",
        "--workspace",
        "--all-targets",
        "--all-features",
        "--",
        "-D",
        "warnings",
    ]))
}

fn native(root: &Path, _: &Workspace) -> Result<()> {
    cmd::run(cmd::cargo().current_dir(root).args(["test", "--workspace"]))
}

/// The GPU tests with the Vulkan loader pointed at lavapipe alone, so they run on the same
/// software device here, in CI and on a developer machine that also has a real GPU.
fn lavapipe(root: &Path, _: &Workspace) -> Result<()> {
    let icd = cmd::lavapipe_icd()?;
    cmd::run(
        cmd::cargo()
            .current_dir(root)
            .env("VK_ICD_FILENAMES", &icd)
            .env("WGPU_BACKEND", "vulkan")
            .args([
                "test",
                "-p",
                "tributary-sgmv",
                "-p",
                "tributary-model",
                "--features",
                "tributary-sgmv/gpu-tests,tributary-model/gpu-tests",
                "--test",
                "gpu",
                "--",
                "--nocapture",
            ]),
    )
}

fn wasm32(root: &Path, ws: &Workspace) -> Result<()> {
    if ws.wasm_crates.is_empty() {
        bail!("no crate declares [package.metadata.tributary] wasm32 = true");
    }
    let packages = ws.wasm_packages();
    let target = ["--target", "wasm32-unknown-unknown"];
    cmd::run(
        cmd::cargo()
            .current_dir(root)
            .arg("clippy")
            .args(target)
            .args(&packages)
            .args(["--", "-D", "warnings"]),
    )?;
    cmd::run(
        cmd::cargo()
            .current_dir(root)
            .args(["build", "--release"])
            .args(target)
            .args(&packages),
    )
}

/// libFuzzer over the wallet's decoders (tributary-receipt/fuzz), seeded with the anvil fixture,
/// for a fixed time. Its own target folder: the coverage flags must not touch the main build.
fn fuzz(root: &Path, ws: &Workspace) -> Result<()> {
    let corpus = ws.target_dir.join("fuzz-corpus/anchor_bundle");
    std::fs::create_dir_all(&corpus).with_context(|| format!("creating {}", corpus.display()))?;
    std::fs::copy(
        root.join("pkg/test/fixtures/anchored.json"),
        corpus.join("seed-anchored.json"),
    )
    .context("seeding the fuzz corpus")?;
    cmd::run(
        cmd::cargo()
            .current_dir(root.join("crates/tributary-receipt"))
            .args(["fuzz", "run", "--sanitizer", "none", "--target-dir"])
            .arg(ws.target_dir.join("fuzz"))
            .arg("anchor_bundle")
            .arg(&corpus)
            .args(["--", "-max_total_time=60"]),
    )
}

fn browser(root: &Path, ws: &Workspace) -> Result<()> {
    let mut node = crate::web::playwright(root, ws)?;
    let tests: Vec<String> = std::fs::read_dir(root.join("playwright/tests"))
        .context("reading playwright/tests")?
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".test.mjs"))
        .map(|n| format!("tests/{n}"))
        .collect();
    if tests.is_empty() {
        bail!("no playwright/tests/*.test.mjs");
    }
    cmd::run(node.args(["--test", "--test-reporter=spec"]).args(&tests))
}
