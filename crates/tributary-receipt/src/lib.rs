//! Proof-of-Attribution receipts: what a node signs for each answer (EIP-712 typed data bound to
//! a chain and an anchor contract), how receipts are batched under a Merkle root that the anchor
//! contract stores (OpenZeppelin's StandardMerkleTree conventions, so Solidity and the npm library
//! agree with us), and the verifier a wallet runs client-side: signature → batch → storage proof
//! → trusted header, each step its own typed failure.
//!
//! The verifier builds for wasm32 without the `sign` feature; pkg/ wraps it for wallets.

mod merkle;
mod receipt;
mod verify;

pub use merkle::{
    MerkleError, MerkleTree, hash_pair, leaf_hash_encoded, process_proof, receipt_leaf,
};
pub use receipt::{Attribution, Domain, METHOD_GRADIENT, METHOD_SPAN, PPM, Receipt, SignedReceipt};
pub use verify::{
    AccountProof, AnchorProof, MAX_ATTRIBUTIONS, MAX_BATCH_PROOF, MAX_DATANET_ROOTS,
    MAX_HEADER_BYTES, MAX_TRIE_NODE_BYTES, MAX_TRIE_PROOF_NODES, Outcome, ROOTS_SLOT, StorageProof,
    Trust, TrustedHeader, VerifyError, VerifyRequest, op_output_root, root_slot, verify,
};

/// The alloy types receipts are made of, for callers that do not depend on alloy themselves.
pub use alloy::primitives::{Address, B256, Bytes, U256, keccak256};
