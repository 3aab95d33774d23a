//! The threshold-and-split rule and span tracing on planted passages.

use proptest::prelude::*;
use tributary_attribution::*;
use tributary_receipt::{Address, B256, PPM};

proptest! {
    /// Exactly one million parts when anything is kept; the kept masses cover the share; a larger
    /// mass never gets fewer parts; nothing smaller than a kept mass is dropped.
    #[test]
    fn threshold_is_a_proportional_split_of_a_million(
        masses in prop::collection::vec(0.0f64..100.0, 0..40),
        share in 0.1f64..1.0,
    ) {
        let keyed: Vec<(usize, f64)> = masses.iter().copied().enumerate().collect();
        let out = threshold(&keyed, share);
        let total: f64 = masses.iter().filter(|m| **m > 0.0).sum();
        if total == 0.0 {
            prop_assert!(out.is_empty());
            return Ok(());
        }
        prop_assert_eq!(out.iter().map(|(_, p)| u64::from(*p)).sum::<u64>(), PPM);
        let kept: f64 = out.iter().map(|(k, _)| masses[*k]).sum();
        prop_assert!(kept >= share * total - 1e-9);
        for w in out.windows(2) {
            prop_assert!(masses[w[0].0] >= masses[w[1].0]);
        }
        let smallest_kept = out.iter().map(|(k, _)| masses[*k]).fold(f64::INFINITY, f64::min);
        for (k, m) in keyed {
            if m > smallest_kept {
                prop_assert!(out.iter().any(|(j, _)| *j == k), "mass {} above a kept one was dropped", m);
            }
        }
        // Dropping any kept entry but the last would fall short of the share.
        let without_last: f64 = kept - masses[out.last().unwrap().0];
        prop_assert!(without_last < share * total + 1e-9 || out.len() == 1);
    }
}

/// Documents of pseudo-random tokens; one planted passage in document 3.
#[test]
fn a_planted_passage_is_traced_to_its_document_and_contributor() {
    let mut x = 12345u64;
    let mut next = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        (x % 5000) as u32
    };
    let mut docs: Vec<Vec<u32>> = (0..20)
        .map(|_| (0..300).map(|_| next()).collect())
        .collect();
    let passage: Vec<u32> = (0..25).map(|i| 6000 + i).collect();
    docs[3].splice(100..100, passage.iter().copied());
    let index = Index::new(vec![
        Shard::build(&docs[..10]).unwrap(),
        Shard::build(&docs[10..]).unwrap(),
    ]);
    assert_eq!(index.documents(), 20);
    let mut output: Vec<u32> = (0..40).map(|_| 7000 + next() % 100).collect();
    output.splice(10..10, passage.iter().copied());
    let spans = trace(&index, &output, &SpanParams::default());
    assert!(!spans.is_empty());
    let best = spans.iter().max_by_key(|s| s.len).unwrap();
    assert_eq!((best.start, best.len), (10, 25));
    assert_eq!(best.documents, vec![(3, 100)]);
    assert_eq!(
        trace(&index, &output, &SpanParams::default()),
        spans,
        "deterministic"
    );

    let sources: Vec<Source> = (0..20)
        .map(|d| Source {
            datanet: if d < 10 { "a".into() } else { "b".into() },
            contribution: B256::repeat_byte(d as u8),
            contributor: Address::repeat_byte((d % 4) as u8 + 1),
        })
        .collect();
    let split = split_spans(&spans, &sources, 0.95);
    assert_eq!(split.shares[0].source, sources[3]);
    assert_eq!(split.by_contributor[0].0, Address::repeat_byte(4));
    assert_eq!(
        split
            .shares
            .iter()
            .map(|s| u64::from(s.weight_ppm))
            .sum::<u64>(),
        PPM
    );
    let entries = split.attributions(tributary_receipt::METHOD_SPAN);
    assert_eq!(entries[0].contributionId, B256::repeat_byte(3));

    // Sentence delimiters cut spans: with token 6012 a delimiter, no span crosses it.
    let params = SpanParams {
        delimiters: vec![6012],
        ..SpanParams::default()
    };
    for s in trace(&index, &output, &params) {
        let inner = &output[s.start..s.start + s.len - 1];
        assert!(!inner.contains(&6012), "{s:?}");
    }
}
