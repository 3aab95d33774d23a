//! The browser smoke pages: the WGSL kernels and the model compiled to wasm32 and bound with
//! wasm-bindgen, served beside `playwright/smoke/`. Shared by the browser suite and the demo.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result};

use crate::cmd::{self, Workspace};

/// The smoke pages' bindings are a binary of the app's package (`web/src/bin/smoke`), so they
/// build with the app's dependencies and share its compiled wasm32 crates with trunk's build.
const PACKAGE: &str = cmd::WEB_PACKAGE;
const BIN: &str = "smoke";

/// Where [`build`] puts the page's `pkg/`.
pub fn page_dir(ws: &Workspace) -> PathBuf {
    ws.target_dir.join("smoke-page/pkg")
}

/// Builds the page's wasm package and returns the folder the page loads `pkg/` from.
pub fn build(root: &Path, ws: &Workspace) -> Result<PathBuf> {
    let wasm = cmd::build_wasm_release(root, ws, PACKAGE, Some(BIN))?;
    let pkg = page_dir(ws);
    // Start clean so files of a renamed crate cannot linger and be served.
    if pkg.exists() {
        std::fs::remove_dir_all(&pkg).with_context(|| format!("clearing {}", pkg.display()))?;
    }
    cmd::run(
        Command::new(crate::setup::tool(crate::setup::Tool::WasmBindgen)?)
            .args(["--target", "web", "--out-dir"])
            .arg(&pkg)
            .arg(&wasm),
    )
    .context("binding the smoke page's wasm")?;
    Ok(pkg)
}

/// Node with the environment the Playwright scripts read: where the page's `pkg/` is, and the
/// default model file (which `setup` installed) that the pages load at `/models/`.
pub fn node(root: &Path, pkg: &Path) -> Command {
    let mut node = Command::new("node");
    node.current_dir(root.join("playwright"))
        .env("TRIBUTARY_SMOKE_PKG", pkg)
        .env("TRIBUTARY_MODEL_FILE", tributary_models::DEFAULT.path());
    node
}
