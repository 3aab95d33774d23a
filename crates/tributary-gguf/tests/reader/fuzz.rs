//! Untrusted bytes never panic the parser: arbitrary input, every truncation of each fixture,
//! and random corruptions of it give `Ok` or an error; and whenever they give `Ok`, every
//! tensor lies inside the file and dequantizes.

use crate::common::*;
use proptest::prelude::*;
use tributary_gguf::Gguf;

fn parse_and_check(bytes: Vec<u8>) {
    if let Ok(g) = Gguf::parse(bytes) {
        check_invariants(&g);
    }
}

#[test]
fn every_truncation_of_every_fixture() {
    for name in FIXTURES {
        let bytes = fixture(name);
        let full = Gguf::parse(bytes.clone()).unwrap();
        // The last byte any tensor needs: every shorter prefix must be refused.
        let needed = full
            .tensors()
            .iter()
            .map(|t| full.data_offset() + t.offset() + t.n_bytes())
            .max()
            .unwrap_or(0) as usize;
        for len in 0..bytes.len() {
            let result = Gguf::parse(bytes[..len].to_vec());
            match result {
                Ok(g) => {
                    assert!(len >= needed, "{name}: prefix of {len} bytes parsed");
                    check_invariants(&g);
                }
                Err(e) => {
                    assert!(len < needed, "{name}: prefix of {len} bytes refused: {e}");
                    // Messages are built without panicking too.
                    let _ = e.to_string();
                }
            }
        }
    }
}

fn fixture_and_index() -> impl Strategy<Value = (Vec<u8>, usize)> {
    proptest::sample::select(FIXTURES.to_vec()).prop_flat_map(|name| {
        let bytes = fixture(name);
        let len = bytes.len();
        (Just(bytes), 0..len)
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        parse_and_check(bytes);
    }

    #[test]
    fn arbitrary_bytes_after_a_valid_header(
        version in 2u32..=3,
        n_tensors in prop_oneof![0u64..4, any::<u64>()],
        n_kv in prop_oneof![0u64..4, any::<u64>()],
        rest in proptest::collection::vec(any::<u8>(), 0..512),
    ) {
        let mut bytes = b"GGUF".to_vec();
        bytes.extend_from_slice(&version.to_le_bytes());
        bytes.extend_from_slice(&n_tensors.to_le_bytes());
        bytes.extend_from_slice(&n_kv.to_le_bytes());
        bytes.extend_from_slice(&rest);
        parse_and_check(bytes);
    }

    #[test]
    fn single_byte_corruptions((bytes, at) in fixture_and_index(), byte in any::<u8>()) {
        let mut bytes = bytes;
        bytes[at] = byte;
        parse_and_check(bytes);
    }

    /// Lengths, counts, dimensions and offsets are u64s: overwrite one with an extreme value.
    #[test]
    fn extreme_u64_corruptions(
        (bytes, at) in fixture_and_index(),
        value in prop_oneof![
            Just(u64::MAX), Just(u64::MAX / 2), Just(1u64 << 32), Just(1u64 << 63), Just(0u64),
            any::<u64>(), 0u64..1024,
        ],
    ) {
        let mut bytes = bytes;
        let end = (at + 8).min(bytes.len());
        let n = end - at;
        bytes[at..end].copy_from_slice(&value.to_le_bytes()[..n]);
        parse_and_check(bytes);
    }

    #[test]
    fn several_corruptions((bytes, _) in fixture_and_index(), edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8)) {
        let mut bytes = bytes;
        for (i, b) in edits {
            let at = i.index(bytes.len());
            bytes[at] = b;
        }
        parse_and_check(bytes);
    }
}
