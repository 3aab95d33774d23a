//! The SGMV operation in plain Rust: what the WGSL kernels compute, written to be read.
//!
//! For every row in a segment with an adapter: shrink `v = A·x` (rank values, kept in f32 like
//! the kernels' intermediate), then expand `y += scale · B·v`. Rows without an adapter keep the
//! base output. Sums are accumulated in f64 and rounded once, so a comparison measures the
//! kernel's rounding, not this one's. CPU backends run this directly.

use std::ops::Range;

use crate::SgmvError;
use crate::lora::{LoraMatrices, Segment, check_len, check_segments};

/// A segment with its adapter's matrices for the projection at hand resolved (or none).
#[derive(Debug, Clone)]
pub struct RefSegment<'a> {
    pub rows: Range<usize>,
    pub lora: Option<&'a LoraMatrices>,
}

/// `y[rows] += scale · B·(A·x[rows])` per segment; `x` is `[rows, fan_in]`, `y` `[rows, fan_out]`.
pub fn sgmv(
    x: &[f32],
    y: &mut [f32],
    (fan_in, fan_out): (usize, usize),
    segments: &[RefSegment<'_>],
) -> Result<(), SgmvError> {
    check_batch(x, y, (fan_in, fan_out), segments)?;
    for seg in segments {
        let Some(lora) = seg.lora else { continue };
        for row in seg.rows.clone() {
            let x_row = &x[row * fan_in..][..fan_in];
            let v = shrink(lora, x_row);
            let y_row = &mut y[row * fan_out..][..fan_out];
            for (o, y) in y_row.iter_mut().enumerate() {
                let b_row = &lora.b[o * lora.rank..][..lora.rank];
                let delta: f64 = b_row
                    .iter()
                    .zip(&v)
                    .map(|(&b, &v)| f64::from(b) * f64::from(v))
                    .sum();
                *y = (f64::from(*y) + f64::from(lora.scale) * delta) as f32;
            }
        }
    }
    Ok(())
}

/// `A·x` for one row, rounded to f32 per rank value.
fn shrink(lora: &LoraMatrices, x_row: &[f32]) -> Vec<f32> {
    lora.a
        .chunks_exact(lora.fan_in)
        .map(|a_row| {
            a_row
                .iter()
                .zip(x_row)
                .map(|(&a, &x)| f64::from(a) * f64::from(x))
                .sum::<f64>() as f32
        })
        .collect()
}

/// Validates shapes, segments and each pair's dimensions against the batch.
fn check_batch(
    x: &[f32],
    y: &[f32],
    (fan_in, fan_out): (usize, usize),
    segments: &[RefSegment<'_>],
) -> Result<(), SgmvError> {
    if fan_in == 0 || fan_out == 0 {
        return Err(SgmvError::Empty {
            argument: "fan_in and fan_out",
        });
    }
    let rows = x.len() / fan_in;
    check_len("x", x, rows * fan_in)?;
    check_len("y", y, rows * fan_out)?;
    let plain: Vec<Segment> = segments
        .iter()
        .map(|s| Segment {
            rows: s.rows.clone(),
            adapter: None,
        })
        .collect();
    check_segments(&plain, rows)?;
    for seg in segments {
        if let Some(l) = seg.lora
            && (l.fan_in, l.fan_out) != (fan_in, fan_out)
        {
            return Err(SgmvError::Mismatch(format!(
                "an adapter pair is {}→{}, the batch is {fan_in}→{fan_out}",
                l.fan_in, l.fan_out
            )));
        }
    }
    Ok(())
}

/// Largest error of `got` against [`sgmv`], each element's error divided by the magnitude its
/// rounding error scales with: `|y₀| + |s|·Σⱼ |Bₒⱼ|·Σₖ |Aⱼₖ·xₖ|`.
///
/// Plain relative error explodes where the exact value is near zero; this bound does not, and
/// a wrong row, a dropped segment or a NaN still shows up as an error of order one or more.
pub fn max_relative_error(
    got: &[f32],
    x: &[f32],
    y0: &[f32],
    (fan_in, fan_out): (usize, usize),
    segments: &[RefSegment<'_>],
) -> Result<f64, SgmvError> {
    let mut want = y0.to_vec();
    sgmv(x, &mut want, (fan_in, fan_out), segments)?;
    check_len("got", got, want.len())?;
    let mut scale: Vec<f64> = y0.iter().map(|&y| f64::from(y).abs()).collect();
    for seg in segments {
        let Some(l) = seg.lora else { continue };
        for row in seg.rows.clone() {
            let x_row = &x[row * fan_in..][..fan_in];
            let v_mag: Vec<f64> =
                l.a.chunks_exact(fan_in)
                    .map(|a| {
                        a.iter()
                            .zip(x_row)
                            .map(|(&a, &x)| f64::from(a * x).abs())
                            .sum()
                    })
                    .collect();
            for o in 0..fan_out {
                let b_row = &l.b[o * l.rank..][..l.rank];
                let m: f64 = b_row
                    .iter()
                    .zip(&v_mag)
                    .map(|(&b, v)| f64::from(b).abs() * v)
                    .sum();
                scale[row * fan_out + o] += f64::from(l.scale).abs() * m;
            }
        }
    }
    Ok(worst_scaled_error(
        got.iter()
            .zip(&want)
            .zip(scale)
            .map(|((&g, &w), s)| (g, w, s)),
    ))
}

/// max |got − want| / scale over `(got, want, scale)`; a NaN counts as an infinite error rather
/// than being skipped by `max`.
pub(crate) fn worst_scaled_error(items: impl Iterator<Item = (f32, f32, f64)>) -> f64 {
    let mut worst = 0.0f64;
    for (got, want, scale) in items {
        let err = (f64::from(got) - f64::from(want)).abs() / scale.max(f64::MIN_POSITIVE);
        worst = if err.is_nan() {
            f64::INFINITY
        } else {
            worst.max(err)
        };
    }
    worst
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pair() -> LoraMatrices {
        // A = [[1, 0, 2]], B = [[1], [-1]], scale 0.5: Δy = 0.5 · [1, -1] · (x₀ + 2x₂).
        LoraMatrices::new((3, 2), 1, vec![1.0, 0.0, 2.0], vec![1.0, -1.0], 0.5).unwrap()
    }

    #[test]
    fn matches_a_hand_computed_batch() {
        let l = pair();
        let x = [1.0, 5.0, 1.0, /* row 1 */ 2.0, 0.0, 0.0];
        let mut y = [10.0, 10.0, /* row 1 */ 10.0, 10.0];
        let segs = [
            RefSegment {
                rows: 0..1,
                lora: Some(&l),
            },
            RefSegment {
                rows: 1..2,
                lora: None,
            },
        ];
        sgmv(&x, &mut y, (3, 2), &segs).unwrap();
        // Row 0: x₀ + 2x₂ = 3 → Δ = [1.5, -1.5]; row 1 has no adapter.
        assert_eq!(y, [11.5, 8.5, 10.0, 10.0]);
    }

    #[test]
    fn shapes_and_segments_are_checked() {
        let l = pair();
        let mut y = [0.0; 4];
        let seg = [RefSegment {
            rows: 0..3,
            lora: Some(&l),
        }];
        assert!(matches!(
            sgmv(&[0.0; 6], &mut y, (3, 2), &seg),
            Err(SgmvError::Segments(_))
        ));
        let seg = [RefSegment {
            rows: 0..2,
            lora: Some(&l),
        }];
        assert!(matches!(
            sgmv(&[0.0; 8], &mut [0.0; 4], (4, 2), &seg),
            Err(SgmvError::Mismatch(_))
        ));
    }

    #[test]
    fn error_metric_flags_a_skipped_segment_and_nan() {
        let l = pair();
        let x = [1.0, 5.0, 1.0];
        let y0 = [0.0, 0.0];
        let segs = [RefSegment {
            rows: 0..1,
            lora: Some(&l),
        }];
        let err = |got: &[f32]| max_relative_error(got, &x, &y0, (3, 2), &segs).unwrap();
        assert_eq!(err(&[1.5, -1.5]), 0.0);
        assert!(err(&[0.0, 0.0]) > 0.9);
        assert!(err(&[f32::NAN, -1.5]).is_infinite());
    }
}
