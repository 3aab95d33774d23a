//! `tributary index build` and `tributary attribute` on a datanet of real text (the GPL-3 that
//! Debian ships, split into paragraphs among contributors), tokenized with the fixture model's
//! tokenizer.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

use crate::common;
use crate::common::{Gpl, key};
use tributary_datanet::{SignedReview, Store, Submission};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tributary-model/tests/fixtures")
}

fn run(db: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_tributary"))
        .args(args)
        .env("TRIBUTARY_DB", db)
        .output()
        .unwrap()
}

fn ok_json(out: &Output) -> Value {
    common::assert_succeeded(out);
    serde_json::from_slice(&out.stdout).unwrap()
}

/// [`common::gpl_datanet`] with eight contributors, in a fresh folder named after `test`.
fn gpl_datanet(test: &str, count: usize) -> Gpl {
    let dir = std::env::temp_dir().join(format!("tributary-{test}-{}", std::process::id()));
    common::gpl_datanet(&dir, count, 8)
}

#[test]
fn a_quoted_paragraph_is_attributed_to_its_contributor() {
    let Gpl {
        dir,
        db,
        paragraphs,
        people,
        subs,
        validator,
    } = gpl_datanet("attribute", usize::MAX);
    assert!(paragraphs.len() > 40);
    let model = fixtures().join("llama-gqa");
    let quoted = 17;
    let output = format!(
        "Here is what I found about it. {} That is the relevant part, in my own words.",
        paragraphs[quoted]
    );
    let attribute = |args: &[&str]| {
        let mut a = vec![
            "attribute",
            "--model",
            model.to_str().unwrap(),
            "--datanet",
            "gpl",
            "--text",
            &output,
        ];
        a.extend_from_slice(args);
        run(&db, &a)
    };
    let build_index = || {
        ok_json(&run(
            &db,
            &[
                "index",
                "build",
                "--datanet",
                "gpl",
                "--model",
                model.to_str().unwrap(),
            ],
        ))
    };
    // Before an index exists: a clear error.
    let out = attribute(&["--json"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("tributary index build"));

    let built = build_index();
    assert_eq!(built["documents"], paragraphs.len());

    let first = attribute(&["--json"]);
    let v = ok_json(&first);
    let quoted_by = format!("{}", people[quoted % 8].address()).to_lowercase();
    let top = v["byContributor"][0][0].as_str().unwrap().to_lowercase();
    assert_eq!(top, quoted_by, "{v:#}");
    assert_eq!(
        v["attributions"][0]["contributionId"],
        serde_json::to_value(subs[quoted].content_hash()).unwrap()
    );
    let total: u64 = v["attributions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["weightPpm"].as_u64().unwrap())
        .sum();
    assert_eq!(total, 1_000_000);
    // Deterministic: byte-identical JSON.
    assert_eq!(attribute(&["--json"]).stdout, first.stdout);

    // A newer snapshot makes the index stale: a clear error until it is rebuilt.
    let mut store = Store::open(&db).unwrap();
    store.snapshot("gpl").unwrap();
    drop(store);
    let out = attribute(&["--json"]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("no index"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = run(
        &db,
        &[
            "attribute",
            "--model",
            model.to_str().unwrap(),
            "--datanet",
            "nope",
            "--text",
            "x",
        ],
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("no datanet named `nope`"));

    // The datanet grows: a new contribution, a new snapshot. The new index reuses the old
    // shard and indexes only the new contribution; both old and new text are attributed.
    let newcomer = key("newcomer");
    let fresh = "Behold, a passage written for this test alone, about rivers of tokens flowing \
                 into ledgers of light, which no licence ever contained before today.";
    let mut store = Store::open(&db).unwrap();
    let sub = Submission::sign("gpl", fresh.to_owned(), "CC0-1.0", &newcomer).unwrap();
    store.add("gpl", std::slice::from_ref(&sub)).unwrap();
    let r = SignedReview::sign("gpl", sub.content_hash(), true, "", &validator).unwrap();
    store.review("gpl", &r).unwrap();
    store.snapshot("gpl").unwrap();
    drop(store);
    let built = build_index();
    assert_eq!(built["reusedShards"], 1, "{built}");
    assert_eq!(built["shards"], 2, "{built}");
    assert_eq!(built["documents"], paragraphs.len() + 1);
    let v = ok_json(&attribute(&["--json"]));
    assert_eq!(
        v["byContributor"][0][0].as_str().unwrap().to_lowercase(),
        quoted_by
    );
    let out = run(
        &db,
        &[
            "attribute",
            "--model",
            model.to_str().unwrap(),
            "--datanet",
            "gpl",
            "--json",
            "--text",
            &format!("As they say: {fresh} Indeed."),
        ],
    );
    let v = ok_json(&out);
    assert_eq!(
        v["byContributor"][0][0].as_str().unwrap().to_lowercase(),
        newcomer.address().to_string().to_lowercase(),
        "{v:#}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// The gradient method end to end: fine-tune on the datanet, store its gradients, attribute a
/// quoted paragraph to its contributor, deterministically; stale or missing pieces are errors.
#[test]
fn gradient_attribution_through_the_cli() {
    let Gpl {
        dir,
        db,
        paragraphs,
        people,
        subs,
        ..
    } = gpl_datanet("gradient", 12);
    let model = fixtures().join("llama-gqa");
    let model = model.to_str().unwrap();
    let adapter = dir.join("tuned");
    let adapter = adapter.to_str().unwrap();
    let tuned = ok_json(&run(
        &db,
        &[
            "finetune",
            "--model",
            model,
            "--datanet",
            "gpl",
            "--out",
            adapter,
            "--epochs",
            "2",
        ],
    ));
    assert!(tuned["examples"].as_u64().unwrap() >= 12, "{tuned}");
    assert!(
        Path::new(adapter)
            .join("adapter_model.safetensors")
            .exists()
    );

    let build = |extra: &[&str]| {
        let mut a = vec![
            "index",
            "build",
            "--datanet",
            "gpl",
            "--model",
            model,
            "--method",
            "gradient",
        ];
        a.extend_from_slice(extra);
        run(&db, &a)
    };
    let out = build(&[]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--adapter"));
    let built = ok_json(&build(&["--adapter", adapter, "--dims", "256"]));
    assert_eq!(built["contributions"], 12);
    assert_eq!(built["dims"], 256);

    let quoted = 5;
    let text = paragraphs[quoted][..200].to_owned();
    let attribute = || {
        run(
            &db,
            &[
                "attribute",
                "--model",
                model,
                "--datanet",
                "gpl",
                "--method",
                "gradient",
                "--json",
                "--text",
                &text,
            ],
        )
    };
    let first = attribute();
    let v = ok_json(&first);
    assert_eq!(
        v["byContributor"][0][0].as_str().unwrap().to_lowercase(),
        people[quoted % 8].address().to_string().to_lowercase(),
        "{v:#}"
    );
    assert_eq!(
        v["top"][0]["contribution"],
        serde_json::to_value(subs[quoted].content_hash()).unwrap()
    );
    assert!(
        v["attributions"]
            .as_array()
            .unwrap()
            .iter()
            .all(|a| a["method"] == 1)
    );
    assert_eq!(v["store"]["rowRoot"], built["rowRoot"]);
    assert_eq!(attribute().stdout, first.stdout, "same query, same bytes");

    // A newer snapshot makes the store stale.
    let mut store = Store::open(&db).unwrap();
    store.snapshot("gpl").unwrap();
    drop(store);
    let out = attribute();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no gradient store"));
    let _ = std::fs::remove_dir_all(&dir);
}
