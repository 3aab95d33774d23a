//! `tributary receipt sign|verify|batch` on JSON files.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::{Value, json};
use tributary_receipt::{B256, process_proof, receipt_leaf};

/// keccak256("cow"), EIP-712's example key; its address is 0xCD2a…D826.
const COW_KEY: &str = "c85ef7d79691fe79573b1a7064c19c1a9819ebdbd1faaab1a8ec92344438aaf4";
const COW: &str = "0xCD2a3d9F938E13CD947Ec05AbC7FE734Df8DD826";

fn tributary(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_tributary"))
        .args(args)
        .env("TRIBUTARY_NODE_KEY", COW_KEY)
        .output()
        .unwrap()
}

fn dir() -> PathBuf {
    let d = std::env::temp_dir().join(format!("tributary-receipt-cli-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn unsigned(nonce: u64) -> Value {
    let h = |s: &str| format!("0x{}", s.repeat(64));
    json!({
        "node": COW, "baseModel": h("1"), "adapter": h("2"), "prompt": h("3"), "output": h("4"),
        "datanetRoots": [h("5")],
        "attributions": [{"contributionId": h("6"), "contributor": "0x1111111111111111111111111111111111111111",
                          "weightPpm": 700000, "method": 0}],
        "thresholdPpm": 1000, "timestamp": 1790000000u64, "nonce": nonce,
    })
}

fn write(path: &Path, v: &Value) -> String {
    std::fs::write(path, v.to_string()).unwrap();
    path.to_str().unwrap().to_owned()
}

fn stdout_json(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "{e}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

fn sign(dir: &Path, nonce: u64) -> String {
    let input = write(&dir.join(format!("r{nonce}.json")), &unsigned(nonce));
    let out = dir.join(format!("s{nonce}.json"));
    let o = tributary(&[
        "receipt",
        "sign",
        &input,
        "--chain-id",
        "31337",
        "--anchor",
        "0x5FbDB2315678afecb367f032d93F642f64180aa3",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    out.to_str().unwrap().to_owned()
}

#[test]
fn sign_verify_and_tamper() {
    let dir = dir();
    let signed = sign(&dir, 1);
    let o = tributary(&["receipt", "verify", &signed]);
    assert!(o.status.success());
    assert_eq!(stdout_json(&o)["trust"], "Signed");

    let mut v: Value = serde_json::from_str(&std::fs::read_to_string(&signed).unwrap()).unwrap();
    v["receipt"]["output"] = json!(format!("0x{}", "5".repeat(64)));
    let tampered = write(&dir.join("tampered.json"), &v);
    let o = tributary(&["receipt", "verify", &tampered]);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(stdout_json(&o)["step"], "signature");

    // Signing does not judge the weights; verifying does.
    let mut heavy = unsigned(2);
    heavy["attributions"][0]["weightPpm"] = json!(1_000_001);
    let input = write(&dir.join("heavy.json"), &heavy);
    let out = dir.join("heavy-signed.json");
    let o = tributary(&[
        "receipt",
        "sign",
        &input,
        "--chain-id",
        "1",
        "--anchor",
        "0x5FbDB2315678afecb367f032d93F642f64180aa3",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success());
    let o = tributary(&["receipt", "verify", out.to_str().unwrap()]);
    assert_eq!(stdout_json(&o)["step"], "weights");

    // Malformed input names the file.
    let bad = dir.join("bad.json");
    std::fs::write(&bad, "{\"receipt\": 1}").unwrap();
    let o = tributary(&["receipt", "verify", bad.to_str().unwrap()]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("bad.json"));
}

#[test]
fn batch_writes_a_root_every_proof_leads_to() {
    let dir = dir();
    let files: Vec<String> = (10..15).map(|n| sign(&dir, n)).collect();
    let mut args = vec!["receipt", "batch"];
    args.extend(files.iter().map(String::as_str));
    let o = tributary(&args);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let batch = stdout_json(&o);
    let root: B256 = batch["root"].as_str().unwrap().parse().unwrap();
    let entries = batch["receipts"].as_array().unwrap();
    assert_eq!(entries.len(), 5);
    for e in entries {
        let digest: B256 = e["digest"].as_str().unwrap().parse().unwrap();
        let proof: Vec<B256> = serde_json::from_value(e["proof"].clone()).unwrap();
        assert_eq!(process_proof(receipt_leaf(digest), &proof), root);
    }
}
