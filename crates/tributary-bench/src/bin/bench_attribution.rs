//! `cargo xtask bench attribution`'s measurements: suffix-array build throughput on one core,
//! index bytes per token, and span-trace latency for a 450-token output against a large index,
//! built from repeated real text (the King James Version from Debian's bible-kjv, tokenized with
//! the fixture model's tokenizer). Prints one JSON object.

use std::process::Command;
use std::time::Instant;

use anyhow::{Context, Result};
use clap::Parser;
use serde_json::json;
use tributary_attribution::{Index, Shard, SpanParams, trace};
use tributary_model::Tokenizer;

#[derive(Debug, Parser)]
struct Args {
    /// The fixture model folder (its tokenizer.json).
    #[arg(long)]
    model: std::path::PathBuf,
    /// Tokens in the large index (the corpus repeated until it is reached).
    #[arg(long, default_value_t = 100_000_000)]
    tokens: usize,
    #[arg(long, default_value_t = 20)]
    queries: usize,
}

fn main() -> Result<()> {
    let args = Args::parse();
    let tokenizer = Tokenizer::from_file(&args.model.join("tokenizer.json"))?;
    let out = Command::new("bible")
        .arg("gen1:1-rev22:21")
        .output()
        .context("`bible` (Debian bible-kjv): run `cargo xtask setup`")?;
    let text = String::from_utf8(out.stdout)?;
    let chapters: Vec<&str> = text.split("\n\n").filter(|c| c.len() > 200).collect();
    let docs: Vec<Vec<u32>> = chapters
        .iter()
        .map(|c| tokenizer.encode(c))
        .collect::<Result<_, _>>()?;
    let corpus_tokens: usize = docs.iter().map(|d| d.len() + 1).sum();

    // One copy: build throughput and bytes per token.
    let start = Instant::now();
    let one = Shard::build(&docs)?;
    let one_s = start.elapsed().as_secs_f64();
    let width = f64::from(one.meta().token_width);

    // The large index: copies of the corpus as further documents, in one or more shards.
    let copies = args.tokens.div_ceil(corpus_tokens);
    let mut big: Vec<Vec<u32>> = Vec::with_capacity(docs.len() * copies);
    for _ in 0..copies {
        big.extend(docs.iter().cloned());
    }
    let per_shard = (i32::MAX as usize / 2) / corpus_tokens * docs.len();
    let start = Instant::now();
    let shards = big
        .chunks(per_shard.max(1))
        .map(Shard::build)
        .collect::<Result<Vec<_>, _>>()?;
    let big_s = start.elapsed().as_secs_f64();
    let big_tokens: usize = shards.iter().map(Shard::len).sum();
    let big_bytes: usize = shards.iter().map(Shard::bytes).sum();
    drop(big);
    let index = Index::new(shards);

    // 450-token outputs: a corpus passage between unrelated text.
    let gpl = std::fs::read_to_string("/usr/share/common-licenses/GPL-3")?;
    let unrelated = tokenizer.encode(&gpl)?;
    let mut latencies = Vec::new();
    for q in 0..args.queries {
        let doc = &docs[(q * 37) % docs.len()];
        let quote = &doc[..doc.len().min(150)];
        let mut output: Vec<u32> = unrelated[q * 300..q * 300 + 150].to_vec();
        output.extend_from_slice(quote);
        output.extend_from_slice(&unrelated[q * 300 + 150..q * 300 + 450 - quote.len()]);
        assert_eq!(output.len(), 450);
        let start = Instant::now();
        let spans = trace(&index, &output, &SpanParams::default());
        latencies.push(start.elapsed().as_secs_f64() * 1e3);
        assert!(!spans.is_empty());
    }
    latencies.sort_by(f64::total_cmp);
    println!(
        "{}",
        json!({
            "corpus_tokens": corpus_tokens,
            "build_mb_s_one_copy": corpus_tokens as f64 * width / 1e6 / one_s,
            "index_bytes_per_token": one.bytes() as f64 / one.len() as f64,
            "big_tokens": big_tokens,
            "big_shards": index.shards().len(),
            "build_mb_s_big": big_tokens as f64 * width / 1e6 / big_s,
            "big_bytes_per_token": big_bytes as f64 / big_tokens as f64,
            "trace_ms_p50": latencies[latencies.len() / 2],
            "trace_ms_max": latencies[latencies.len() - 1],
        })
    );
    Ok(())
}
