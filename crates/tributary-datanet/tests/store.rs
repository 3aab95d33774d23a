//! The datanet store on a real SQLite file: signatures, curation by the validator, duplicates,
//! snapshots and their proofs.

use alloy::primitives::{Address, keccak256};
use alloy::signers::local::PrivateKeySigner;
use tributary_datanet::*;
use tributary_receipt::process_proof;

fn key(name: &str) -> PrivateKeySigner {
    PrivateKeySigner::from_bytes(&keccak256(name)).unwrap()
}

fn temp_db(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("tributary-datanet-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir.join("datanets.sqlite")
}

/// Paragraphs long enough for MinHash, distinct from each other.
fn text(seed: usize) -> String {
    (0..60)
        .map(|i| format!("w{} ", (seed * 7919 + i * 104_729) % 100_003))
        .collect()
}

fn submit(datanet: &str, content: String, who: &PrivateKeySigner) -> Submission {
    Submission::sign(datanet, content, "CC-BY-4.0", who).unwrap()
}

#[test]
fn contributions_are_checked_curated_and_snapshotted() {
    let path = temp_db("flow");
    let mut store = Store::open(&path).unwrap();
    let validator = key("validator");
    store
        .create("law", validator.address(), "legal texts")
        .unwrap();
    assert!(matches!(
        store.create("law", validator.address(), ""),
        Err(DatanetError::Exists(_))
    ));
    assert!(matches!(
        store.create("bad name!", validator.address(), ""),
        Err(DatanetError::BadName(..))
    ));

    let (alice, bob) = (key("alice"), key("bob"));
    let mut unsigned = submit("law", text(3), &alice);
    unsigned.signature = None;
    let mut stolen = submit("law", text(4), &bob);
    stolen.contributor = alice.address(); // bob's signature, alice's name
    let other_datanet = submit("medicine", text(5), &alice); // signed for another datanet
    let mut near = text(1);
    near.replace_range(0..10, "edited ");
    let batch = vec![
        submit("law", text(1), &alice),
        submit("law", text(2), &bob),
        unsigned,
        stolen,
        other_datanet,
        submit("law", text(1), &bob), // the same content again
        submit("law", near, &bob),
        submit("law", "   ".into(), &bob),
    ];
    let report = store.add("law", &batch).unwrap();
    assert_eq!(report.added.len(), 3, "{report:?}");
    let reasons: Vec<_> = report
        .refused
        .iter()
        .map(|(i, _, r)| (*i, r.clone()))
        .collect();
    assert!(matches!(reasons[0], (2, Refusal::Unsigned)));
    assert!(
        matches!(&reasons[1], (3, Refusal::WrongSigner { signer, .. }) if *signer == bob.address())
    );
    assert!(matches!(reasons[2], (4, Refusal::WrongSigner { .. })));
    assert!(matches!(reasons[3], (5, Refusal::Duplicate)));
    assert!(matches!(reasons[4], (7, Refusal::Empty)));
    assert_eq!(
        report.near_duplicates,
        vec![(batch[6].content_hash(), batch[0].content_hash())]
    );

    // Only the validator reviews; a rejection says why.
    let h = |i: usize| batch[i].content_hash();
    let review = |i, ok, reason: &str, who: &PrivateKeySigner| {
        SignedReview::sign("law", h(i), ok, reason, who).unwrap()
    };
    assert!(matches!(
        store.review("law", &review(0, true, "", &alice)),
        Err(DatanetError::NotValidator { .. })
    ));
    assert!(matches!(
        store.review("law", &review(1, false, "", &validator)),
        Err(DatanetError::BadReview { .. })
    ));
    // A signature over another decision does not carry over.
    let mut flipped = review(6, false, "near-duplicate of an accepted text", &validator);
    flipped.accepted = true;
    assert!(matches!(
        store.review("law", &flipped),
        Err(DatanetError::NotValidator { .. })
    ));
    store
        .review("law", &review(0, true, "", &validator))
        .unwrap();
    store
        .review("law", &review(1, true, "", &validator))
        .unwrap();
    store
        .review(
            "law",
            &review(6, false, "near-duplicate of an accepted text", &validator),
        )
        .unwrap();
    let summary = store.summary("law").unwrap();
    assert_eq!(
        (summary.pending, summary.accepted, summary.rejected),
        (0, 2, 1)
    );

    // The snapshot holds the accepted two; each has a proof to its root.
    let snap = store.snapshot("law").unwrap();
    assert_eq!((snap.version, snap.contributions), (1, 2));
    for i in [0, 1] {
        let (contributor, proof) = store.proof("law", 1, h(i)).unwrap();
        assert_eq!(contributor, batch[i].contributor);
        let leaf = contribution_leaf(h(i), contributor);
        assert_eq!(process_proof(leaf, &proof), snap.root);
    }
    assert!(matches!(
        store.proof("law", 1, h(6)),
        Err(DatanetError::NotInSnapshot { .. })
    ));
    assert!(matches!(
        store.proof("law", 9, h(0)),
        Err(DatanetError::NoSnapshot { .. })
    ));
    // Tampered content has another hash: its leaf no longer leads to the root.
    let (contributor, proof) = store.proof("law", 1, h(0)).unwrap();
    let tampered = keccak256(format!("{} ", batch[0].content));
    assert_ne!(
        process_proof(contribution_leaf(tampered, contributor), &proof),
        snap.root
    );

    // Same accepted set → same root; and the file reopens with everything in it.
    drop(store);
    let mut store = Store::open(&path).unwrap();
    let again = store.snapshot("law").unwrap();
    assert_eq!((again.version, again.root), (2, snap.root));
    assert!(matches!(
        store.add("nope", &batch),
        Err(DatanetError::NoDatanet(_))
    ));
}

#[test]
fn snapshot_roots_do_not_depend_on_insertion_order() {
    let validator = key("validator");
    let people: Vec<PrivateKeySigner> = (0..5).map(|i| key(&format!("c{i}"))).collect();
    let subs: Vec<Submission> = (0..12)
        .map(|i| submit("d", text(100 + i), &people[i % 5]))
        .collect();
    let mut roots = Vec::new();
    for order in [false, true] {
        let mut store = Store::open(&temp_db(&format!("order-{order}"))).unwrap();
        store.create("d", validator.address(), "").unwrap();
        let mut subs = subs.clone();
        if order {
            subs.reverse();
        }
        store.add("d", &subs).unwrap();
        for s in &subs {
            let r = SignedReview::sign("d", s.content_hash(), true, "", &validator).unwrap();
            store.review("d", &r).unwrap();
        }
        roots.push(store.snapshot("d").unwrap().root);
    }
    assert_eq!(roots[0], roots[1]);
    assert_ne!(roots[0], Address::ZERO.into_word());
}
