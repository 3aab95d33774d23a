//! `cargo xtask fixtures`: regenerates tributary-model's reference fixtures with Hugging Face
//! transformers + PEFT. Not part of `test`: the fixtures are committed, and the Python stack is
//! large (torch), so it lives in a virtual environment outside the repo.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

use anyhow::{Context, Result};

use crate::cmd;

const REFERENCE: &str = "crates/tributary-model/reference";

fn venv_dir() -> PathBuf {
    std::env::var_os("TRIBUTARY_PYREF")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            let home = std::env::var_os("HOME").unwrap_or_else(|| ".".into());
            Path::new(&home).join(".cache/tributary/pyref")
        })
}

pub fn run(root: &Path) -> Result<ExitCode> {
    let venv = venv_dir();
    let python = venv.join("bin/python");
    if !python.exists() {
        println!(
            "fixtures: creating the virtual environment {}",
            venv.display()
        );
        cmd::run(Command::new("python3").args(["-m", "venv"]).arg(&venv))
            .context("could not create the Python virtual environment (Debian: python3-venv)")?;
    }
    let requirements = root.join(REFERENCE).join("requirements.txt");
    // pip skips what is already installed at the pinned version, so this is cheap when current.
    cmd::run(
        Command::new(&python)
            .args(["-m", "pip", "install", "-q", "-r"])
            .arg(&requirements),
    )
    .context("could not install the pinned reference packages")?;
    cmd::run(
        Command::new(&python)
            .arg(root.join(REFERENCE).join("make_fixtures.py"))
            // PEFT keeps target_modules in a set; a fixed hash seed keeps its JSON order stable.
            .env("PYTHONHASHSEED", "0")
            .current_dir(root),
    )?;
    // Chat templates come after: make_fixtures.py recreates the folders they write into.
    cmd::run(
        Command::new(&python)
            .arg(root.join(REFERENCE).join("chat_reference.py"))
            .current_dir(root),
    )?;
    println!("fixtures: written to crates/tributary-model/tests/fixtures");
    Ok(ExitCode::SUCCESS)
}
