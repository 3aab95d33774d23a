//! `edge-worker/`, the Cloudflare worker: built offline by worker-build (npm's esbuild, the
//! pinned wasm-bindgen-cli, no wasm-opt) into edge-worker/build, then run in the real workerd
//! through Miniflare by its Node tests and bench.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

use crate::cmd::{self, Workspace};
use crate::setup::Tool;
use crate::timing;

/// The version ../shared/DESIGN.md §7 found to build offline here.
pub const WORKER_BUILD: &str = "0.8.7";
/// The free plan's limit on a worker's compressed size.
const BUNDLE_GOAL_GZ: u64 = 3 * 1024 * 1024;

/// The worker's package name (`edge-worker/Cargo.toml`).
pub const PACKAGE: &str = "tributary-edge";

fn dir(root: &Path) -> PathBuf {
    root.join("edge-worker")
}

/// How the worker is compiled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Profile {
    /// What `wrangler deploy` ships and the bench measures: opt-level 3, since the worker's CPU
    /// inference is what Workers bill and limit.
    Deploy,
    /// The test suites': opt-level 1, the tab's level ([`cmd::web_release_profile`]), so the
    /// dependencies it shares with the tab's build (serde, tokenizers, minijinja, alloy's
    /// pieces, …) compile once. The Miniflare tests check behaviour, not speed; at level 3 the
    /// worker was a separate 4:18 min build of a cold run, at level 1 after the tab's 2:33.
    Test,
}

/// `worker-build --release`; returns (raw, gzipped) bytes of the bundle (JS glue + wasm), and
/// fails past the size goal so a dependency that bloats the worker is caught by `test`.
pub fn build(root: &Path, ws: &Workspace, profile: Profile) -> Result<(u64, u64)> {
    let edge = dir(root);
    let mut worker_build = Command::new(crate::setup::tool(Tool::WorkerBuild)?);
    cmd::lint_builds(&mut worker_build);
    if profile == Profile::Test {
        cmd::web_release_profile(&mut worker_build);
    }
    cmd::run(
        worker_build
            .current_dir(&edge)
            .arg("--release")
            .env("ESBUILD_BIN", edge.join("node_modules/.bin/esbuild"))
            .env("WASM_BINDGEN_BIN", crate::setup::tool(Tool::WasmBindgen)?)
            .env("CARGO_TARGET_DIR", &ws.target_dir),
    )
    .context("building the edge worker with worker-build")?;
    let mut raw = 0;
    let mut gz = 0;
    for file in ["index.js", "index_bg.wasm", "worker/shim.mjs"] {
        let path = edge.join("build").join(file);
        let bytes = std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
        raw += bytes.len() as u64;
        gz += gzip_len(&bytes)?;
    }
    println!(
        "edge worker bundle: {:.2} MB raw, {:.2} MB gzipped (goal <= {:.0} MB gzipped)",
        raw as f64 / 1e6,
        gz as f64 / 1e6,
        BUNDLE_GOAL_GZ as f64 / (1024.0 * 1024.0)
    );
    if gz > BUNDLE_GOAL_GZ {
        bail!("the edge worker is {gz} bytes gzipped, over the free plan's {BUNDLE_GOAL_GZ}");
    }
    Ok((raw, gz))
}

/// gzip -9, as Cloudflare measures a bundle's compressed size.
fn gzip_len(bytes: &[u8]) -> Result<u64> {
    let mut child = Command::new("gzip")
        .args(["-9", "-c"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .context("running gzip")?;
    let mut stdin = child.stdin.take().context("gzip stdin")?;
    let input = bytes.to_vec();
    let writer = std::thread::spawn(move || stdin.write_all(&input));
    let out = child.wait_with_output().context("gzip")?;
    writer
        .join()
        .map_err(|_| anyhow::anyhow!("gzip writer panicked"))?
        .context("writing to gzip")?;
    Ok(out.stdout.len() as u64)
}

/// The test suite: build, then the Miniflare tests.
pub fn test(root: &Path, ws: &Workspace) -> Result<()> {
    timing::step("build (worker-build)", || build(root, ws, Profile::Test))?;
    timing::step("Miniflare tests", || {
        cmd::run(
            Command::new("node")
                .args(["--test", "--test-reporter=spec", "test/"])
                .current_dir(dir(root)),
        )
    })
}

/// `cargo xtask bench edge`: build, then edge-worker/bench.mjs.
pub fn bench(root: &Path, ws: &Workspace) -> Result<()> {
    let (raw, gz) = build(root, ws, Profile::Deploy)?;
    cmd::run(
        Command::new("node")
            .arg("bench.mjs")
            .env("TRIBUTARY_EDGE_RAW", raw.to_string())
            .env("TRIBUTARY_EDGE_GZ", gz.to_string())
            .current_dir(dir(root)),
    )
}

/// `cargo xtask edge`: what wrangler.toml's build command runs.
pub fn run(root: &Path) -> Result<std::process::ExitCode> {
    crate::setup::install(root, &[Tool::WasmBindgen, Tool::WorkerBuild])?;
    let ws = Workspace::read(root)?;
    build(root, &ws, Profile::Deploy)?;
    Ok(std::process::ExitCode::SUCCESS)
}
