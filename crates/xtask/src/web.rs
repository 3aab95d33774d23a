//! The in-tab app (`web/`): built by trunk with the pinned wasm-bindgen-cli, served by the node.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result};

use crate::cmd::{self, Workspace};

/// trunk 0.22 needs a newer rustc than these machines have (see ../shared/DESIGN.md §7).
pub const TRUNK: &str = "0.21.14";

/// `trunk build --release --offline` into `<target>/web-dist`; returns that folder.
pub fn build(root: &Path, ws: &Workspace) -> Result<PathBuf> {
    let dist = ws.target_dir.join("web-dist");
    cmd::run(
        Command::new(cmd::cargo_bin("trunk"))
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
    let bindgen = cmd::cargo_bin("wasm-bindgen");
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

/// The `tributary` binary the app's node runs from (a debug build, as `cargo test` leaves it).
pub fn node_binary(root: &Path, ws: &Workspace) -> Result<PathBuf> {
    cmd::run(
        cmd::cargo()
            .current_dir(root)
            .args(["build", "-p", "tributary-node"]),
    )?;
    Ok(ws.target_dir.join("debug/tributary"))
}

/// Everything the app's Playwright scripts need: the smoke pages' environment plus the built
/// app and the node binary (`playwright/app-node.mjs` starts the node from them).
pub fn playwright(root: &Path, ws: &Workspace) -> Result<Command> {
    let pkg = crate::smoke::build(root, ws)?;
    crate::pkg::build(root, ws)?; // the verifier page loads the wallet package's web build
    let dist = build(root, ws)?;
    let bin = node_binary(root, ws)?;
    let mut node = crate::smoke::node(root, &pkg);
    node.env("TRIBUTARY_WEB_DIST", dist)
        .env("TRIBUTARY_BIN", bin);
    Ok(node)
}
