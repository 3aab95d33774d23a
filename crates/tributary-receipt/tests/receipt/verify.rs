//! The verifier against state built with alloy-trie's own `HashBuilder` (the anchor contract's
//! storage and an account trie around it) and a header encoded by alloy-consensus: a valid bundle
//! reaches `Anchored`, and changing any single field of the receipt, the signature, the batch
//! proof, the account or storage proof or the header fails at the step that checks it.
//! (The same against a real anvil node is tributary-chain's test.)

use alloy::consensus::Header;
use alloy::primitives::{Address, B256, Bytes, U64, U256, address, keccak256};
use alloy::signers::local::PrivateKeySigner;
use alloy::trie::proof::ProofRetainer;
use alloy::trie::{HashBuilder, Nibbles, TrieAccount};
use proptest::prelude::*;
use tributary_receipt::*;

struct World {
    signed: SignedReceipt,
    proof: AnchorProof,
    trusted: TrustedHeader,
}

fn node_key() -> PrivateKeySigner {
    PrivateKeySigner::from_bytes(&keccak256("tributary test node")).unwrap()
}

const ANCHOR: Address = address!("5FbDB2315678afecb367f032d93F642f64180aa3");

fn receipt(node: Address, k: u64) -> Receipt {
    Receipt {
        node,
        baseModel: keccak256("base"),
        adapter: keccak256(format!("adapter {k}")),
        prompt: keccak256(format!("prompt {k}")),
        output: keccak256(format!("output {k}")),
        datanetRoots: vec![keccak256("datanet a"), keccak256("datanet b")],
        attributions: vec![
            Attribution {
                contributionId: keccak256(format!("c1 {k}")),
                contributor: Address::repeat_byte(0x11),
                weightPpm: 600_000,
                method: METHOD_SPAN,
            },
            Attribution {
                contributionId: keccak256(format!("c2 {k}")),
                contributor: Address::repeat_byte(0x22),
                weightPpm: 250_000,
                method: METHOD_GRADIENT,
            },
        ],
        thresholdPpm: 10_000,
        timestamp: 1_790_000_000 + k,
        nonce: k,
    }
}

/// A trie over `entries` (key hashes → values) and the proof nodes for `target`.
fn trie(mut entries: Vec<(B256, Vec<u8>)>, target: B256) -> (B256, Vec<Bytes>) {
    entries.sort();
    let target = Nibbles::unpack(target);
    let mut builder = HashBuilder::default().with_proof_retainer(ProofRetainer::new(vec![target]));
    for (key, value) in &entries {
        builder.add_leaf(Nibbles::unpack(key), value);
    }
    let root = builder.root();
    let nodes = builder.take_proof_nodes().matching_nodes_sorted(&target);
    (root, nodes.into_iter().map(|(_, node)| node).collect())
}

