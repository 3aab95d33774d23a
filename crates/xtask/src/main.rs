//! `cargo xtask`: everything that is not a plain `cargo` command — installing what the tests
//! need on a fresh machine, running every suite on every target, and the demo.

mod bench;
mod chain;
mod cmd;
mod demo;
mod edge;
mod fixtures;
mod passed;
mod pkg;
mod setup;
mod smoke;
mod test;
mod timing;
mod web;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "cargo xtask",
    about = "Tributary's set-up, test and demo commands"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Install what is missing (rustup target, Debian and npm packages, pinned cargo tools).
    Setup,
    /// `setup`, then every test suite; ends with one `N passed, N failed` line. A suite that
    /// passed before on exactly this tree (and rustc, Node, Chromium, Mesa) is not run again.
    Test {
        /// Run every suite, also those that passed before on this tree.
        #[arg(long)]
        rerun: bool,
    },
    /// Benchmark reports (not tests): `model` compares our model with candle on the CPU;
    /// `sgmv` times the SGMV kernels (mixed vs one adapter, vs a launch per adapter, vs matmul);
    /// `serve` measures the continuous-batching engine's decode throughput across adapters;
    /// `verify` times receipt verification in the wallet package (Node, Chromium) and its size;
    /// `attribution` measures suffix-array builds and span tracing; `web` times the in-tab app
    /// against native runs and reports its download sizes; `edge` reports the edge worker's
    /// bundle size, receipt verification time and download throughput under Miniflare.
    Bench {
        /// What to measure: model, sgmv, serve, verify, attribution, web or edge.
        #[arg(default_value = "model")]
        what: String,
        /// sgmv: use the wgpu adapter WGPU_BACKEND / WGPU_ADAPTER_NAME select instead of lavapipe.
        #[arg(long)]
        adapter_from_env: bool,
    },
    /// Regenerate tributary-model's reference fixtures with transformers + PEFT (pinned, in a
    /// virtual environment under ~/.cache/tributary/pyref; not run by `test`): `toy` for the
    /// random checkpoints, `smollm2` for the embedded default model, `all` (the default).
    Fixtures {
        #[arg(value_enum, default_value = "all")]
        which: fixtures::Which,
    },
    /// Recompile tributary-chain's Solidity contracts with the pinned solc-js into
    /// crates/tributary-chain/artifacts (committed; `test` checks they are current).
    ChainArtifacts,
    /// `setup`, then build the edge worker (edge-worker/build) with worker-build, offline.
    Edge,
    /// `setup`, build, and run the project's main job.
    Demo {
        /// Port for the smoke pages.
        #[arg(long, default_value_t = 8080)]
        port: u16,
        /// Port for the OpenAI-compatible API (`tributary serve`).
        #[arg(long, default_value_t = 8000)]
        api_port: u16,
        /// Run the job once in headless Chromium and exit instead of serving until Ctrl-C.
        #[arg(long)]
        once: bool,
    },
}

fn main() -> ExitCode {
    // clap exits with status 2 and the usage text on an unknown subcommand.
    let cli = Cli::parse();
    let root = workspace_root();
    let result = match cli.command {
        Command::Setup => setup::run(&root).inspect(|_| println!("{}", timing::table())),
        Command::Test { rerun } => test::run(&root, rerun),
        Command::Edge => edge::run(&root),
        Command::Bench {
            what,
            adapter_from_env,
        } => bench::run(&root, &what, adapter_from_env),
        Command::Fixtures { which } => fixtures::run(&root, which),
        Command::ChainArtifacts => chain::regenerate(&root),
        Command::Demo {
            port,
            api_port,
            once,
        } => demo::run(&root, port, api_port, once),
    };
    match result {
        Ok(code) => code,
        Err(err) => {
            eprintln!("xtask: {err:#}");
            ExitCode::FAILURE
        }
    }
}

/// The repository root: xtask lives in `crates/xtask`, whatever directory cargo was run from.
/// Read at run time (`cargo run` sets `CARGO_MANIFEST_DIR`): cargo fingerprints workspace
/// members by their path relative to the workspace, so a binary built in one clone is reused by
/// another clone sharing the target folder (as CI's does), and a compile-time path would point
/// the second clone's run at the first clone's files.
fn workspace_root() -> PathBuf {
    let manifest = std::env::var_os("CARGO_MANIFEST_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")));
    manifest
        .ancestors()
        .nth(2)
        .expect("crates/xtask sits two levels below the root")
        .to_path_buf()
}
