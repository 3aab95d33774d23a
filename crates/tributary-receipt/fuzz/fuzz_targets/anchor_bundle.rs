//! The wallet's decoders on untrusted bytes: a receipt bundle as JSON (signed receipt, anchor
//! proof, trusted header), then the verifier over whatever decoded — RLP header, trie nodes,
//! signature bytes. Nothing may panic or run away (the verifier bounds every list). The seed is
//! the wallet package's anvil fixture, so mutations start from a bundle that verifies.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tributary_receipt::{AnchorProof, SignedReceipt, TrustedHeader, verify};

#[derive(serde::Deserialize)]
struct Bundle {
    receipt: SignedReceipt,
    proofs: Option<AnchorProof>,
    #[serde(rename = "trustedHeader")]
    trusted_header: Option<TrustedHeader>,
}

fuzz_target!(|data: &[u8]| {
    let Ok(bundle) = serde_json::from_slice::<Bundle>(data) else {
        return;
    };
    let anchor = bundle.proofs.as_ref().zip(bundle.trusted_header.as_ref());
    let _ = verify(&bundle.receipt, anchor);
});
