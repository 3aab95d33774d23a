//! `cargo xtask fixtures [toy|smollm2|all]`: regenerates tributary-model's reference fixtures
//! with Hugging Face transformers + PEFT — `toy`, the small random checkpoints, and `smollm2`, what
//! transformers makes of the embedded default model. Not part of `test`: the fixtures are
//! committed, and the Python stack is large (torch), so it lives in a virtual environment outside
//! the repo.

use std::path::Path;
use std::process::{Command, ExitCode};

use anyhow::Result;

use crate::cmd;

const REFERENCE: &str = "crates/tributary-model/reference";

/// Which fixtures to regenerate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Which {
    /// The random toy checkpoints, their PEFT adapters and the chat-template cases.
    Toy,
    /// The embedded default model (SmolLM2-135M-Instruct Q4_1): tokenizer, chat template, logits
    /// and greedy tokens (tests/fixtures/smollm2/reference.json).
    Smollm2,
    All,
}

pub fn run(root: &Path, which: Which) -> Result<ExitCode> {
    // TRIBUTARY_PYREF moves it; torch brings about 5 GB of CUDA libraries.
    let python = cmd::python_venv(
        "TRIBUTARY_PYREF",
        "pyref",
        &root.join(REFERENCE).join("requirements.txt"),
        |_| {},
    )?;
    if matches!(which, Which::Toy | Which::All) {
        toy(root, &python)?;
    }
    // Last: make_fixtures.py recreates the whole fixtures folder.
    if matches!(which, Which::Smollm2 | Which::All) {
        crate::setup::model(&tributary_models::DEFAULT)?;
        cmd::run(
            Command::new(&python)
                .arg(root.join(REFERENCE).join("smollm2_reference.py"))
                .arg(tributary_models::DEFAULT.path())
                .current_dir(root),
        )?;
    }
    println!("fixtures: written to crates/tributary-model/tests/fixtures");
    Ok(ExitCode::SUCCESS)
}

fn toy(root: &Path, python: &Path) -> Result<()> {
    cmd::run(
        Command::new(python)
            .arg(root.join(REFERENCE).join("make_fixtures.py"))
            // PEFT keeps target_modules in a set; a fixed hash seed keeps its JSON order stable.
            .env("PYTHONHASHSEED", "0")
            .current_dir(root),
    )?;
    // Chat templates come after: make_fixtures.py recreates the folders they write into.
    cmd::run(
        Command::new(python)
            .arg(root.join(REFERENCE).join("chat_reference.py"))
            .current_dir(root),
    )
}
