//! The wallet's check of a receipt, without trusting the node, in a fixed order where each step
//! that fails is its own [`VerifyError`]:
//!
//! 1. the signature recovers the receipt's `node` over its EIP-712 digest, and the attribution
//!    weights are well formed → [`Trust::Signed`];
//! 2. the receipt's leaf is in the batch root (OpenZeppelin proof);
//! 3. the anchor contract's storage holds that root for (node, sequence): an `eth_getProof`
//!    (EIP-1186) account proof and storage proof, checked with alloy-trie against
//! 4. the state root of a block header whose hash the caller trusts (a checkpoint)
//!    → [`Trust::Anchored`].

use alloy::primitives::{Address, B256, Bytes, U256, keccak256};
use alloy::rlp::{Decodable, Header as RlpHeader};
use alloy::sol_types::SolValue;
use alloy::trie::{Nibbles, TrieAccount, proof::verify_proof};
use serde::{Deserialize, Serialize};

use crate::merkle::{process_proof, receipt_leaf};
use crate::receipt::{METHOD_GRADIENT, METHOD_SPAN, PPM, SignedReceipt};

/// How far a receipt was proven.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Trust {
    /// The node signed it (and its weights are well formed).
    Signed,
    /// Its batch root is in the anchor contract's state under a trusted block.
    Anchored,
}

/// Bounds on what a verifier accepts, so a hostile bundle cannot make it work without end.
pub const MAX_ATTRIBUTIONS: usize = 1024;
pub const MAX_DATANET_ROOTS: usize = 64;
/// A batch of 2^64 receipts would need 64 siblings.
pub const MAX_BATCH_PROOF: usize = 64;
/// Trie proofs: a path has at most 64 nibbles, plus extension nodes.
pub const MAX_TRIE_PROOF_NODES: usize = 80;
/// A trie node (a full branch of 16 hashes plus value) is under 600 bytes.
pub const MAX_TRIE_NODE_BYTES: usize = 1024;
pub const MAX_HEADER_BYTES: usize = 2048;

/// The storage slot index of `ReceiptAnchor.roots`, a
/// `mapping(address node => mapping(uint64 sequence => bytes32 root))`.
pub const ROOTS_SLOT: u64 = 0;

/// Where the batch holding a receipt is, and the proofs that it is anchored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AnchorProof {
    /// The batch's Merkle root.
    pub root: B256,
    /// The receipt leaf's siblings up to `root`.
    pub proof: Vec<B256>,
    /// The node's batch sequence number the root was anchored under.
    pub sequence: u64,
    /// `eth_getProof(anchor, [slot], block)`, as the node returned it.
    pub account: AccountProof,
    /// The RLP of the block header the proof was taken at.
    pub header: Bytes,
}

/// An EIP-1186 `eth_getProof` response (the fields this verifier reads).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AccountProof {
    pub address: Address,
    pub balance: U256,
    pub code_hash: B256,
    pub nonce: alloy::primitives::U64,
    pub storage_hash: B256,
    pub account_proof: Vec<Bytes>,
    pub storage_proof: Vec<StorageProof>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StorageProof {
    /// The slot (clients write it with or without leading zeros).
    pub key: U256,
    pub value: U256,
    pub proof: Vec<Bytes>,
}

