//! Near-duplicate detection: MinHash signatures over word 5-shingles, whose agreement estimates
//! the Jaccard similarity of two contributions' shingle sets (Broder). Exact duplicates are caught
//! by content hash; these catch copies with small edits, which are flagged for the validator.

use alloy::primitives::keccak256;

/// Hash functions per signature: the estimate's standard error is about 1/√64 ≈ 0.125 at worst,
/// far smaller near the 0.8 threshold used here.
pub const HASHES: usize = 64;
const SHINGLE_WORDS: usize = 5;
/// Estimated similarity at or above which a contribution is flagged.
pub const NEAR_DUPLICATE: f64 = 0.8;

/// The signature of `text`; `None` for text too short to have one shingle.
pub fn signature(text: &str) -> Option<[u64; HASHES]> {
    let words: Vec<String> = text
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
        .collect();
    if words.len() < SHINGLE_WORDS {
        return None;
    }
    let mut mins = [u64::MAX; HASHES];
    for shingle in words.windows(SHINGLE_WORDS) {
        let h = keccak256(shingle.join(" ").as_bytes());
        // Two 64-bit halves of one keccak give a family of hashes by h1 + i·h2 (Kirsch–Mitzenmacher).
        let h1 = u64::from_le_bytes(h[..8].try_into().expect("8 bytes"));
        let h2 = u64::from_le_bytes(h[8..16].try_into().expect("8 bytes")) | 1;
        for (i, m) in mins.iter_mut().enumerate() {
            *m = (*m).min(h1.wrapping_add((i as u64).wrapping_mul(h2)));
        }
    }
    Some(mins)
}

pub fn similarity(a: &[u64; HASHES], b: &[u64; HASHES]) -> f64 {
    a.iter().zip(b).filter(|(x, y)| x == y).count() as f64 / HASHES as f64
}

pub fn to_bytes(sig: &[u64; HASHES]) -> Vec<u8> {
    sig.iter().flat_map(|v| v.to_le_bytes()).collect()
}

pub fn from_bytes(bytes: &[u8]) -> Option<[u64; HASHES]> {
    if bytes.len() != HASHES * 8 {
        return None;
    }
    let mut out = [0u64; HASHES];
    for (o, chunk) in out.iter_mut().zip(bytes.chunks_exact(8)) {
        *o = u64::from_le_bytes(chunk.try_into().expect("8 bytes"));
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exact_jaccard(a: &str, b: &str) -> f64 {
        let shingles = |t: &str| {
            let w: Vec<String> = t
                .split(|c: char| !c.is_alphanumeric())
                .filter(|w| !w.is_empty())
                .map(str::to_lowercase)
                .collect();
            w.windows(SHINGLE_WORDS)
                .map(|s| s.join(" "))
                .collect::<std::collections::HashSet<_>>()
        };
        let (a, b) = (shingles(a), shingles(b));
        a.intersection(&b).count() as f64 / a.union(&b).count() as f64
    }

    #[test]
    fn estimates_track_exact_jaccard() {
        let base: String = (0..200).map(|i| format!("word{} ", i * 7 % 131)).collect();
        let mut edited = base.clone();
        edited.replace_range(40..60, " changed text here ");
        let other: String = (0..200).map(|i| format!("term{i} ")).collect();
        for (a, b) in [(&base, &edited), (&base, &other), (&base, &base)] {
            let est = similarity(&signature(a).unwrap(), &signature(b).unwrap());
            let exact = exact_jaccard(a, b);
            assert!((est - exact).abs() < 0.2, "estimate {est} vs exact {exact}");
        }
        assert!(signature("too short").is_none());
        let sig = signature(&base).unwrap();
        assert_eq!(from_bytes(&to_bytes(&sig)), Some(sig));
    }
}