fn world(batch: u64, index: u64, sequence: u64) -> World {
    let key = node_key();
    let domain = Domain {
        chain_id: 31337,
        anchor: ANCHOR,
    };
    let signed: Vec<SignedReceipt> = (0..batch)
        .map(|k| receipt(key.address(), k).sign(domain, &key).unwrap())
        .collect();
    let leaves: Vec<B256> = signed.iter().map(|s| receipt_leaf(s.digest())).collect();
    let tree = MerkleTree::new(leaves.clone()).unwrap();
    let root = tree.root();
    let batch_proof = tree.proof(leaves[index as usize]).unwrap();

    // Storage: this batch's root, and earlier batches' roots.
    let slot = root_slot(key.address(), sequence);
    let mut storage: Vec<(B256, Vec<u8>)> = (0..sequence)
        .map(|s| {
            let value = U256::from_be_bytes(keccak256(format!("old root {s}")).0);
            (
                keccak256(root_slot(key.address(), s)),
                alloy::rlp::encode(value),
            )
        })
        .collect();
    let root_value = U256::from_be_bytes(root.0);
    storage.push((keccak256(slot), alloy::rlp::encode(root_value)));
    let (storage_root, storage_proof) = trie(storage, keccak256(slot));

    // State: the anchor contract among other accounts.
    let anchor_account = TrieAccount {
        nonce: 1,
        balance: U256::ZERO,
        storage_root,
        code_hash: keccak256("anchor code"),
    };
    let mut accounts: Vec<(B256, Vec<u8>)> = (0..40u8)
        .map(|i| {
            let other = TrieAccount {
                nonce: i.into(),
                balance: U256::from(i) * U256::from(10u64.pow(18)),
                ..Default::default()
            };
            (
                keccak256(Address::repeat_byte(i)),
                alloy::rlp::encode(other),
            )
        })
        .collect();
    accounts.push((keccak256(ANCHOR), alloy::rlp::encode(anchor_account)));
    let (state_root, account_proof) = trie(accounts, keccak256(ANCHOR));

    let header = Header {
        state_root,
        number: 42,
        gas_limit: 30_000_000,
        timestamp: 1_790_000_100,
        ..Default::default()
    };
    let header_rlp = alloy::rlp::encode(&header);
    let trusted = TrustedHeader {
        hash: header.hash_slow(),
    };
    World {
        signed: signed[index as usize].clone(),
        proof: AnchorProof {
            root,
            proof: batch_proof,
            sequence,
            account: AccountProof {
                address: ANCHOR,
                balance: anchor_account.balance,
                code_hash: anchor_account.code_hash,
                nonce: U64::from(anchor_account.nonce),
                storage_hash: storage_root,
                account_proof,
                storage_proof: vec![StorageProof {
                    key: U256::from_be_bytes(slot.0),
                    value: root_value,
                    proof: storage_proof,
                }],
            },
            header: header_rlp.into(),
        },
        trusted,
    }
}

fn check(w: &World) -> Result<Trust, VerifyError> {
    verify(&w.signed, Some((&w.proof, &w.trusted)))
}

#[test]
fn a_valid_bundle_is_anchored_and_a_bare_receipt_signed() {
    for (batch, index, sequence) in [(1, 0, 0), (2, 1, 1), (7, 3, 5), (16, 15, 2)] {
        let w = world(batch, index, sequence);
        assert_eq!(
            check(&w),
            Ok(Trust::Anchored),
            "batch {batch} index {index}"
        );
        assert_eq!(verify(&w.signed, None), Ok(Trust::Signed));
    }
}

#[test]
fn the_same_bundle_round_trips_through_json() {
    let w = world(5, 2, 3);
    let signed: SignedReceipt =
        serde_json::from_str(&serde_json::to_string(&w.signed).unwrap()).unwrap();
    let proof: AnchorProof =
        serde_json::from_str(&serde_json::to_string(&w.proof).unwrap()).unwrap();
    assert_eq!((&signed, &proof), (&w.signed, &w.proof));
    // Unknown fields are refused rather than ignored (a typo would otherwise drop a field).
    let mut v = serde_json::to_value(&w.signed).unwrap();
    v["extra"] = 1.into();
    assert!(serde_json::from_value::<SignedReceipt>(v).is_err());
}

#[test]
fn weights_are_checked_before_anything_is_anchored() {
    let key = node_key();
    let domain = Domain {
        chain_id: 1,
        anchor: ANCHOR,
    };
    let sign = |r: Receipt| r.sign(domain, &key).unwrap();
    let mut over = receipt(key.address(), 0);
    over.attributions[1].weightPpm = 400_001; // 600,000 + 400,001
    assert_eq!(
        verify(&sign(over), None),
        Err(VerifyError::WeightsOverOne(1_000_001))
    );
    let mut under = receipt(key.address(), 0);
    under.attributions[1].weightPpm = 9_999;
    assert!(matches!(
        verify(&sign(under), None),
        Err(VerifyError::UnderThreshold { index: 1, .. })
    ));
    let mut method = receipt(key.address(), 0);
    method.attributions[0].method = 2;
    assert!(matches!(
        verify(&sign(method), None),
        Err(VerifyError::UnknownMethod {
            index: 0,
            method: 2
        })
    ));
    let mut many = receipt(key.address(), 0);
    many.attributions = vec![many.attributions[0].clone(); MAX_ATTRIBUTIONS + 1];
    many.attributions.iter_mut().for_each(|a| a.weightPpm = 0);
    many.thresholdPpm = 0;
    assert_eq!(
        verify(&sign(many), None),
        Err(VerifyError::TooManyAttributions(MAX_ATTRIBUTIONS + 1))
    );
    // The node's key cannot sign for another node.
    let mut other = receipt(key.address(), 0);
    other.node = Address::repeat_byte(9);
    assert!(other.sign(domain, &key).is_err());
}