/// A block the caller trusts: from its own light client, or a checkpoint it was given.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TrustedHeader {
    pub hash: B256,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    #[error("signature: {0}")]
    BadSignature(String),
    #[error("signature: recovers {recovered}, but the receipt names node {node}")]
    WrongSigner { node: Address, recovered: Address },
    #[error("attributions: {0} entries, over the limit of {MAX_ATTRIBUTIONS}")]
    TooManyAttributions(usize),
    #[error("datanetRoots: {0} entries, over the limit of {MAX_DATANET_ROOTS}")]
    TooManyDatanetRoots(usize),
    #[error("attributions: weights sum to {0} ppm, over 1,000,000")]
    WeightsOverOne(u64),
    #[error("attributions[{index}]: weight {weight} ppm is under the threshold {threshold} ppm")]
    UnderThreshold {
        index: usize,
        weight: u32,
        threshold: u32,
    },
    #[error("attributions[{index}]: unknown method {method}")]
    UnknownMethod { index: usize, method: u8 },
    #[error("batch: proof of {0} hashes, over the limit of {MAX_BATCH_PROOF}")]
    BatchProofTooLong(usize),
    #[error("batch: the receipt's leaf does not lead to root {root} (got {computed})")]
    NotInBatch { root: B256, computed: B256 },
    #[error("header: {0}")]
    BadHeader(String),
    #[error("header: hash {got} is not the trusted {trusted}")]
    UntrustedHeader { trusted: B256, got: B256 },
    #[error("account proof: for {got}, not the anchor contract {anchor}")]
    WrongContract { anchor: Address, got: Address },
    #[error("account proof: {0}")]
    AccountProof(String),
    #[error("storage proof: expected exactly one slot, got {0}")]
    StorageProofCount(usize),
    #[error("storage proof: for slot {got}, not the root's slot {expected}")]
    WrongSlot { expected: B256, got: B256 },
    #[error("storage proof: the slot holds {stored}, not the batch root {root}")]
    RootNotStored { root: B256, stored: B256 },
    #[error("storage proof: {0}")]
    StorageProof(String),
}

impl VerifyError {
    /// The step that failed, for callers that branch on it (and for the wasm API).
    pub fn step(&self) -> &'static str {
        use VerifyError::*;
        match self {
            BadSignature(_) | WrongSigner { .. } => "signature",
            TooManyAttributions(_)
            | TooManyDatanetRoots(_)
            | WeightsOverOne(_)
            | UnderThreshold { .. }
            | UnknownMethod { .. } => "weights",
            BatchProofTooLong(_) | NotInBatch { .. } => "batch",
            BadHeader(_) | UntrustedHeader { .. } => "header",
            WrongContract { .. } | AccountProof(_) => "account",
            StorageProofCount(_) | WrongSlot { .. } | RootNotStored { .. } | StorageProof(_) => {
                "storage"
            }
        }
    }
}

/// What a verifier answers: the outcome, not an error, when a receipt fails — wallets (pkg/),
/// the tab and the edge worker all return this one shape.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Outcome {
    pub valid: bool,
    /// The level reached when valid.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trust: Option<Trust>,
    /// The step that failed ([`VerifyError::step`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub step: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The receipt's EIP-712 digest.
    pub digest: B256,
}

impl Outcome {
    /// [`verify`], as an outcome.
    pub fn of(signed: &SignedReceipt, anchor: Option<(&AnchorProof, &TrustedHeader)>) -> Self {
        let digest = signed.digest();
        match verify(signed, anchor) {
            Ok(trust) => Self {
                valid: true,
                trust: Some(trust),
                step: None,
                error: None,
                digest,
            },
            Err(e) => Self {
                valid: false,
                trust: None,
                step: Some(e.step()),
                error: Some(e.to_string()),
                digest,
            },
        }
    }
}

/// A receipt with what may prove it anchored, as a verification service receives it (the
/// arguments of pkg's `verifyReceipt`, by the same names).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct VerifyRequest {
    pub receipt: SignedReceipt,
    #[serde(default)]
    pub proofs: Option<AnchorProof>,
    #[serde(default)]
    pub trusted_header: Option<TrustedHeader>,
}

impl VerifyRequest {
    /// Proofs without a trusted header (or the reverse) prove nothing: refused as input, not
    /// silently verified as `Signed`.
    pub fn outcome(&self) -> Result<Outcome, &'static str> {
        let anchor = match (&self.proofs, &self.trusted_header) {
            (Some(p), Some(t)) => Some((p, t)),
            (None, None) => None,
            (Some(_), None) => return Err("proofs given without trustedHeader"),
            (None, Some(_)) => return Err("trustedHeader given without proofs"),
        };
        Ok(Outcome::of(&self.receipt, anchor))
    }
}

