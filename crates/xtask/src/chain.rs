//! tributary-chain's compiled contracts: `chain-artifacts` regenerates them with the pinned
//! solc-js (crates/tributary-chain/solidity, installed by `setup`); the test suite compiles into a
//! temporary folder and fails if the committed artifacts differ, so a contract edited without
//! regenerating cannot pass CI with stale bindings.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

use anyhow::{Context, Result, bail};

use crate::cmd::{self, Workspace};

const SOLIDITY: &str = "crates/tributary-chain/solidity";
const ARTIFACTS: &str = "crates/tributary-chain/artifacts";

fn compile(root: &Path, out: Option<&Path>) -> Result<()> {
    let mut command = Command::new("node");
    command.arg("compile.mjs").current_dir(root.join(SOLIDITY));
    if let Some(out) = out {
        command.arg(out);
    }
    cmd::run(&mut command).context("compiling the contracts with solc-js")
}

pub fn regenerate(root: &Path) -> Result<ExitCode> {
    crate::setup::install(root, &[])?;
    compile(root, None)?;
    println!("chain-artifacts: written to {ARTIFACTS}");
    Ok(ExitCode::SUCCESS)
}

pub fn check(root: &Path, ws: &Workspace) -> Result<()> {
    let out: PathBuf = ws.target_dir.join("tributary-chain-artifacts");
    let _ = std::fs::remove_dir_all(&out);
    compile(root, Some(&out))?;
    let committed = root.join(ARTIFACTS);
    let mut names: Vec<_> = std::fs::read_dir(&out)?
        .filter_map(|e| e.ok())
        .map(|e| e.file_name())
        .collect();
    names.sort();
    let mut stale = Vec::new();
    for name in &names {
        let fresh = std::fs::read(out.join(name))?;
        if std::fs::read(committed.join(name)).ok().as_deref() != Some(fresh.as_slice()) {
            stale.push(name.to_string_lossy().into_owned());
        }
    }
    let extra = std::fs::read_dir(&committed)?
        .filter_map(|e| e.ok())
        .filter(|e| !names.contains(&e.file_name()))
        .count();
    if !stale.is_empty() || extra > 0 {
        bail!(
            "the committed artifacts are not what the Solidity compiles to (stale: {}; {extra} \
             without a source): run `cargo xtask chain-artifacts` and commit the result",
            stale.join(", ")
        );
    }
    println!("{} artifacts are current", names.len());
    Ok(())
}
