//! `cargo xtask test`: every suite, each under its own header, then one summary line.
//!
//! A failing suite does not stop the others, so one run reports everything that is broken.

use std::path::Path;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{Context, Result, bail};

use crate::cmd::{self, Workspace};
use crate::{passed, setup, timing};

type Suite = fn(&Path, &Workspace) -> Result<()>;

const SUITES: &[(&str, Suite)] = &[
    ("format (cargo fmt --check)", format),
    (
        "lint and compile (clippy-driver builds every workspace crate, warnings denied)",
        lint,
    ),
    (
        "contract artifacts match their Solidity (solc-js)",
        crate::chain::check,
    ),
    ("native tests (cargo test --workspace)", native),
    ("GPU tests on Mesa lavapipe (Vulkan on the CPU)", lavapipe),
    // Before the wasm32 builds: it needs no tool that builds in the background (see
    // setup::install_for_test), and libFuzzer runs on one core, leaving them the other.
    ("fuzz the receipt bundle decoder (cargo fuzz, 60 s)", fuzz),
    (
        "wasm32 release builds, linted (wallet, smoke pages, app, edge worker)",
        wasm32,
    ),
    (
        "wallet package pkg/ (tsc, Node tests, interop)",
        crate::pkg::test,
    ),
    (
        "edge worker in workerd (worker-build, Miniflare)",
        crate::edge::test,
    ),
    (
        "browser tests (Playwright, headless Chromium, WebGPU)",
        browser,
    ),
];

