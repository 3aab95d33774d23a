//! Shared by the node's integration tests: a datanet of real text.

use std::path::{Path, PathBuf};

use alloy::primitives::keccak256;
use alloy::signers::local::PrivateKeySigner;
use tributary_datanet::{SignedReview, Store, Submission};

pub fn key(name: &str) -> PrivateKeySigner {
    PrivateKeySigner::from_bytes(&keccak256(name)).unwrap()
}

/// A datanet `gpl` of GPL-3 paragraphs (the first `count` longer than 300 bytes, as Debian ships
/// the licence) dealt round-robin to `contributors` people, all accepted and snapshotted, in `dir`
/// (made afresh).
#[allow(dead_code)] // each test binary uses its own subset of the fields
pub struct Gpl {
    pub dir: PathBuf,
    pub db: PathBuf,
    pub paragraphs: Vec<String>,
    pub people: Vec<PrivateKeySigner>,
    pub subs: Vec<Submission>,
    pub validator: PrivateKeySigner,
}

pub fn gpl_datanet(dir: &Path, count: usize, contributors: usize) -> Gpl {
    let _ = std::fs::remove_dir_all(dir);
    std::fs::create_dir_all(dir).unwrap();
    let db = dir.join("d.sqlite");
    let text = std::fs::read_to_string("/usr/share/common-licenses/GPL-3").unwrap();
    let paragraphs: Vec<String> = text
        .split("\n\n")
        .map(str::trim)
        .filter(|p| p.len() > 300)
        .take(count)
        .map(str::to_owned)
        .collect();
    let people: Vec<PrivateKeySigner> = (0..contributors).map(|i| key(&format!("p{i}"))).collect();
    let validator = key("validator");
    let mut store = Store::open(&db).unwrap();
    store.create("gpl", validator.address(), "").unwrap();
    let subs: Vec<Submission> = paragraphs
        .iter()
        .enumerate()
        .map(|(i, p)| {
            Submission::sign("gpl", p.clone(), "GPL-3.0", &people[i % contributors]).unwrap()
        })
        .collect();
    store.add("gpl", &subs).unwrap();
    for s in &subs {
        let r = SignedReview::sign("gpl", s.content_hash(), true, "", &validator).unwrap();
        store.review("gpl", &r).unwrap();
    }
    store.snapshot("gpl").unwrap();
    Gpl {
        dir: dir.to_owned(),
        db,
        paragraphs,
        people,
        subs,
        validator,
    }
}

/// Asserts a CLI run succeeded, showing its stderr when it did not.
pub fn assert_succeeded(out: &std::process::Output) {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
