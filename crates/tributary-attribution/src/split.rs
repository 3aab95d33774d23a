//! From evidence to the receipt's attribution entries, the same for every method: keep the
//! contributions with the most mass, largest first, until a share of the total positive mass is
//! covered, and divide one million parts among the kept ones in proportion to their mass.

use std::collections::BTreeMap;

use serde::Serialize;
use tributary_receipt::{Address, Attribution, B256, PPM};

use crate::trace::Span;

/// What a document of the index is: one contribution of one datanet.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Source {
    pub datanet: String,
    pub contribution: B256,
    pub contributor: Address,
}

/// One contribution's share of an answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Share {
    pub source: Source,
    pub weight_ppm: u32,
}

/// The attribution of one answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Split {
    /// Largest first.
    pub shares: Vec<Share>,
    /// Parts per million by contributor, largest first.
    pub by_contributor: Vec<(Address, u32)>,
    /// Parts per million by datanet, largest first.
    pub by_datanet: Vec<(String, u32)>,
}

impl Split {
    /// The receipt's entries; `method` is `METHOD_SPAN` or `METHOD_GRADIENT`.
    pub fn attributions(&self, method: u8) -> Vec<Attribution> {
        self.shares
            .iter()
            .map(|s| Attribution {
                contributionId: s.source.contribution,
                contributor: s.source.contributor,
                weightPpm: s.weight_ppm,
                method,
            })
            .collect()
    }

    /// The smallest weight kept: the threshold a receipt states.
    pub fn threshold_ppm(&self) -> u32 {
        self.shares.iter().map(|s| s.weight_ppm).min().unwrap_or(0)
    }
}

/// Keeps the largest masses until `share` of the positive total is covered and divides one
/// million parts among them. Non-positive masses are dropped. Rounding goes down for each and
/// the remainder to the largest, so a non-empty result sums to exactly 1,000,000.
pub fn threshold<K: Clone + Ord>(masses: &[(K, f64)], share: f64) -> Vec<(K, u32)> {
    let mut positive: Vec<(K, f64)> = masses
        .iter()
        .filter(|(_, m)| *m > 0.0 && m.is_finite())
        .cloned()
        .collect();
    // Largest first; equal masses by key, so the order (and the cut) is total.
    positive.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    let total: f64 = positive.iter().map(|(_, m)| m).sum();
    if total <= 0.0 {
        return Vec::new();
    }
    let target = share.clamp(0.0, 1.0) * total;
    let mut kept = Vec::new();
    let mut covered = 0.0;
    for (k, m) in positive {
        if covered >= target && !kept.is_empty() {
            break;
        }
        covered += m;
        kept.push((k, m));
    }
    let mut out: Vec<(K, u32)> = kept
        .iter()
        .map(|(k, m)| (k.clone(), (m / covered * PPM as f64).floor() as u32))
        .collect();
    let given: u64 = out.iter().map(|(_, p)| u64::from(*p)).sum();
    out[0].1 += (PPM - given.min(PPM)) as u32;
    out
}

fn aggregate<K: Ord + Clone>(items: impl Iterator<Item = (K, u32)>) -> Vec<(K, u32)> {
    let mut by: BTreeMap<K, u32> = BTreeMap::new();
    for (k, p) in items {
        *by.entry(k).or_default() += p;
    }
    let mut v: Vec<(K, u32)> = by.into_iter().collect();
    v.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    v
}

/// Span evidence to shares. A span's evidence is its self-information under the unigram model
/// (−log P, the quantity spans are ranked by: a rare span says more about its source than a
/// common phrase), shared equally by all its occurrences — each is equally likely to be where the
/// text came from — so each kept document gets `−log P / occurrences`. Documents are mapped to
/// their contributions by `sources`, and the masses go through [`threshold`].
///
/// (Crediting each span's length to the documents kept for it, the first rule tried, gave 30% of
/// the weight to contributors who had only common phrases in the canary test: a phrase found in
/// hundreds of chapters credited ten of them in full.)
pub fn split_spans(spans: &[Span], sources: &[Source], share: f64) -> Split {
    let mut mass: BTreeMap<usize, f64> = BTreeMap::new();
    for s in spans {
        if s.documents.is_empty() || s.occurrences == 0 {
            continue;
        }
        let each = -s.log_prob / s.occurrences as f64;
        for (doc, _) in &s.documents {
            *mass.entry(*doc).or_default() += each;
        }
    }
    let masses: Vec<(usize, f64)> = mass.into_iter().collect();
    split_masses(&masses, sources, share)
}

/// Any method's evidence — a mass per document (index into `sources`) — through [`threshold`],
/// with the kept shares aggregated per contributor and per datanet.
pub fn split_masses(masses: &[(usize, f64)], sources: &[Source], share: f64) -> Split {
    let shares: Vec<Share> = threshold(masses, share)
        .into_iter()
        .filter_map(|(doc, ppm)| {
            sources.get(doc).map(|source| Share {
                source: source.clone(),
                weight_ppm: ppm,
            })
        })
        .collect();
    Split {
        by_contributor: aggregate(shares.iter().map(|s| (s.source.contributor, s.weight_ppm))),
        by_datanet: aggregate(
            shares
                .iter()
                .map(|s| (s.source.datanet.clone(), s.weight_ppm)),
        ),
        shares,
    }
}