pub fn run(root: &Path, rerun: bool) -> Result<ExitCode> {
    let started = Instant::now();
    let setup = setup::install_for_test(root).and_then(|()| cmd::lint_every_build());
    let ws = Workspace::read(root)?;
    let tree = passed::fingerprint(root)?;
    let mut failed = Vec::new();
    let mut passed = 0;
    let mut cached = 0;
    if let Err(err) = setup {
        // Every suite needs what set-up installs: report it as the failure it is.
        println!("-- setup: FAILED: {err:#}");
        failed.push("setup");
    } else {
        for (index, (name, suite)) in SUITES.iter().enumerate() {
            println!("\n== suite {}/{}: {name} ==", index + 1, SUITES.len());
            if !rerun && passed::passed_before(&ws, name, &tree) {
                println!(
                    "-- {name}: passed before on this exact tree; not run again (`cargo xtask test --rerun` runs it)"
                );
                passed += 1;
                cached += 1;
                continue;
            }
            let t = Instant::now();
            let outcome = timing::step(*name, || suite(root, &ws));
            let secs = t.elapsed().as_secs_f64();
            match outcome {
                Ok(()) => {
                    println!("-- {name}: passed in {secs:.0} s");
                    passed::remember(root, &ws, name, &tree)?;
                    passed += 1;
                }
                Err(err) => {
                    println!("-- {name}: FAILED in {secs:.0} s: {err:#}");
                    passed::forget(&ws, name);
                    failed.push(*name);
                }
            }
        }
    }
    if let Err(err) = setup::finish_background() {
        println!("-- setup: FAILED: {err:#}");
        failed.push("setup (background tool builds)");
    }
    println!(
        "\nwall time of each step (set-up and suites; \"compile\" and \"run\" inside a suite):\n{}",
        timing::table()
    );
    println!(
        "set-up and all suites took {:.0} s; failed: {}",
        started.elapsed().as_secs_f64(),
        if failed.is_empty() {
            "none".to_owned()
        } else {
            failed.join("; ")
        }
    );
    if cached > 0 {
        println!("{cached} suites passed before on this tree and were not run again");
    }
    println!("{passed} passed, {} failed", failed.len());
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

/// Builds every native target the tests need ([`cmd::native_tests`]) with clippy-driver (see
/// [`cmd::lint_every_build`]): the lint and the native suite's compile in one pass. Then what no
/// test builds, in one `cargo clippy` (check only; no CUDA toolkit needed): the CUDA code paths
/// and the benchmarks crate, with CUDA — that leaves out only the benchmarks' one-line
/// `cfg(not(feature = "cuda"))` refusal, where a second check pass without CUDA cost 4 minutes
/// of dependency metadata. `--all-features` everywhere would lint a feature set no build uses.
fn lint(root: &Path, _: &Workspace) -> Result<()> {
    timing::step(
        "native test binaries (cargo test --workspace --exclude tributary-bench --all-targets --no-run)",
        || {
            // --timings: cargo writes a per-crate compile report (target/cargo-timings/) to read
            // when this step grows.
            cmd::run(cmd::native_tests(root).args(["--all-targets", "--no-run", "--timings"]))
        },
    )?;
    timing::step(
        "CUDA code and benchmarks (cargo clippy -p tributary-node -p tributary-bench --all-targets --features cuda)",
        || {
            cmd::run(cmd::cargo().current_dir(root).args([
                "clippy",
                "-p",
                "tributary-node",
                "-p",
                cmd::BENCH_CRATE,
                "--all-targets",
                "--features",
                "tributary-node/cuda,tributary-bench/cuda",
                "--",
                "-D",
                "warnings",
            ]))
        },
    )
}

/// `cargo test` twice: `--no-run` first, so the table tells compiling from running.
/// `run_args` go to the test binaries.
fn compile_then_run(
    mut test: impl FnMut() -> std::process::Command,
    run_args: &[&str],
) -> Result<()> {
    timing::step("compile", || cmd::run(test().arg("--no-run")))?;
    timing::step("run", || cmd::run(test().arg("--").args(run_args)))
}

/// Runs what the lint suite compiled. `--all-targets` as there, so nothing is built again; it
/// also skips doc tests: no crate has any, and rustdoc would first build the cdylib crates'
/// libraries a second time (41 s) to find none.
fn native(root: &Path, _: &Workspace) -> Result<()> {
    compile_then_run(
        || {
            let mut test = cmd::native_tests(root);
            test.arg("--all-targets");
            test
        },
        &[],
    )
}

/// The GPU tests (`tests/gpu.rs` of tributary-sgmv, tributary-quant and tributary-model, all
/// `#[ignore]`d so that the native suite skips them) run with `--ignored` and the Vulkan loader
/// pointed at lavapipe alone, so they run on the same software device here, in CI and on a
/// developer machine that also has a real GPU. The crates of [`cmd::native_tests`]: the native
/// suite's build serves, nothing is compiled again.
fn lavapipe(root: &Path, _: &Workspace) -> Result<()> {
    let icd = cmd::lavapipe_icd()?;
    let test = || {
        let mut test = cmd::native_tests(root);
        test.env("VK_ICD_FILENAMES", &icd)
            .env("WGPU_BACKEND", "vulkan")
            .args(["--test", "gpu"]);
        test
    };
    compile_then_run(test, &["--ignored", "--nocapture"])
}

/// The release builds the later suites use, all linted (see [`cmd::lint_every_build`]): the
/// wallet verifier (pkg/), the smoke pages' bindings and the app (one package, one set of
/// compiled dependencies), and the edge worker. A wasm32 crate none of them reaches is linted
/// with `cargo clippy` for wasm32, so every crate marked `wasm32 = true` is checked.
fn wasm32(root: &Path, ws: &Workspace) -> Result<()> {
    if ws.wasm_crates.is_empty() {
        bail!("no crate declares [package.metadata.tributary] wasm32 = true");
    }
    timing::step("wallet verifier (pkg/)", || crate::pkg::build(root, ws))?;
    timing::step("smoke pages (web, bin smoke)", || {
        crate::smoke::build(root, ws).map(drop)
    })?;
    timing::step("app (trunk)", || crate::web::build(root, ws).map(drop))?;
    timing::step("edge worker (worker-build)", || {
        crate::edge::build(root, ws, crate::edge::Profile::Test).map(drop)
    })?;
    let rest = cmd::wasm_crates_outside(
        root,
        ws,
        &[crate::pkg::CRATE, cmd::WEB_PACKAGE, crate::edge::PACKAGE],
    )?;
    if rest.is_empty() {
        return Ok(());
    }
    timing::step(format!("cargo clippy of {}", rest.join(", ")), || {
        cmd::run(
            cmd::cargo()
                .current_dir(root)
                .args(["clippy", "--target", "wasm32-unknown-unknown"])
                .args(rest.iter().flat_map(|c| ["-p", c.as_str()]))
                .args(["--", "-D", "warnings"]),
        )
    })
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
    let fuzz = |verb: &str| {
        // The installed binary by its path (a cargo subcommand takes its own name first), so a
        // run with its tools in another install root finds it.
        let mut fuzz = std::process::Command::new(cmd::cargo_bin("cargo-fuzz"));
        fuzz.current_dir(root.join("crates/tributary-receipt"))
            .args(["fuzz", verb, "--sanitizer", "none", "--target-dir"])
            .arg(ws.target_dir.join("fuzz"))
            .arg("anchor_bundle");
        fuzz
    };
    timing::step("compile", || cmd::run(&mut fuzz("build")))?;
    timing::step("run", || {
        cmd::run(fuzz("run").arg(&corpus).args(["--", "-max_total_time=60"]))
    })
}

fn browser(root: &Path, ws: &Workspace) -> Result<()> {
    let mut node = crate::web::playwright(root, ws, crate::web::NodeBuild::AsTestsBuildIt)?;
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
    timing::step("Playwright", || {
        cmd::run(node.args(["--test", "--test-reporter=spec"]).args(&tests))
    })
}