/// Flips one bit of a 32-byte value.
fn flip(b: &mut B256, bit: usize) {
    b.0[bit / 8 % 32] ^= 1 << (bit % 8);
}

fn flip_address(a: &mut Address, bit: usize) {
    a.0.0[bit / 8 % 20] ^= 1 << (bit % 8);
}

fn flip_bytes(b: &mut Bytes, bit: usize) {
    let mut v = b.to_vec();
    let i = bit / 8 % v.len();
    v[i] ^= 1 << (bit % 8);
    *b = v.into();
}

/// Every single-field change, with the step that must reject it.
const TAMPERS: usize = 27;

fn tamper(w: &mut World, which: usize, bit: usize) -> &'static str {
    let r = &mut w.signed.receipt;
    let p = &mut w.proof;
    match which {
        // Any change to what was signed changes the digest: the signature no longer recovers
        // the node (or recovers garbage).
        0 => flip_address(&mut r.node, bit),
        1 => flip(&mut r.baseModel, bit),
        2 => flip(&mut r.adapter, bit),
        3 => flip(&mut r.prompt, bit),
        4 => flip(&mut r.output, bit),
        5 => flip(&mut r.datanetRoots[bit % 2], bit),
        6 => flip(&mut r.attributions[bit % 2].contributionId, bit),
        7 => flip_address(&mut r.attributions[bit % 2].contributor, bit),
        8 => r.attributions[bit % 2].weightPpm ^= 1 << (bit % 16),
        9 => r.attributions[bit % 2].method ^= 1,
        10 => r.thresholdPpm ^= 1 << (bit % 13),
        11 => r.timestamp ^= 1 << (bit % 64),
        12 => r.nonce ^= 1 << (bit % 64),
        13 => w.signed.domain.chain_id ^= 1 << (bit % 64),
        14 => flip_address(&mut w.signed.domain.anchor, bit),
        15 => flip_bytes(&mut w.signed.signature, bit % 512), // r and s
        16 => r.attributions.pop().map_or((), drop),
        17 => r.datanetRoots.push(B256::repeat_byte(1)),
        18 => {
            flip(&mut p.root, bit);
            return "batch";
        }
        19 => {
            let i = bit % p.proof.len();
            flip(&mut p.proof[i], bit);
            return "batch";
        }
        20 => {
            flip_bytes(&mut p.header, bit);
            return "header";
        }
        21 => {
            flip(&mut w.trusted.hash, bit);
            return "header";
        }
        22 => {
            let a = &mut p.account;
            match bit % 4 {
                0 => a.balance ^= U256::from(1) << (bit % 256),
                1 => flip(&mut a.code_hash, bit),
                2 => a.nonce ^= U64::from(1u64 << (bit % 64)),
                _ => flip(&mut a.storage_hash, bit),
            }
            return "account";
        }
        23 => {
            let nodes = &mut p.account.account_proof;
            let i = bit % nodes.len();
            flip_bytes(&mut nodes[i], bit);
            return "account";
        }
        24 => {
            let s = &mut p.account.storage_proof[0];
            let i = bit % s.proof.len();
            flip_bytes(&mut s.proof[i], bit);
            return "storage";
        }
        25 => {
            // Another slot's proof: the previous batch of the same node.
            p.sequence ^= 1 << (bit % 3);
            return "storage";
        }
        _ => {
            p.account.storage_proof[0].value ^= U256::from(1) << (bit % 256);
            return "storage";
        }
    }
    "signature"
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn any_single_change_fails_at_its_step(which in 0..TAMPERS, bit in 0usize..4096) {
        let mut w = world(4, 1, 6);
        let want = tamper(&mut w, which, bit);
        let got = check(&w);
        let err = got.expect_err("a tampered bundle must not verify");
        // Changing the signed fields may leave the signature valid-looking but for another key,
        // or not a signature at all; both are the signature step.
        prop_assert_eq!(err.step(), want, "tamper {} bit {}: {}", which, bit, err);
    }
}

