//! `tributary receipt sign|verify|batch`: receipts as JSON files, for scripts and interop tests.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use alloy::signers::local::PrivateKeySigner;
use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::json;
use tributary_receipt::{
    Address, AnchorProof, B256, Domain, MerkleTree, Receipt, SignedReceipt, TrustedHeader,
    receipt_leaf, verify,
};

#[derive(Debug, Args)]
pub struct ReceiptArgs {
    #[command(subcommand)]
    command: ReceiptCommand,
}

#[derive(Debug, Subcommand)]
enum ReceiptCommand {
    /// Sign an unsigned receipt (JSON) with the node's key.
    Sign {
        /// The receipt's fields as JSON (node, baseModel, …, nonce).
        receipt: PathBuf,
        #[arg(long)]
        chain_id: u64,
        /// The ReceiptAnchor contract (the EIP-712 verifying contract).
        #[arg(long)]
        anchor: Address,
        /// The node's private key, hex (prefer the environment variable to the command line).
        #[arg(long, env = "TRIBUTARY_NODE_KEY", hide_env_values = true)]
        key: String,
        /// Where to write the signed receipt; stdout if absent.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Verify a signed receipt, and its anchoring when given a proof and a trusted block hash.
    /// Prints the trust level reached; exits 1, naming the failed step, otherwise.
    Verify {
        receipt: PathBuf,
        /// An anchor proof (batch proof, eth_getProof response and header), as JSON.
        #[arg(long, requires = "trusted_hash")]
        proof: Option<PathBuf>,
        /// The hash of the block header the proof was taken at, as the caller trusts it.
        #[arg(long, requires = "proof")]
        trusted_hash: Option<B256>,
    },
    /// Batch signed receipts under one Merkle root; writes the root and each receipt's proof.
    Batch {
        receipts: Vec<PathBuf>,
        #[arg(long)]
        out: Option<PathBuf>,
    },
}

pub fn receipt(args: ReceiptArgs) -> Result<ExitCode> {
    match args.command {
        ReceiptCommand::Sign {
            receipt,
            chain_id,
            anchor,
            key,
            out,
        } => {
            let unsigned: Receipt = read_json(&receipt)?;
            let signer: PrivateKeySigner = key
                .trim()
                .parse()
                .context("--key / TRIBUTARY_NODE_KEY: not a hex private key")?;
            let signed = unsigned
                .sign(Domain { chain_id, anchor }, &signer)
                .with_context(|| format!("signing {}", receipt.display()))?;
            write_json(out.as_deref(), &signed)?;
            Ok(ExitCode::SUCCESS)
        }
        ReceiptCommand::Verify {
            receipt,
            proof,
            trusted_hash,
        } => {
            let signed: SignedReceipt = read_json(&receipt)?;
            let proof: Option<AnchorProof> = proof.as_deref().map(read_json).transpose()?;
            let trusted = trusted_hash.map(|hash| TrustedHeader { hash });
            let anchor = proof.as_ref().zip(trusted.as_ref());
            match verify(&signed, anchor) {
                Ok(trust) => {
                    println!("{}", json!({"trust": trust, "digest": signed.digest()}));
                    Ok(ExitCode::SUCCESS)
                }
                Err(e) => {
                    println!(
                        "{}",
                        json!({"error": e.to_string(), "step": e.step(), "digest": signed.digest()})
                    );
                    Ok(ExitCode::FAILURE)
                }
            }
        }
        ReceiptCommand::Batch { receipts, out } => {
            if receipts.is_empty() {
                bail!("batch: no receipts given");
            }
            let digests: Vec<B256> = receipts
                .iter()
                .map(|p| read_json::<SignedReceipt>(p).map(|s| s.digest()))
                .collect::<Result<_>>()?;
            let tree = MerkleTree::new(digests.iter().map(|d| receipt_leaf(*d)).collect())?;
            let entries: Vec<_> = receipts
                .iter()
                .zip(&digests)
                .map(|(path, digest)| {
                    let proof = tree.proof(receipt_leaf(*digest))?;
                    anyhow::Ok(json!({"file": path, "digest": digest, "proof": proof}))
                })
                .collect::<Result<_>>()?;
            write_json(
                out.as_deref(),
                &json!({"root": tree.root(), "receipts": entries}),
            )?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn read_json<T: DeserializeOwned>(path: &Path) -> Result<T> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    serde_json::from_slice(&bytes).with_context(|| format!("{}: invalid", path.display()))
}

/// Writes through a temporary file and a rename, so a reader never sees half a file.
fn write_json(path: Option<&Path>, value: &impl Serialize) -> Result<()> {
    let text = serde_json::to_string_pretty(value)? + "\n";
    match path {
        None => print!("{text}"),
        Some(path) => {
            let tmp = path.with_extension("json.partial");
            std::fs::write(&tmp, text).with_context(|| format!("writing {}", tmp.display()))?;
            std::fs::rename(&tmp, path).with_context(|| format!("writing {}", path.display()))?;
        }
    }
    Ok(())
}
