//! Attribution quality against ground truth. The corpus is real text no one here wrote: the King
//! James Version (public domain; Debian's `bible-kjv`, which `cargo xtask setup` installs), one
//! contribution per chapter, dealt round-robin to 50 contributors. 200 canaries — unique passages
//! of 30 words drawn at random from the corpus's own vocabulary — are planted, one each, in known
//! contributors' chapters. Each trial's output quotes one canary between paragraphs of unrelated
//! text (the GPL-3 Debian ships), and is traced with the span method through the tokenizer of the
//! fixture model. Required: the planted contributor is the top one in ≥ 95% of trials, and ≤ 1% of
//! all attributed weight goes to anyone else.

use std::path::Path;

use tributary_attribution::{Index, Shard, Source, SpanParams, split_spans, trace};
use tributary_model::Tokenizer;
use tributary_receipt::{Address, B256};

use crate::common::{Rng, bible, vocabulary};

const CONTRIBUTORS: usize = 50;
const TRIALS: usize = 200;

/// Chapters: the text between the "Book N" heading lines.
fn chapters(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current = String::new();
    for line in text.lines() {
        let heading = !line.starts_with(' ')
            && line
                .split_whitespace()
                .last()
                .is_some_and(|w| w.parse::<u32>().is_ok())
            && line.len() < 40;
        if heading {
            if !current.trim().is_empty() {
                out.push(std::mem::take(&mut current));
            }
        } else {
            current.push_str(line.trim_start_matches(|c: char| c == ' ' || c.is_ascii_digit()));
            current.push('\n');
        }
    }
    if !current.trim().is_empty() {
        out.push(current);
    }
    out
}

#[test]
fn planted_canaries_are_attributed_to_their_contributors() {
    let tokenizer = Tokenizer::from_file(
        &Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../tributary-model/tests/fixtures/llama-gqa/tokenizer.json"),
    )
    .unwrap();
    let mut docs = chapters(&bible("gen1:1-rev22:21"));
    assert!(docs.len() > 1000, "{} chapters", docs.len());
    let vocabulary = vocabulary(docs.iter().map(String::as_str));
    let mut rng = Rng(0x5EED_CA4A_12E5);
    // Canary t goes into a chapter of contributor (chapter % 50).
    let mut planted = Vec::with_capacity(TRIALS);
    for _ in 0..TRIALS {
        let words: Vec<&str> = (0..30)
            .map(|_| vocabulary[(rng.next() % vocabulary.len() as u64) as usize].as_str())
            .collect();
        let canary = format!("{}.", words.join(" "));
        let chapter = (rng.next() % docs.len() as u64) as usize;
        docs[chapter].push_str(&canary);
        docs[chapter].push('\n');
        planted.push((canary, chapter % CONTRIBUTORS));
    }
    let sources: Vec<Source> = (0..docs.len())
        .map(|d| Source {
            datanet: "kjv".into(),
            contribution: B256::from(tributary_receipt::U256::from(d)),
            contributor: Address::with_last_byte((d % CONTRIBUTORS) as u8 + 1),
        })
        .collect();
    let tokenized: Vec<Vec<u32>> = docs.iter().map(|d| tokenizer.encode(d).unwrap()).collect();
    let half = tokenized.len() / 2;
    let index = Index::new(vec![
        Shard::build(&tokenized[..half]).unwrap(),
        Shard::build(&tokenized[half..]).unwrap(),
    ]);

    let gpl = std::fs::read_to_string("/usr/share/common-licenses/GPL-3").unwrap();
    let unrelated: Vec<&str> = gpl
        .split("\n\n")
        .map(str::trim)
        .filter(|p| p.len() > 200)
        .collect();
    let params = SpanParams::for_vocabulary(tokenizer.vocab_size() as u32, |t| {
        tokenizer.decode(&[t]).ok()
    });
    let (mut hits, mut false_ppm, mut total_ppm) = (0, 0u64, 0u64);
    for (t, (canary, owner)) in planted.iter().enumerate() {
        let output = format!(
            "{}\n{}\n{}",
            unrelated[t % unrelated.len()],
            canary,
            unrelated[(t * 7 + 3) % unrelated.len()]
        );
        let ids = tokenizer.encode(&output).unwrap();
        let spans = trace(&index, &ids, &params);
        let split = split_spans(&spans, &sources, 0.95);
        let owner = Address::with_last_byte(*owner as u8 + 1);
        if split.by_contributor.first().map(|(a, _)| *a) == Some(owner) {
            hits += 1;
        }
        for (who, ppm) in &split.by_contributor {
            total_ppm += u64::from(*ppm);
            if *who != owner {
                false_ppm += u64::from(*ppm);
            }
        }
    }
    let recall = hits as f64 / TRIALS as f64;
    let false_share = false_ppm as f64 / total_ppm.max(1) as f64;
    println!(
        "canaries: recall {recall:.3}, false attribution {false_share:.4} over {TRIALS} trials"
    );
    assert!(recall >= 0.95, "recall {recall}");
    assert!(false_share <= 0.01, "false attribution {false_share}");
}
