//! `tributary`: the node's command line. Kept thin: each subcommand parses its flags and calls
//! the crate that does the work.

mod attribute;
mod datanet;
mod files;
mod gradient;
mod receipt;
mod run;
mod serve;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "tributary",
    version,
    about = "Tributary node: attributed LoRA inference"
)]
struct Cli {
    /// Log as JSON lines instead of text (logs go to stderr; RUST_LOG filters them).
    #[arg(long, global = true)]
    log_json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Generate text from a Hugging Face model folder, optionally with a PEFT adapter.
    Run(run::RunArgs),
    /// Serve the OpenAI-compatible API (continuous batching, adapters per request) over HTTP.
    Serve(serve::ServeArgs),
    /// Sign, verify and batch Proof-of-Attribution receipts (JSON files).
    Receipt(receipt::ReceiptArgs),
    /// Datanets: signed contributions, curation, snapshots (a local SQLite file).
    Datanet(datanet::DatanetArgs),
    /// Suffix-array indexes of datanet snapshots.
    Index(attribute::IndexArgs),
    /// Which datanet contributions a text draws on (span tracing or gradient influence against a
    /// snapshot's index).
    Attribute(attribute::AttributeArgs),
    /// Fine-tune a LoRA adapter on a datanet snapshot (AdamW, next-token loss), as PEFT files.
    Finetune(gradient::FinetuneArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let json_logs = cli.log_json || matches!(&cli.command, Command::Serve(a) if a.json);
    init_logging(json_logs);
    let result = match cli.command {
        Command::Run(args) => run::run(args).map(|()| ExitCode::SUCCESS),
        Command::Serve(args) => serve::serve(args).map(|()| ExitCode::SUCCESS),
        Command::Receipt(args) => receipt::receipt(args),
        Command::Datanet(args) => datanet::datanet(args).map(|()| ExitCode::SUCCESS),
        Command::Index(args) => attribute::index(args).map(|()| ExitCode::SUCCESS),
        Command::Attribute(args) => attribute::attribute(args).map(|()| ExitCode::SUCCESS),
        Command::Finetune(args) => gradient::finetune(args).map(|()| ExitCode::SUCCESS),
    };
    match result {
        Ok(code) => code,
        Err(err) => {
            eprintln!("tributary: {err:#}");
            ExitCode::FAILURE
        }
    }
}

fn init_logging(json: bool) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if json {
        builder.json().init();
    } else {
        builder.init();
    }
}
