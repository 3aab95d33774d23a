//! LoRA matrices as PEFT stores them, and the segment description of a mixed-adapter batch.

use std::collections::BTreeMap;
use std::ops::Range;

use crate::SgmvError;

/// One adapter's LoRA pair for one projection, in PEFT's layout.
#[derive(Debug, Clone, PartialEq)]
pub struct LoraMatrices {
    pub rank: usize,
    pub fan_in: usize,
    pub fan_out: usize,
    /// A, `[rank, fan_in]` row-major (`lora_A.weight`).
    pub a: Vec<f32>,
    /// B, `[fan_out, rank]` row-major (`lora_B.weight`).
    pub b: Vec<f32>,
    /// PEFT's alpha / r (or alpha / √r with rsLoRA).
    pub scale: f32,
}

impl LoraMatrices {
    /// Checks that `a` and `b` have the sizes the dimensions promise.
    pub fn new(
        (fan_in, fan_out): (usize, usize),
        rank: usize,
        a: Vec<f32>,
        b: Vec<f32>,
        scale: f32,
    ) -> Result<Self, SgmvError> {
        if rank == 0 || fan_in == 0 || fan_out == 0 {
            return Err(SgmvError::Empty {
                argument: "rank, fan_in and fan_out",
            });
        }
        check_len("a", &a, rank * fan_in)?;
        check_len("b", &b, fan_out * rank)?;
        Ok(Self {
            rank,
            fan_in,
            fan_out,
            a,
            b,
            scale,
        })
    }

    /// Bytes of f32 weights this pair holds (A and B).
    pub fn bytes(&self) -> u64 {
        ((self.a.len() + self.b.len()) * size_of::<f32>()) as u64
    }
}

pub(crate) fn check_len(
    argument: &'static str,
    v: &[f32],
    expected: usize,
) -> Result<(), SgmvError> {
    if v.len() == expected {
        Ok(())
    } else {
        Err(SgmvError::Shape {
            argument,
            expected,
            got: v.len(),
        })
    }
}

/// All of one adapter's pairs, keyed by the caller's projection number (the model numbers its
/// projections `layer · 7 + target`); a projection the adapter does not touch has no entry.
pub type AdapterMatrices = BTreeMap<u32, LoraMatrices>;

/// Names an adapter resident in a pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AdapterId(pub u32);

/// A run of consecutive batch rows that share one adapter (or none: base model only).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Segment {
    pub rows: Range<usize>,
    pub adapter: Option<AdapterId>,
}

/// Groups per-row adapters into segments, merging neighbours that use the same adapter.
///
/// Rows are not reordered: a batch keeps its layout, and rows of one adapter that are not
/// neighbours become separate segments (each still a single pass; no padding, no copies).
pub fn segments(rows: &[Option<AdapterId>]) -> Vec<Segment> {
    let mut out: Vec<Segment> = Vec::new();
    for (i, &adapter) in rows.iter().enumerate() {
        match out.last_mut() {
            Some(last) if last.adapter == adapter => last.rows.end = i + 1,
            _ => out.push(Segment {
                rows: i..i + 1,
                adapter,
            }),
        }
    }
    out
}

/// Checks `x` (`[rows, fan_in]`) against `y` (`[rows, fan_out]`) and the segments against the
/// rows; returns `(rows, fan_in, fan_out)`.
pub(crate) fn check_batch(
    [rows, fan_in]: [usize; 2],
    [y_rows, fan_out]: [usize; 2],
    segments: &[Segment],
) -> Result<(usize, usize, usize), SgmvError> {
    if y_rows != rows {
        return Err(SgmvError::Shape {
            argument: "y rows",
            expected: rows,
            got: y_rows,
        });
    }
    check_segments(segments, rows)?;
    Ok((rows, fan_in, fan_out))
}

/// Checks that `segments` lie within `rows` rows and do not overlap.
pub(crate) fn check_segments(segments: &[Segment], rows: usize) -> Result<(), SgmvError> {
    let mut sorted: Vec<&Segment> = segments.iter().collect();
    sorted.sort_by_key(|s| s.rows.start);
    let mut end = 0;
    for s in sorted {
        if s.rows.start < end || s.rows.end > rows || s.rows.start > s.rows.end {
            return Err(SgmvError::Segments(format!(
                "rows {:?} overlap another segment or lie outside the batch of {rows} rows",
                s.rows
            )));
        }
        end = s.rows.end;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn neighbours_with_the_same_adapter_merge() {
        let a = Some(AdapterId(1));
        let b = Some(AdapterId(2));
        let s = segments(&[a, a, None, b, b, b, a]);
        assert_eq!(
            s,
            vec![
                Segment {
                    rows: 0..2,
                    adapter: a
                },
                Segment {
                    rows: 2..3,
                    adapter: None
                },
                Segment {
                    rows: 3..6,
                    adapter: b
                },
                Segment {
                    rows: 6..7,
                    adapter: a
                },
            ]
        );
        assert!(segments(&[]).is_empty());
    }

    #[test]
    fn overlapping_or_outside_segments_are_refused() {
        let seg = |r: Range<usize>| Segment {
            rows: r,
            adapter: None,
        };
        assert!(check_segments(&[seg(0..2), seg(2..4)], 4).is_ok());
        assert!(check_segments(&[seg(0..3), seg(2..4)], 4).is_err());
        assert!(check_segments(&[seg(0..5)], 4).is_err());
    }

    #[test]
    fn matrices_check_their_sizes() {
        assert!(LoraMatrices::new((3, 2), 2, vec![0.0; 6], vec![0.0; 4], 1.0).is_ok());
        let err = LoraMatrices::new((3, 2), 2, vec![0.0; 5], vec![0.0; 4], 1.0).unwrap_err();
        assert!(matches!(
            err,
            SgmvError::Shape {
                argument: "a",
                expected: 6,
                got: 5
            }
        ));
        assert!(LoraMatrices::new((3, 2), 0, vec![], vec![], 1.0).is_err());
    }
}
