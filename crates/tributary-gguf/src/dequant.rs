//! CPU dequantization: the reference the GPU kernels are checked against.
//!
//! Each block format follows ggml's `dequantize_row_*` (ggml-quants.c) and the structs of
//! ggml-common.h. The arithmetic is done in f32 in the same order as ggml and gguf-py
//! (`d * q + m`, `(d * scale) * q`, never fused), so the results are bit-identical to theirs.

use half::{bf16, f16};

use crate::GgmlType;
use crate::error::{Error, Result};
use crate::types::QK_K;

/// Dequantizes `n_elements` values of type `ty` from exactly the bytes they occupy.
///
/// The length is checked before anything is allocated, so a wrong `n_elements` costs nothing.
pub fn dequantize(ty: GgmlType, bytes: &[u8], n_elements: usize) -> Result<Vec<f32>> {
    check_len(ty, bytes, n_elements)?;
    let mut out = vec![0f32; n_elements];
    dequantize_into(ty, bytes, &mut out)?;
    Ok(out)
}

/// Dequantizes into a caller's buffer, whose length is the element count.
pub fn dequantize_into(ty: GgmlType, bytes: &[u8], out: &mut [f32]) -> Result<()> {
    check_len(ty, bytes, out.len())?;
    match ty {
        GgmlType::F32 => each::<4, 1>(bytes, out, |b, o| o[0] = f32::from_le_bytes(*b)),
        GgmlType::F16 => each::<2, 1>(bytes, out, |b, o| o[0] = f16::from_le_bytes(*b).to_f32()),
        GgmlType::BF16 => {
            each::<2, 1>(bytes, out, |b, o| o[0] = bf16::from_le_bytes(*b).to_f32());
        }
        GgmlType::Q8_0 => each::<34, 32>(bytes, out, q8_0),
        GgmlType::Q4_0 => each::<18, 32>(bytes, out, q4_0),
        GgmlType::Q4_1 => each::<20, 32>(bytes, out, q4_1),
        GgmlType::Q4_K => each::<144, QK_K>(bytes, out, q4_k),
        GgmlType::Q6_K => each::<210, QK_K>(bytes, out, q6_k),
    }
    Ok(())
}

/// Bytes of one row of `ne0` elements: rows of a GGUF tensor are contiguous runs of `ne0`
/// (the first, innermost dimension), so row `r` starts at `r * row_bytes`.
pub fn row_bytes(ty: GgmlType, ne0: u64) -> Result<usize> {
    let bytes = bytes_for(ty, ne0, || "row".into())?;
    usize::try_from(bytes).map_err(|_| Error::TooLarge {
        what: "row size".into(),
        value: bytes,
    })
}

/// Dequantizes row `row` of a tensor of type `ty` whose rows hold `ne0` elements, given all of
/// the tensor's bytes: lets a caller upload or check one row without expanding the whole matrix.
pub fn dequantize_row(ty: GgmlType, tensor: &[u8], ne0: u64, row: u64) -> Result<Vec<f32>> {
    let len = row_bytes(ty, ne0)?;
    let n = usize::try_from(ne0).map_err(|_| Error::TooLarge {
        what: "row length".into(),
        value: ne0,
    })?;
    let rows = tensor.len().checked_div(len).unwrap_or(0) as u64;
    let out_of_range = || Error::RowOutOfRange {
        what: format!("{ty} tensor of {} bytes", tensor.len()),
        row,
        rows,
    };
    if row >= rows {
        return Err(out_of_range());
    }
    let start = usize::try_from(row)
        .ok()
        .and_then(|r| r.checked_mul(len))
        .ok_or_else(out_of_range)?;
    let end = start.checked_add(len).ok_or_else(out_of_range)?;
    let bytes = tensor.get(start..end).ok_or_else(out_of_range)?;
    dequantize(ty, bytes, n)
}

/// Bytes for `n` elements, with the reason when there is no such size.
fn bytes_for(ty: GgmlType, n: u64, what: impl FnOnce() -> String) -> Result<u64> {
    if !n.is_multiple_of(ty.block_size() as u64) {
        return Err(Error::NotBlockAligned {
            what: what(),
            ty,
            ne0: n,
        });
    }
    ty.bytes_for(n).ok_or_else(|| Error::TooLarge {
        what: format!("byte size of {n} {ty} elements"),
        value: n,
    })
}

