//! The wallet's API (pkg/): `verifyReceipt`, `hashReceipt` and `batchRoot`, taking and returning
//! plain JS objects in the JSON shapes of tributary-receipt (hex strings for hashes, addresses and
//! bytes) through serde-wasm-bindgen. Malformed input throws an `Error` whose message names the
//! field; a receipt that does not verify is not an exception but an outcome naming the step.

use serde::{Deserialize, Serialize};
use tributary_receipt::{
    AnchorProof, B256, Domain, MerkleTree, Outcome, Receipt, SignedReceipt, TrustedHeader,
    receipt_leaf,
};
use wasm_bindgen::prelude::*;

fn input<T: for<'de> Deserialize<'de>>(what: &str, value: JsValue) -> Result<T, JsError> {
    serde_wasm_bindgen::from_value(value).map_err(|e| JsError::new(&format!("{what}: {e}")))
}

fn output(value: &impl Serialize) -> Result<JsValue, JsError> {
    // Plain objects rather than Maps, and 64-bit integers as numbers where they fit.
    let serializer = serde_wasm_bindgen::Serializer::json_compatible();
    value
        .serialize(&serializer)
        .map_err(|e| JsError::new(&e.to_string()))
}

/// Verifies a signed receipt; with `proofs` (an anchor proof) and `trustedHeader` ({hash}) also
/// that its batch is anchored under that block.
#[wasm_bindgen(js_name = verifyReceipt)]
pub fn verify_receipt(
    receipt: JsValue,
    proofs: JsValue,
    trusted_header: JsValue,
) -> Result<JsValue, JsError> {
    let signed: SignedReceipt = input("receipt", receipt)?;
    let anchor = if proofs.is_undefined() || proofs.is_null() {
        None
    } else {
        let proof: AnchorProof = input("proofs", proofs)?;
        let trusted: TrustedHeader = input("trustedHeader", trusted_header)?;
        Some((proof, trusted))
    };
    let outcome = Outcome::of(&signed, anchor.as_ref().map(|(p, t)| (p, t)));
    output(&outcome)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Unsigned {
    receipt: Receipt,
    domain: Domain,
    /// Allowed, so a signed receipt can be hashed as it is.
    #[serde(default)]
    #[allow(dead_code)]
    signature: Option<tributary_receipt::Bytes>,
}

/// The EIP-712 digest of `{receipt, domain}` (a signed receipt works too): what the node signs
/// and what the batch commits to.
#[wasm_bindgen(js_name = hashReceipt)]
pub fn hash_receipt(receipt: JsValue) -> Result<String, JsError> {
    let r: Unsigned = input("receipt", receipt)?;
    Ok(r.receipt.digest(&r.domain).to_string())
}

#[derive(Debug, Serialize)]
struct Batch {
    root: B256,
    /// One proof per digest, in the order given.
    proofs: Vec<Vec<B256>>,
}

/// The batch root over receipt digests and each one's proof (OpenZeppelin StandardMerkleTree
/// over `["bytes32"]`).
#[wasm_bindgen(js_name = batchRoot)]
pub fn batch_root(digests: JsValue) -> Result<JsValue, JsError> {
    let digests: Vec<B256> = input("digests", digests)?;
    let leaves: Vec<B256> = digests.iter().map(|d| receipt_leaf(*d)).collect();
    let tree = MerkleTree::new(leaves.clone()).map_err(|e| JsError::new(&e.to_string()))?;
    let proofs = leaves
        .iter()
        .map(|l| tree.proof(*l))
        .collect::<Result<_, _>>()
        .map_err(|e| JsError::new(&e.to_string()))?;
    output(&Batch {
        root: tree.root(),
        proofs,
    })
}
