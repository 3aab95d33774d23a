//! Seeded SGMV batches shared by the kernel tests (lavapipe and the browser) and the
//! benchmarks, so each measures the same shapes of work.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::lora::{AdapterId, AdapterMatrices, LoraMatrices, Segment, segments};
use crate::reference::RefSegment;

/// How a batch's rows pick among its adapters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Popularity {
    /// Every row its own adapter.
    Distinct,
    /// Rows draw uniformly from a handful of adapters.
    Uniform,
    /// Rows draw from a handful of adapters with P(k) ∝ 1/(k+1), as request traffic tends to.
    Zipf,
    /// All rows share one adapter.
    Identical,
}

impl Popularity {
    pub const ALL: [Popularity; 4] = [
        Popularity::Distinct,
        Popularity::Uniform,
        Popularity::Zipf,
        Popularity::Identical,
    ];

    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|p| format!("{p:?}").eq_ignore_ascii_case(name))
    }
}

/// One projection's worth of batch: inputs, base outputs, adapters and who uses which.
#[derive(Debug, Clone)]
pub struct Case {
    pub rows: usize,
    pub fan_in: usize,
    pub fan_out: usize,
    pub x: Vec<f32>,
    pub y0: Vec<f32>,
    /// Each adapter has one pair, under [`Case::KEY`].
    pub adapters: Vec<AdapterMatrices>,
    /// Per row: index into `adapters`, or none (base only).
    pub row_adapter: Vec<Option<usize>>,
}

/// What to build.
#[derive(Debug, Clone)]
pub struct CaseSpec {
    pub rows: usize,
    pub fan_in: usize,
    pub fan_out: usize,
    /// Adapter k gets rank `ranks[k % ranks.len()]`.
    pub ranks: Vec<usize>,
    pub popularity: Popularity,
    /// Every n-th row (n ≥ 2) runs without an adapter.
    pub base_only_every: Option<usize>,
    pub seed: u64,
}

impl Case {
    pub const KEY: u32 = 0;

    pub fn new(spec: &CaseSpec) -> Self {
        let mut rng = ChaCha8Rng::seed_from_u64(spec.seed);
        let mut values = |n: usize, amp: f32| -> Vec<f32> {
            (0..n).map(|_| rng.random_range(-amp..amp)).collect()
        };
        let x = values(spec.rows * spec.fan_in, 1.0);
        let y0 = values(spec.rows * spec.fan_out, 1.0);
        let count = match spec.popularity {
            Popularity::Distinct => spec.rows,
            Popularity::Uniform | Popularity::Zipf => spec.rows.min(8),
            Popularity::Identical => 1,
        };
        let adapters: Vec<AdapterMatrices> = (0..count)
            .map(|k| {
                let rank = spec.ranks[k % spec.ranks.len()];
                let a = values(rank * spec.fan_in, 1.0);
                let b = values(spec.fan_out * rank, 1.0);
                let pair =
                    LoraMatrices::new((spec.fan_in, spec.fan_out), rank, a, b, 2.0 / rank as f32)
                        .expect("sizes follow the spec");
                AdapterMatrices::from([(Self::KEY, pair)])
            })
            .collect();
        let mut rng = ChaCha8Rng::seed_from_u64(spec.seed ^ 0x5eed);
        let zipf_total: f64 = (1..=count).map(|k| 1.0 / k as f64).sum();
        let row_adapter = (0..spec.rows)
            .map(|row| {
                if spec.base_only_every.is_some_and(|n| row % n == n - 1) {
                    return None;
                }
                Some(match spec.popularity {
                    Popularity::Distinct => row,
                    Popularity::Identical => 0,
                    Popularity::Uniform => rng.random_range(0..count),
                    Popularity::Zipf => {
                        let mut u = rng.random_range(0.0..zipf_total);
                        (0..count)
                            .find(|&k| {
                                u -= 1.0 / (k + 1) as f64;
                                u < 0.0
                            })
                            .unwrap_or(count - 1)
                    }
                })
            })
            .collect();
        Self {
            rows: spec.rows,
            fan_in: spec.fan_in,
            fan_out: spec.fan_out,
            x,
            y0,
            adapters,
            row_adapter,
        }
    }

    /// Segments over pool ids, `ids[k]` being where adapter k was inserted.
    pub fn segments(&self, ids: &[AdapterId]) -> Vec<Segment> {
        let rows: Vec<Option<AdapterId>> =
            self.row_adapter.iter().map(|a| a.map(|k| ids[k])).collect();
        segments(&rows)
    }

    /// The same segments for [`crate::reference`].
    pub fn ref_segments(&self) -> Vec<RefSegment<'_>> {
        let ids: Vec<AdapterId> = (0..self.adapters.len() as u32).map(AdapterId).collect();
        self.segments(&ids)
            .into_iter()
            .map(|s| RefSegment {
                lora: s
                    .adapter
                    .map(|id| &self.adapters[id.0 as usize][&Self::KEY]),
                rows: s.rows,
            })
            .collect()
    }

    /// Largest scaled error of `got` (see [`crate::reference::max_relative_error`]).
    pub fn error(&self, got: &[f32]) -> Result<f64, crate::SgmvError> {
        crate::reference::max_relative_error(
            got,
            &self.x,
            &self.y0,
            (self.fan_in, self.fan_out),
            &self.ref_segments(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(rows: usize, popularity: Popularity) -> CaseSpec {
        CaseSpec {
            rows,
            fan_in: 8,
            fan_out: 4,
            ranks: vec![1, 8, 16],
            popularity,
            base_only_every: Some(5),
            seed: 3,
        }
    }

    #[test]
    fn popularity_shapes_the_adapter_mix() {
        let used = |c: &Case| {
            let mut v: Vec<usize> = c.row_adapter.iter().flatten().copied().collect();
            v.sort_unstable();
            v.dedup();
            v.len()
        };
        let distinct = Case::new(&spec(32, Popularity::Distinct));
        assert_eq!(distinct.adapters.len(), 32);
        assert_eq!(used(&distinct), 32 - 32 / 5);
        assert_eq!(used(&Case::new(&spec(32, Popularity::Identical))), 1);
        let zipf = Case::new(&spec(67, Popularity::Zipf));
        let first = zipf.row_adapter.iter().filter(|a| **a == Some(0)).count();
        let last = zipf.row_adapter.iter().filter(|a| **a == Some(7)).count();
        assert!(first > last, "adapter 0 drawn {first}×, adapter 7 {last}×");
        assert_eq!(zipf.row_adapter[4], None);
    }

    #[test]
    fn a_seed_reproduces_its_case() {
        let a = Case::new(&spec(3, Popularity::Uniform));
        let b = Case::new(&spec(3, Popularity::Uniform));
        assert_eq!((a.x, a.row_adapter), (b.x, b.row_adapter));
    }
}