fn check_len(ty: GgmlType, bytes: &[u8], n_elements: usize) -> Result<()> {
    let n = n_elements as u64;
    let expected = bytes_for(ty, n, || format!("{n} elements"))?;
    if expected != bytes.len() as u64 {
        return Err(Error::LengthMismatch {
            ty,
            n_elements: n,
            expected,
            actual: bytes.len() as u64,
        });
    }
    Ok(())
}

/// Runs `f` over each block of `B` bytes and its `N` outputs; lengths were checked by the caller.
fn each<const B: usize, const N: usize>(
    bytes: &[u8],
    out: &mut [f32],
    f: impl Fn(&[u8; B], &mut [f32; N]),
) {
    let (blocks, _) = bytes.as_chunks::<B>();
    let (outs, _) = out.as_chunks_mut::<N>();
    for (b, o) in blocks.iter().zip(outs) {
        f(b, o);
    }
}

fn half_at(b: &[u8], i: usize) -> f32 {
    match b.get(i..i + 2) {
        Some(&[lo, hi]) => f16::from_le_bytes([lo, hi]).to_f32(),
        _ => f32::NAN,
    }
}

/// `{f16 d; i8 qs[32]}`, x = d·q.
fn q8_0(b: &[u8; 34], out: &mut [f32; 32]) {
    let d = half_at(b, 0);
    for (o, &q) in out.iter_mut().zip(&b[2..]) {
        *o = f32::from(q as i8) * d;
    }
}

/// `{f16 d; u8 qs[16]}`, x = d·(q − 8); byte j holds element j (low nibble) and j + 16 (high).
fn q4_0(b: &[u8; 18], out: &mut [f32; 32]) {
    let d = half_at(b, 0);
    let (lo, hi) = out.split_at_mut(16);
    for ((l, h), &q) in lo.iter_mut().zip(hi).zip(&b[2..]) {
        *l = d * f32::from((q & 0x0F) as i8 - 8);
        *h = d * f32::from((q >> 4) as i8 - 8);
    }
}

/// `{f16 d; f16 m; u8 qs[16]}`, x = d·q + m; the same nibble order as Q4_0.
fn q4_1(b: &[u8; 20], out: &mut [f32; 32]) {
    let d = half_at(b, 0);
    let m = half_at(b, 2);
    let (lo, hi) = out.split_at_mut(16);
    for ((l, h), &q) in lo.iter_mut().zip(hi).zip(&b[4..]) {
        *l = d * f32::from(q & 0x0F) + m;
        *h = d * f32::from(q >> 4) + m;
    }
}

/// The 6-bit scale and min of sub-block `j` (0..8) of a Q4_K super-block: the first four sit
/// in the low 6 bits of bytes 0..4 (scales) and 4..8 (mins); the last four take their low 4
/// bits from bytes 8..12 and their top 2 bits from the spare high bits of bytes 0..8.
fn q4_k_scale_min(s: &[u8; 12], j: usize) -> (u8, u8) {
    if j < 4 {
        (s[j] & 63, s[j + 4] & 63)
    } else {
        (
            (s[j + 4] & 0x0F) | ((s[j - 4] >> 6) << 4),
            (s[j + 4] >> 4) | ((s[j] >> 6) << 4),
        )
    }
}

/// `{f16 d; f16 dmin; u8 scales[12]; u8 qs[128]}`: eight sub-blocks of 32, x = d·sc·q − dmin·m.
/// Each run of 32 bytes of `qs` holds two sub-blocks: low nibbles the first, high the second.
fn q4_k(b: &[u8; 144], out: &mut [f32; QK_K]) {
    let d = half_at(b, 0);
    let dmin = half_at(b, 2);
    let mut scales = [0u8; 12];
    scales.copy_from_slice(&b[4..16]);
    let qs = &b[16..];
    for (g, (y, q)) in out
        .chunks_exact_mut(64)
        .zip(qs.chunks_exact(32))
        .enumerate()
    {
        let (sc1, m1) = q4_k_scale_min(&scales, 2 * g);
        let (sc2, m2) = q4_k_scale_min(&scales, 2 * g + 1);
        let (d1, m1) = (d * f32::from(sc1), dmin * f32::from(m1));
        let (d2, m2) = (d * f32::from(sc2), dmin * f32::from(m2));
        let (lo, hi) = y.split_at_mut(32);
        for ((l, h), &q) in lo.iter_mut().zip(hi).zip(q) {
            *l = d1 * f32::from(q & 0x0F) - m1;
            *h = d2 * f32::from(q >> 4) - m2;
        }
    }
}

