//! Suffix-array queries against a naive scan of the same documents, on random corpora of both
//! token widths, in memory and after a save and a memory-mapped open.

use proptest::prelude::*;
use tributary_attribution::Shard;

/// The longest prefix of `query` found inside one document, and how often it occurs (naive).
fn naive(docs: &[Vec<u32>], query: &[u32]) -> (usize, usize) {
    let occurrences = |len: usize| -> usize {
        docs.iter()
            .map(|d| {
                if len == 0 {
                    return d.len() + 1; // every suffix, the separator's included
                }
                d.windows(len).filter(|w| *w == &query[..len]).count()
            })
            .sum()
    };
    let mut best = 0;
    for len in 1..=query.len() {
        if occurrences(len) == 0 {
            break;
        }
        best = len;
    }
    (best, occurrences(best))
}

fn corpus(wide: bool) -> impl Strategy<Value = (Vec<Vec<u32>>, Vec<Vec<u32>>)> {
    // A small alphabet makes long repeats likely; a wide id forces the 4-byte path.
    let token = if wide {
        prop_oneof![0u32..6, Just(70_000u32)].boxed()
    } else {
        (0u32..6).boxed()
    };
    let docs = prop::collection::vec(prop::collection::vec(token.clone(), 0..40), 1..8);
    let queries = prop::collection::vec(prop::collection::vec(token, 1..12), 1..10);
    (docs, queries)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn longest_prefixes_and_counts_equal_a_naive_scan(
        (docs, queries) in prop_oneof![corpus(false), corpus(true)],
    ) {
        let shard = Shard::build(&docs).unwrap();
        let dir = std::env::temp_dir().join(format!(
            "tributary-index-{}-{}",
            std::process::id(),
            rand_suffix()
        ));
        shard.save(&dir).unwrap();
        let mapped = Shard::open(&dir).unwrap();
        for s in [&shard, &mapped] {
            for q in &queries {
                let m = s.longest_prefix(q);
                let (len, count) = naive(&docs, q);
                prop_assert_eq!(m.len, len, "query {:?}", q);
                if len > 0 {
                    prop_assert_eq!(m.sa_range.len(), count, "query {:?}", q);
                    prop_assert_eq!(s.count(&q[..len]), count);
                    // Every suffix in the range starts with the match, inside one document.
                    for j in m.sa_range.clone() {
                        let p = s.suffix(j);
                        let (doc, off) = s.document_of(p);
                        prop_assert_eq!(&docs[doc][off..off + len], &q[..len]);
                    }
                }
            }
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
}

fn rand_suffix() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    N.fetch_add(1, Ordering::Relaxed)
}

#[test]
fn narrow_ids_take_two_bytes_and_wide_ones_four() {
    let narrow = Shard::build(&[vec![1, 2, 3], vec![2, 3]]).unwrap();
    assert_eq!(narrow.meta().token_width, 2);
    assert_eq!(narrow.meta().separator, 65_535);
    assert_eq!(narrow.bytes(), 7 * 2 + 7 * 4 + 2 * 8);
    let wide = Shard::build(&[vec![1, 100_000]]).unwrap();
    assert_eq!(wide.meta().token_width, 4);
    assert_eq!(wide.count(&[1, 100_000]), 1);
    assert!(Shard::build(&[vec![u32::MAX]]).is_err());
}

#[test]
fn a_damaged_shard_is_refused_naming_the_file() {
    let dir = std::env::temp_dir().join(format!("tributary-index-bad-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    Shard::build(&[vec![1, 2, 3]]).unwrap().save(&dir).unwrap();
    std::fs::write(dir.join("sa.bin"), [0u8; 3]).unwrap();
    let err = Shard::open(&dir).unwrap_err().to_string();
    assert!(err.contains("sa.bin"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}
