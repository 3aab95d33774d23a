//! `tributary datanet …` end to end on a temporary SQLite file.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use alloy::primitives::keccak256;
use alloy::signers::local::PrivateKeySigner;
use serde_json::Value;
use tributary_datanet::{Store, Submission};

fn key(name: &str) -> PrivateKeySigner {
    PrivateKeySigner::from_bytes(&keccak256(name)).unwrap()
}

fn hex_key(k: &PrivateKeySigner) -> String {
    format!("0x{}", alloy::hex::encode(k.to_bytes()))
}

fn dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!(
        "tributary-datanet-cli-{name}-{}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn tributary(db: &Path, args: &[&str], env: &[(&str, String)]) -> Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_tributary"));
    c.arg("datanet").arg("--db").arg(db).args(args);
    for (k, v) in env {
        c.env(k, v);
    }
    c.output().unwrap()
}

fn json(out: &Output) -> Value {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// `datanet create NAME` with `validator`'s address.
fn create(db: &Path, name: &str, validator: &PrivateKeySigner) {
    json(&tributary(
        db,
        &[
            "create",
            name,
            "--validator",
            &validator.address().to_string(),
            "--json",
        ],
        &[],
    ));
}

fn jsonl(path: &Path, subs: &[Submission]) {
    let mut f = std::fs::File::create(path).unwrap();
    for s in subs {
        writeln!(f, "{}", serde_json::to_string(s).unwrap()).unwrap();
    }
}

fn paragraph(seed: usize) -> String {
    (0..40)
        .map(|i| format!("t{} ", (seed * 31 + i * 977) % 10_007))
        .collect()
}

#[test]
fn create_add_import_review_snapshot_show() {
    let d = dir("flow");
    let db = d.join("d.sqlite");
    let (validator, alice, bob) = (key("v"), key("alice"), key("bob"));
    let out = tributary(
        &db,
        &[
            "create",
            "poems",
            "--validator",
            &validator.address().to_string(),
            "--json",
        ],
        &[],
    );
    assert_eq!(json(&out)["created"], "poems");

    std::fs::write(d.join("a.txt"), paragraph(1)).unwrap();
    std::fs::write(d.join("b.txt"), paragraph(2)).unwrap();
    let out = tributary(
        &db,
        &[
            "add",
            "poems",
            d.join("a.txt").to_str().unwrap(),
            d.join("b.txt").to_str().unwrap(),
            "--license",
            "CC0-1.0",
            "--json",
        ],
        &[("TRIBUTARY_CONTRIBUTOR_KEY", hex_key(&alice))],
    );
    let added = json(&out);
    assert_eq!(added["added"].as_array().unwrap().len(), 2);

    let mut forged = Submission::sign("poems", paragraph(4), "CC0-1.0", &bob).unwrap();
    forged.contributor = alice.address();
    jsonl(
        &d.join("import.jsonl"),
        &[
            Submission::sign("poems", paragraph(3), "CC-BY-4.0", &bob).unwrap(),
            forged,
        ],
    );
    let out = tributary(
        &db,
        &[
            "import",
            "poems",
            d.join("import.jsonl").to_str().unwrap(),
            "--json",
        ],
        &[],
    );
    let imported = json(&out);
    assert_eq!(imported["added"].as_array().unwrap().len(), 1);
    assert_eq!(imported["refused"][0][2]["kind"], "wrongSigner");

    let hashes: Vec<String> = added["added"]
        .as_array()
        .unwrap()
        .iter()
        .chain(imported["added"].as_array().unwrap())
        .map(|h| h.as_str().unwrap().to_owned())
        .collect();
    let vkey = [("TRIBUTARY_VALIDATOR_KEY", hex_key(&validator))];
    json(&tributary(
        &db,
        &["review", "poems", &hashes[0], "--accept", "--json"],
        &vkey,
    ));
    json(&tributary(
        &db,
        &["review", "poems", &hashes[2], "--accept", "--json"],
        &vkey,
    ));
    json(&tributary(
        &db,
        &[
            "review",
            "poems",
            &hashes[1],
            "--reject",
            "off topic",
            "--json",
        ],
        &vkey,
    ));
    // Someone else's key is refused, naming both addresses.
    let out = tributary(
        &db,
        &["review", "poems", &hashes[1], "--accept"],
        &[("TRIBUTARY_VALIDATOR_KEY", hex_key(&bob))],
    );
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("not the validator"));

    let snap = json(&tributary(&db, &["snapshot", "poems", "--json"], &[]));
    assert_eq!(snap["version"], 1);
    assert_eq!(snap["contributions"], 2);
    let show = json(&tributary(
        &db,
        &["show", "poems", "--contributions", "--json"],
        &[],
    ));
    assert_eq!(show["summary"]["accepted"], 2);
    assert_eq!(show["summary"]["rejected"], 1);
    assert_eq!(show["summary"]["snapshots"][0]["root"], snap["root"]);
    let rejected = show["contributions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["status"] == "rejected")
        .unwrap();
    assert_eq!(rejected["reason"], "off topic");

    // Byte-identical output for the same question.
    let again = tributary(&db, &["show", "poems", "--contributions", "--json"], &[]);
    assert_eq!(
        again.stdout,
        tributary(&db, &["show", "poems", "--contributions", "--json"], &[]).stdout
    );

    let out = tributary(&db, &["show", "nope"], &[]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("no datanet named `nope`"));
}

#[test]
fn a_malformed_line_imports_nothing() {
    let d = dir("malformed");
    let db = d.join("d.sqlite");
    let v = key("v");
    create(&db, "x", &v);
    let good = Submission::sign("x", paragraph(1), "CC0-1.0", &key("a")).unwrap();
    let path = d.join("bad.jsonl");
    std::fs::write(
        &path,
        format!(
            "{}\n{{\"content\": 1}}\n",
            serde_json::to_string(&good).unwrap()
        ),
    )
    .unwrap();
    let out = tributary(&db, &["import", "x", path.to_str().unwrap()], &[]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("bad.jsonl:2"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        Store::open(&db)
            .unwrap()
            .contributions("x")
            .unwrap()
            .is_empty()
    );
}

/// An import killed partway leaves the datanet as it was: all of it or none of it.
#[test]
fn a_killed_import_leaves_the_datanet_as_it_was() {
    let d = dir("killed");
    let db = d.join("d.sqlite");
    let v = key("v");
    create(&db, "big", &v);
    let who = key("contributor");
    let n = 6000;
    let subs: Vec<Submission> = (0..n)
        .map(|i| {
            Submission::sign(
                "big",
                format!("record {i}: {}", paragraph(i)),
                "CC0-1.0",
                &who,
            )
            .unwrap()
        })
        .collect();
    let path = d.join("big.jsonl");
    jsonl(&path, &subs);
    // Kill it once uncommitted pages have spilled into the write-ahead log, i.e. inside the
    // import's transaction, with rows written but not committed.
    let wal = db.with_extension("sqlite-wal");
    let mut child = Command::new(env!("CARGO_BIN_EXE_tributary"))
        .arg("datanet")
        .arg("--db")
        .arg(&db)
        .args(["import", "big", path.to_str().unwrap()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let start = std::time::Instant::now();
    let mut killed_midway = false;
    while start.elapsed() < Duration::from_secs(60) {
        if child.try_wait().unwrap().is_some() {
            break; // finished first
        }
        if std::fs::metadata(&wal).map(|m| m.len()).unwrap_or(0) > 256 << 10 {
            child.kill().unwrap();
            killed_midway = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    let _ = child.kill();
    let _ = child.wait();
    let count = Store::open(&db)
        .unwrap()
        .contributions("big")
        .unwrap()
        .len();
    assert!(count == 0 || count == n, "a partial import: {count} of {n}");
    assert!(
        killed_midway,
        "the import finished before its log grew: make the file larger"
    );
    assert_eq!(count, 0, "killed before commit, yet rows are visible");
}
