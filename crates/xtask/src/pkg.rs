//! pkg/, the wallet package: wasm-bindgen output of tributary-verifier for the web and for Node
//! (not committed; built here), its Node tests and the TypeScript check of its hand-written
//! declarations.

use std::path::Path;
use std::process::Command;

use anyhow::{Context, Result};

use crate::cmd::{self, Workspace};
use crate::timing;

pub const CRATE: &str = "tributary-verifier";

/// Builds the release wasm and binds it into pkg/web and pkg/node.
pub fn build(root: &Path, ws: &Workspace) -> Result<()> {
    let wasm = cmd::build_wasm_release(root, ws, CRATE, None)?;
    let bindgen = crate::setup::tool(crate::setup::Tool::WasmBindgen)?;
    for (target, dir) in [("web", "web"), ("experimental-nodejs-module", "node")] {
        let out = root.join("pkg").join(dir);
        if out.exists() {
            std::fs::remove_dir_all(&out).with_context(|| format!("clearing {}", out.display()))?;
        }
        cmd::run(
            Command::new(&bindgen)
                .args(["--target", target, "--out-dir"])
                .arg(&out)
                .arg(&wasm),
        )
        .with_context(|| format!("binding pkg/{dir}"))?;
    }
    Ok(())
}

/// The test suite: build, type-check the declarations, run the Node tests (the package against
/// the anvil fixture, and against OpenZeppelin's merkle-tree and viem).
pub fn test(root: &Path, ws: &Workspace) -> Result<()> {
    timing::step("build (wasm32 release, wasm-bindgen)", || build(root, ws))?;
    let pkg = root.join("pkg");
    timing::step("tsc", || {
        cmd::run(
            Command::new("node")
                .args(["node_modules/typescript/bin/tsc", "-p", "tsconfig.json"])
                .current_dir(&pkg),
        )
        .context("type-checking pkg's declarations")
    })?;
    timing::step("Node tests", || {
        cmd::run(
            Command::new("node")
                .args(["--test", "test/"])
                .current_dir(&pkg),
        )
    })
}
