//! `tributary datanet create|add|import|review|snapshot|show`: datanets in a local SQLite file.

use std::io::BufRead;
use std::path::{Path, PathBuf};

use alloy::signers::local::PrivateKeySigner;
use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};
use serde::Serialize;
use tributary_datanet::{SignedReview, Store, Submission};
use tributary_receipt::{Address, B256};

#[derive(Debug, Args)]
pub struct DatanetArgs {
    /// The SQLite file holding the datanets.
    #[arg(long, env = "TRIBUTARY_DB", global = true, value_name = "FILE")]
    db: Option<PathBuf>,
    /// Print results as JSON.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: DatanetCommand,
}

#[derive(Debug, Subcommand)]
enum DatanetCommand {
    /// Create a datanet whose contributions `--validator` curates.
    Create {
        name: String,
        #[arg(long)]
        validator: Address,
        #[arg(long, default_value = "")]
        description: String,
    },
    /// Add text files as contributions, each signed with the contributor's key.
    Add {
        name: String,
        files: Vec<PathBuf>,
        #[arg(long)]
        license: String,
        /// The contributor's private key, hex.
        #[arg(long, env = "TRIBUTARY_CONTRIBUTOR_KEY", hide_env_values = true)]
        key: String,
    },
    /// Import signed contributions from JSON lines ({content, contributor, license, signature}),
    /// all in one transaction.
    Import { name: String, file: PathBuf },
    /// Accept or reject a contribution, signed with the validator's key.
    Review {
        name: String,
        /// The contribution's content hash.
        hash: B256,
        #[arg(long, conflicts_with = "reject", required_unless_present = "reject")]
        accept: bool,
        /// Reject, with the reason.
        #[arg(long, value_name = "REASON")]
        reject: Option<String>,
        #[arg(long, env = "TRIBUTARY_VALIDATOR_KEY", hide_env_values = true)]
        key: String,
    },
    /// Freeze the accepted contributions as the next version, under a Merkle root.
    Snapshot { name: String },
    /// Counts, snapshots and (with --contributions) every contribution.
    Show {
        name: String,
        #[arg(long)]
        contributions: bool,
    },
}

pub fn default_db() -> PathBuf {
    let base = std::env::var_os("XDG_DATA_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/share")))
        .unwrap_or_else(|| PathBuf::from("."));
    base.join("tributary/datanets.sqlite")
}

fn signer(key: &str, what: &str) -> Result<PrivateKeySigner> {
    key.trim()
        .parse()
        .with_context(|| format!("{what}: not a hex private key"))
}

fn print(json: bool, value: &impl Serialize, text: impl FnOnce() -> String) -> Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(value)?);
    } else {
        println!("{}", text());
    }
    Ok(())
}

/// Reads every line first, so a malformed line stops the import before anything is written.
fn read_jsonl(path: &Path) -> Result<Vec<Submission>> {
    let file = std::fs::File::open(path).with_context(|| format!("reading {}", path.display()))?;
    let mut out = Vec::new();
    for (i, line) in std::io::BufReader::new(file).lines().enumerate() {
        let line = line.with_context(|| format!("reading {}", path.display()))?;
        if line.trim().is_empty() {
            continue;
        }
        out.push(
            serde_json::from_str(&line)
                .with_context(|| format!("{}:{}: not a contribution", path.display(), i + 1))?,
        );
    }
    Ok(out)
}

pub fn datanet(args: DatanetArgs) -> Result<()> {
    let db = args.db.unwrap_or_else(default_db);
    if let Some(dir) = db.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let mut store = Store::open(&db)?;
    let json = args.json;
    match args.command {
        DatanetCommand::Create {
            name,
            validator,
            description,
        } => {
            store.create(&name, validator, &description)?;
            print(
                json,
                &serde_json::json!({"created": name, "validator": validator}),
                || {
                    format!(
                        "created datanet {name} (validator {validator}) in {}",
                        db.display()
                    )
                },
            )
        }
        DatanetCommand::Add {
            name,
            files,
            license,
            key,
        } => {
            if files.is_empty() {
                bail!("add: no files given");
            }
            let key = signer(&key, "--key / TRIBUTARY_CONTRIBUTOR_KEY")?;
            let submissions = files
                .iter()
                .map(|f| {
                    let content = std::fs::read_to_string(f)
                        .with_context(|| format!("reading {}", f.display()))?;
                    Ok(Submission::sign(&name, content, &license, &key)?)
                })
                .collect::<Result<Vec<_>>>()?;
            report(json, &store.add(&name, &submissions)?)
        }
        DatanetCommand::Import { name, file } => {
            let submissions = read_jsonl(&file)?;
            report(json, &store.add(&name, &submissions)?)
        }
        DatanetCommand::Review {
            name,
            hash,
            accept,
            reject,
            key,
        } => {
            let key = signer(&key, "--key / TRIBUTARY_VALIDATOR_KEY")?;
            let reason = reject.unwrap_or_default();
            let review = SignedReview::sign(&name, hash, accept, &reason, &key)?;
            store.review(&name, &review)?;
            print(
                json,
                &serde_json::json!({"hash": hash, "accepted": accept, "reason": reason}),
                || format!("{} {hash}", if accept { "accepted" } else { "rejected" }),
            )
        }
        DatanetCommand::Snapshot { name } => {
            let snap = store.snapshot(&name)?;
            print(json, &snap, || {
                format!(
                    "{name} version {}: {} contributions, root {}",
                    snap.version, snap.contributions, snap.root
                )
            })
        }
        DatanetCommand::Show {
            name,
            contributions,
        } => {
            let summary = store.summary(&name)?;
            let list = if contributions {
                Some(store.contributions(&name)?)
            } else {
                None
            };
            print(
                json,
                &serde_json::json!({"summary": summary, "contributions": list}),
                || {
                    let mut text = format!(
                        "{}: validator {}; {} pending, {} accepted, {} rejected",
                        summary.name,
                        summary.validator,
                        summary.pending,
                        summary.accepted,
                        summary.rejected
                    );
                    for s in &summary.snapshots {
                        text += &format!(
                            "\n  version {}: {} contributions, root {}",
                            s.version, s.contributions, s.root
                        );
                    }
                    for c in list.iter().flatten() {
                        text += &format!(
                            "\n  {} {:?} by {} ({})",
                            c.content_hash, c.status, c.contributor, c.license
                        );
                    }
                    text
                },
            )
        }
    }
}

fn report(json: bool, r: &tributary_datanet::ImportReport) -> Result<()> {
    print(json, r, || {
        let mut text = format!("added {} (pending review)", r.added.len());
        for (i, hash, why) in &r.refused {
            text += &format!("\n  refused #{i} {hash}: {why}");
        }
        for (hash, of) in &r.near_duplicates {
            text += &format!("\n  near-duplicate: {hash} resembles {of}");
        }
        text
    })
}