/// `{u8 ql[128]; u8 qh[64]; i8 scales[16]; f16 d}`: sixteen sub-blocks of 16 with signed 8-bit
/// scales, 6-bit quants q − 32 split into 4 low bits (`ql`) and 2 high bits (`qh`).
///
/// Each half of 128 outputs uses 64 bytes of `ql` and 32 of `qh`: output l (0..32) takes the
/// low nibble of ql[l] and bits 0–1 of qh[l]; l + 32 the low nibble of ql[l + 32] and bits 2–3;
/// l + 64 the high nibble of ql[l] and bits 4–5; l + 96 the high nibble of ql[l + 32], bits 6–7.
fn q6_k(b: &[u8; 210], out: &mut [f32; QK_K]) {
    let (ql, rest) = b.split_at(128);
    let (qh, rest) = rest.split_at(64);
    let (scales, d) = rest.split_at(16);
    let d = half_at(d, 0);
    for ((y, (ql, qh)), sc) in out
        .chunks_exact_mut(128)
        .zip(ql.chunks_exact(64).zip(qh.chunks_exact(32)))
        .zip(scales.chunks_exact(8))
    {
        let scale = |i: usize| d * f32::from(sc.get(i).map_or(0, |&s| s as i8));
        let (y01, y23) = y.split_at_mut(64);
        let (y0, y1) = y01.split_at_mut(32);
        let (y2, y3) = y23.split_at_mut(32);
        let (ql0, ql1) = ql.split_at(32);
        for l in 0..32 {
            let is = l / 16;
            let (a, c, h) = (ql0[l], ql1[l], qh[l]);
            let q1 = ((a & 0x0F) | ((h & 3) << 4)) as i8 - 32;
            let q2 = ((c & 0x0F) | (((h >> 2) & 3) << 4)) as i8 - 32;
            let q3 = ((a >> 4) | (((h >> 4) & 3) << 4)) as i8 - 32;
            let q4 = ((c >> 4) | (((h >> 6) & 3) << 4)) as i8 - 32;
            y0[l] = scale(is) * f32::from(q1);
            y1[l] = scale(is + 2) * f32::from(q2);
            y2[l] = scale(is + 4) * f32::from(q3);
            y3[l] = scale(is + 6) * f32::from(q4);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn q4_1_block_by_hand() {
        // d = 0.5, m = -1.0, byte j = (j + 1) << 4 | j: low nibble j, high nibble j + 1.
        let mut b = vec![];
        b.extend_from_slice(&f16::from_f32(0.5).to_le_bytes());
        b.extend_from_slice(&f16::from_f32(-1.0).to_le_bytes());
        b.extend((0u8..16).map(|j| ((j + 1) % 16) << 4 | j));
        let x = dequantize(GgmlType::Q4_1, &b, 32).unwrap();
        for j in 0..16 {
            assert_eq!(x[j], 0.5 * j as f32 - 1.0, "element {j}");
            assert_eq!(
                x[j + 16],
                0.5 * ((j + 1) % 16) as f32 - 1.0,
                "element {}",
                j + 16
            );
        }
    }

    #[test]
    fn lengths_are_checked_before_allocating() {
        assert!(matches!(
            dequantize(GgmlType::Q4_1, &[0; 20], 64),
            Err(Error::LengthMismatch {
                expected: 40,
                actual: 20,
                ..
            })
        ));
        assert!(matches!(
            dequantize(GgmlType::Q8_0, &[0; 34], 33),
            Err(Error::NotBlockAligned { .. })
        ));
        assert!(matches!(
            dequantize(GgmlType::F32, &[0; 4], usize::MAX),
            Err(Error::TooLarge { .. })
        ));
        assert!(matches!(
            dequantize(GgmlType::F16, &[0; 4], 3),
            Err(Error::LengthMismatch {
                expected: 6,
                actual: 4,
                ..
            })
        ));
    }

    #[test]
    fn rows_are_contiguous_runs_of_ne0() {
        let values: Vec<f32> = (0..96).map(|i| i as f32).collect();
        let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        assert_eq!(
            dequantize_row(GgmlType::F32, &bytes, 32, 2).unwrap(),
            &values[64..]
        );
        assert!(matches!(
            dequantize_row(GgmlType::F32, &bytes, 32, 3),
            Err(Error::RowOutOfRange {
                row: 3,
                rows: 3,
                ..
            })
        ));
        assert!(matches!(
            dequantize_row(GgmlType::Q4_0, &bytes, 48, 0),
            Err(Error::NotBlockAligned { ne0: 48, .. })
        ));
        assert!(matches!(
            dequantize_row(GgmlType::F32, &bytes, 32, u64::MAX),
            Err(Error::RowOutOfRange { .. })
        ));
    }
}