#[test]
fn a_proof_for_another_contract_is_rejected() {
    let mut w = world(2, 0, 0);
    w.proof.account.address = Address::repeat_byte(3);
    assert!(matches!(check(&w), Err(VerifyError::WrongContract { .. })));
    // A proof of a different slot of the right contract (the node's next batch, unwritten).
    let mut w = world(2, 0, 0);
    w.proof.account.storage_proof[0].key =
        U256::from_be_bytes(root_slot(node_key().address(), 1).0);
    assert!(matches!(check(&w), Err(VerifyError::WrongSlot { .. })));
}

#[test]
fn oversized_proofs_are_refused_before_work() {
    let mut w = world(2, 0, 0);
    w.proof.proof = vec![B256::ZERO; MAX_BATCH_PROOF + 1];
    assert_eq!(
        check(&w),
        Err(VerifyError::BatchProofTooLong(MAX_BATCH_PROOF + 1))
    );
    let mut w = world(2, 0, 0);
    w.proof.account.account_proof = vec![Bytes::from(vec![0u8; 8]); MAX_TRIE_PROOF_NODES + 1];
    assert_eq!(check(&w).unwrap_err().step(), "account");
    let mut w = world(2, 0, 0);
    w.proof.header = vec![0u8; MAX_HEADER_BYTES + 1].into();
    assert!(matches!(check(&w), Err(VerifyError::BadHeader(_))));
}

/// The wallet package's fixture (a receipt with proofs taken from a real anvil by
/// tributary-chain's test) verifies here exactly as the package must verify it in JS.
#[test]
fn the_wallet_fixture_from_anvil_is_anchored() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../pkg/test/fixtures/anchored.json");
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
    let signed: SignedReceipt = serde_json::from_value(v["receipt"].clone()).unwrap();
    let proof: AnchorProof = serde_json::from_value(v["proofs"].clone()).unwrap();
    let trusted: TrustedHeader = serde_json::from_value(v["trustedHeader"].clone()).unwrap();
    assert_eq!(
        verify(&signed, Some((&proof, &trusted))),
        Ok(Trust::Anchored)
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    /// Arbitrary bytes where trie nodes and the header go: typed errors at those steps, never a
    /// panic or a pass.
    #[test]
    fn arbitrary_proof_bytes_fail_at_their_step(
        nodes in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..700), 0..12),
        header in proptest::collection::vec(any::<u8>(), 0..700),
        which in 0..3usize,
    ) {
        let mut w = world(3, 2, 1);
        let nodes: Vec<Bytes> = nodes.into_iter().map(Bytes::from).collect();
        let step = match which {
            0 => {
                w.proof.account.account_proof = nodes;
                "account"
            }
            1 => {
                w.proof.account.storage_proof[0].proof = nodes;
                "storage"
            }
            _ => {
                // Trusted, so the RLP decoder itself is what meets the bytes.
                w.trusted.hash = keccak256(&header);
                w.proof.header = header.into();
                "header"
            }
        };
        let err = check(&w).expect_err("random bytes must not verify");
        prop_assert_eq!(err.step(), step, "{}", err);
    }

    /// The JSON decoder on corrupted bundles: either a typed serde error or a bundle that the
    /// verifier judges without panicking.
    #[test]
    fn corrupted_json_is_an_error_or_judged(at in any::<prop::sample::Index>(), byte in any::<u8>()) {
        let w = world(2, 1, 0);
        let mut text = serde_json::to_vec(&w.proof).unwrap();
        let i = at.index(text.len());
        text[i] = byte;
        if let Ok(proof) = serde_json::from_slice::<AnchorProof>(&text) {
            let _ = verify(&w.signed, Some((&proof, &w.trusted)));
        }
    }
}

#[test]
fn wrong_lengths_in_json_are_decode_errors() {
    let w = world(2, 1, 0);
    let mut v = serde_json::to_value(&w.proof).unwrap();
    v["root"] = "0x1234".into();
    let err = serde_json::from_value::<AnchorProof>(v).unwrap_err();
    assert!(
        err.to_string().contains("length") || err.to_string().contains("invalid"),
        "{err}"
    );
    let mut v = serde_json::to_value(&w.signed).unwrap();
    v["receipt"]["node"] = "0x12".into();
    assert!(serde_json::from_value::<SignedReceipt>(v).is_err());
}
