//! The in-tab app (`web/`): built by trunk with the pinned wasm-bindgen-cli, served by the node.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result};

use crate::cmd::{self, Workspace};
use crate::setup::Tool;
use crate::timing;

/// trunk 0.22 needs a newer rustc than these machines have (see ../shared/DESIGN.md §7).
pub const TRUNK: &str = "0.21.14";

/// `trunk build --release --offline` into `<target>/web-dist`; returns that folder.
pub fn build(root: &Path, ws: &Workspace) -> Result<PathBuf> {
    let dist = ws.target_dir.join("web-dist");
    let mut trunk = Command::new(crate::setup::tool(Tool::Trunk)?);
    cmd::lint_builds(&mut trunk);
    cmd::web_release_profile(&mut trunk);
    cmd::run(
        trunk
            .current_dir(root)
            // trunk looks for `Trunk.toml` (capitalised) by itself; ours is `trunk.toml`.
            .args([
                "--config",
                "trunk.toml",
                "build",
                "--release",
                "--offline",
                "--dist",
            ])
            .arg(&dist)
            // trunk looks for wasm-bindgen on PATH when offline; cargo's bin folder may not be.
            .env("PATH", path_with_cargo_bin()?)
            .env("CARGO_TARGET_DIR", &ws.target_dir),
    )
    .context("building the web app with trunk")?;
    Ok(dist)
}

fn path_with_cargo_bin() -> Result<OsString> {
    let bindgen = crate::setup::tool(Tool::WasmBindgen)?;
    let mut dirs = vec![
        bindgen
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .map_or_else(|| PathBuf::from("."), Path::to_path_buf),
    ];
    dirs.extend(std::env::split_paths(
        &std::env::var_os("PATH").unwrap_or_default(),
    ));
    std::env::join_paths(dirs).context("PATH")
}

/// How to get the `tributary` binary the app's node runs from.
#[derive(Debug, Clone, Copy)]
pub enum NodeBuild {
    /// The debug one the native suites build for the CLI tests ([`cmd::native_tests`]): after
    /// the native suite this compiles nothing, where `cargo build -p tributary-node` would unify
    /// features without the other crates' and dev-dependencies' and rebuild burn for one binary.
    AsTestsBuildIt,
    /// `cargo build -p tributary-node`: the least to compile on a machine that ran no tests.
    Alone,
    /// `cargo build --release -p tributary-node`: for benchmarks, which compare the tab's release
    /// wasm with native runs (the debug binary's own code is compiled at opt-level 0).
    Release,
}

pub fn node_binary(root: &Path, ws: &Workspace, how: NodeBuild) -> Result<PathBuf> {
    let mut build = match how {
        NodeBuild::AsTestsBuildIt => cmd::native_tests(root),
        NodeBuild::Alone | NodeBuild::Release => {
            let mut build = cmd::cargo();
            build
                .current_dir(root)
                .args(["build", "-p", "tributary-node"]);
            build
        }
    };
    let profile = match how {
        NodeBuild::AsTestsBuildIt => {
            build.args(["--all-targets", "--no-run"]);
            "debug"
        }
        NodeBuild::Alone => "debug",
        NodeBuild::Release => {
            build.arg("--release");
            "release"
        }
    };
    cmd::run(&mut build)?;
    Ok(ws.target_dir.join(profile).join("tributary"))
}

/// Everything the app's Playwright scripts need: the smoke pages' environment plus the built
/// app and the node binary (`playwright/app-node.mjs` starts the node from them).
pub fn playwright(root: &Path, ws: &Workspace, node_build: NodeBuild) -> Result<Command> {
    let pkg = timing::step("build the smoke pages", || crate::smoke::build(root, ws))?;
    // The verifier page loads the wallet package's web build.
    timing::step("build the wallet package", || crate::pkg::build(root, ws))?;
    let dist = timing::step("build the app (trunk)", || build(root, ws))?;
    let bin = timing::step("build the node (debug)", || {
        node_binary(root, ws, node_build)
    })?;
    let mut node = crate::smoke::node(root, &pkg);
    node.env("TRIBUTARY_WEB_DIST", dist)
        .env("TRIBUTARY_BIN", bin);
    Ok(node)
}