/// The storage slot holding `roots[node][sequence]`.
pub fn root_slot(node: Address, sequence: u64) -> B256 {
    let inner = keccak256((node, U256::from(ROOTS_SLOT)).abi_encode());
    keccak256((U256::from(sequence), inner).abi_encode())
}

/// Checks a signed receipt and, when `anchor` and `trusted` are given, its anchoring; returns the
/// trust level reached.
pub fn verify(
    signed: &SignedReceipt,
    anchor: Option<(&AnchorProof, &TrustedHeader)>,
) -> Result<Trust, VerifyError> {
    let digest = signed.digest();
    check_signature(signed, digest)?;
    check_weights(signed)?;
    let Some((proof, trusted)) = anchor else {
        return Ok(Trust::Signed);
    };
    check_batch(digest, proof)?;
    let state_root = check_header(&proof.header, trusted)?;
    let storage_root = check_account(proof, signed.domain.anchor, state_root)?;
    check_storage(proof, signed.receipt.node, storage_root)?;
    Ok(Trust::Anchored)
}

fn check_signature(signed: &SignedReceipt, digest: B256) -> Result<(), VerifyError> {
    let signature = signed
        .signature()
        .map_err(|e| VerifyError::BadSignature(e.to_string()))?;
    let recovered = signature
        .recover_address_from_prehash(&digest)
        .map_err(|e| VerifyError::BadSignature(e.to_string()))?;
    if recovered != signed.receipt.node {
        return Err(VerifyError::WrongSigner {
            node: signed.receipt.node,
            recovered,
        });
    }
    Ok(())
}

fn check_weights(signed: &SignedReceipt) -> Result<(), VerifyError> {
    let r = &signed.receipt;
    if r.attributions.len() > MAX_ATTRIBUTIONS {
        return Err(VerifyError::TooManyAttributions(r.attributions.len()));
    }
    if r.datanetRoots.len() > MAX_DATANET_ROOTS {
        return Err(VerifyError::TooManyDatanetRoots(r.datanetRoots.len()));
    }
    let mut sum = 0u64;
    for (index, a) in r.attributions.iter().enumerate() {
        if a.method != METHOD_SPAN && a.method != METHOD_GRADIENT {
            return Err(VerifyError::UnknownMethod {
                index,
                method: a.method,
            });
        }
        if a.weightPpm < r.thresholdPpm {
            return Err(VerifyError::UnderThreshold {
                index,
                weight: a.weightPpm,
                threshold: r.thresholdPpm,
            });
        }
        sum += u64::from(a.weightPpm);
    }
    if sum > PPM {
        return Err(VerifyError::WeightsOverOne(sum));
    }
    Ok(())
}

fn check_batch(digest: B256, proof: &AnchorProof) -> Result<(), VerifyError> {
    if proof.proof.len() > MAX_BATCH_PROOF {
        return Err(VerifyError::BatchProofTooLong(proof.proof.len()));
    }
    let computed = process_proof(receipt_leaf(digest), &proof.proof);
    if computed != proof.root {
        return Err(VerifyError::NotInBatch {
            root: proof.root,
            computed,
        });
    }
    Ok(())
}

/// The header's state root, once its hash is the trusted one.
fn check_header(rlp: &[u8], trusted: &TrustedHeader) -> Result<B256, VerifyError> {
    if rlp.len() > MAX_HEADER_BYTES {
        return Err(VerifyError::BadHeader(format!(
            "{} bytes, over the limit of {MAX_HEADER_BYTES}",
            rlp.len()
        )));
    }
    let got = keccak256(rlp);
    if got != trusted.hash {
        return Err(VerifyError::UntrustedHeader {
            trusted: trusted.hash,
            got,
        });
    }
    // A header is an RLP list starting parentHash, ommersHash, beneficiary, stateRoot.
    let bad = |e: alloy::rlp::Error| VerifyError::BadHeader(e.to_string());
    let mut buf = rlp;
    let list = RlpHeader::decode(&mut buf).map_err(bad)?;
    if !list.list {
        return Err(VerifyError::BadHeader("not an RLP list".into()));
    }
    B256::decode(&mut buf).map_err(bad)?;
    B256::decode(&mut buf).map_err(bad)?;
    Address::decode(&mut buf).map_err(bad)?;
    B256::decode(&mut buf).map_err(bad)
}

