//! Criterion timings of span attribution on a synthetic corpus (Zipf-like token frequencies over a
//! 32k vocabulary, so ids take 2 bytes as in the KJV bench): suffix-array build of 1M tokens, one
//! longest-prefix query, and the trace of a 450-token output that quotes the corpus. `cargo xtask
//! bench attribution` reports the same on real text at 100M tokens.

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use tributary_attribution::{Index, Shard, SpanParams, trace};

fn corpus(tokens: usize, seed: u64) -> Vec<Vec<u32>> {
    let mut x = seed;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    (0..tokens / 500)
        .map(|_| {
            (0..500)
                .map(|_| {
                    // Squaring a uniform draw skews toward small ids, as word frequencies do.
                    let u = (next() % 1_000_000) as f64 / 1e6;
                    (u * u * 32_000.0) as u32
                })
                .collect()
        })
        .collect()
}

fn attribution(c: &mut Criterion) {
    let docs = corpus(1_000_000, 7);
    let mut group = c.benchmark_group("attribution");
    group.sample_size(10);
    group.throughput(Throughput::Bytes(2 * 1_000_000));
    group.bench_function("suffix array build, 1M tokens", |b| {
        b.iter(|| Shard::build(&docs).unwrap())
    });
    group.throughput(Throughput::Elements(1));
    let index = Index::new(vec![Shard::build(&docs).unwrap()]);
    let shard = &index.shards()[0];
    let quote = docs[123][100..140].to_vec();
    group.bench_function("longest prefix, 40-token quote", |b| {
        b.iter(|| shard.longest_prefix(&quote))
    });
    let mut output: Vec<u32> = corpus(2_000, 99).concat()[..300].to_vec();
    output.extend_from_slice(&docs[77][..150]);
    group.bench_function("trace, 450-token output vs 1M tokens", |b| {
        b.iter(|| trace(&index, &output, &SpanParams::default()))
    });
    group.finish();
}

criterion_group!(benches, attribution);
criterion_main!(benches);