fn check_trie_proof(nodes: &[Bytes]) -> Result<(), String> {
    if nodes.len() > MAX_TRIE_PROOF_NODES {
        return Err(format!(
            "{} nodes, over the limit of {MAX_TRIE_PROOF_NODES}",
            nodes.len()
        ));
    }
    if let Some(n) = nodes.iter().find(|n| n.len() > MAX_TRIE_NODE_BYTES) {
        return Err(format!(
            "a node of {} bytes, over the limit of {MAX_TRIE_NODE_BYTES}",
            n.len()
        ));
    }
    Ok(())
}

/// The anchor contract's storage root, proven against the state root.
fn check_account(
    proof: &AnchorProof,
    anchor: Address,
    state_root: B256,
) -> Result<B256, VerifyError> {
    let a = &proof.account;
    if a.address != anchor {
        return Err(VerifyError::WrongContract {
            anchor,
            got: a.address,
        });
    }
    check_trie_proof(&a.account_proof).map_err(VerifyError::AccountProof)?;
    let account = TrieAccount {
        nonce: a.nonce.to(),
        balance: a.balance,
        storage_root: a.storage_hash,
        code_hash: a.code_hash,
    };
    verify_proof(
        state_root,
        Nibbles::unpack(keccak256(anchor)),
        Some(alloy::rlp::encode(account)),
        &a.account_proof,
    )
    .map_err(|e| VerifyError::AccountProof(e.to_string()))?;
    Ok(a.storage_hash)
}

fn check_storage(
    proof: &AnchorProof,
    node: Address,
    storage_root: B256,
) -> Result<(), VerifyError> {
    let [slot] = proof.account.storage_proof.as_slice() else {
        return Err(VerifyError::StorageProofCount(
            proof.account.storage_proof.len(),
        ));
    };
    let expected = root_slot(node, proof.sequence);
    let got = B256::from(slot.key);
    if got != expected {
        return Err(VerifyError::WrongSlot { expected, got });
    }
    let stored = B256::from(slot.value);
    if stored != proof.root {
        return Err(VerifyError::RootNotStored {
            root: proof.root,
            stored,
        });
    }
    check_trie_proof(&slot.proof).map_err(VerifyError::StorageProof)?;
    // Storage values are RLP of the value with leading zeros stripped; zero means absent.
    let value = (!slot.value.is_zero()).then(|| alloy::rlp::encode(slot.value));
    verify_proof(
        storage_root,
        Nibbles::unpack(keccak256(expected)),
        value,
        &slot.proof,
    )
    .map_err(|e| VerifyError::StorageProof(e.to_string()))
}

/// An OP Stack output root (version 0): `keccak256(0 ‖ stateRoot ‖ messagePasserStorageRoot ‖
/// blockHash)`, what the L2 output oracle / dispute games commit to on L1. The `Finalized` trust
/// level will prove a receipt's anchor block against one of these.
pub fn op_output_root(
    state_root: B256,
    message_passer_storage_root: B256,
    block_hash: B256,
) -> B256 {
    let mut preimage = [0u8; 128];
    preimage[32..64].copy_from_slice(state_root.as_slice());
    preimage[64..96].copy_from_slice(message_passer_storage_root.as_slice());
    preimage[96..].copy_from_slice(block_hash.as_slice());
    keccak256(preimage)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// kona's output-root test vector (../shared/DESIGN.md §7).
    #[test]
    fn op_output_root_matches_kona() {
        let word = |v: u64| B256::from(U256::from(v));
        assert_eq!(
            op_output_root(word(0xbeef), word(0xbabe), word(0xc0de)).to_string(),
            "0x0c39fb6b07cf6694b13e63e59f7b15255be1c93a4d6d3e0da6c99729647c0d11"
        );
    }
}
