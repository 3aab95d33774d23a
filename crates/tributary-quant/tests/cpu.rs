//! The CPU kernel against the reference (tributary-gguf's dequantization, itself checked
//! bit-for-bit against gguf-py), over every supported type and odd shapes.

use half::{bf16, f16};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use tributary_quant::{GgmlType, QMatrix, QuantError, matmul, matmul_threads, reference};

/// Random blocks of `ty` whose scale fields are finite, moderate halves (random bytes there would
/// give infinities and NaNs that no real file holds).
fn random_matrix(rng: &mut ChaCha8Rng, ty: GgmlType, rows: usize, cols: usize) -> QMatrix {
    let n = rows * cols;
    let half = |rng: &mut ChaCha8Rng, lo: f32, hi: f32| f16::from_f32(rng.random_range(lo..hi));
    let mut bytes = Vec::new();
    match ty {
        GgmlType::F32 => {
            for _ in 0..n {
                bytes.extend(rng.random_range(-1f32..1.0).to_le_bytes());
            }
        }
        GgmlType::F16 => {
            for _ in 0..n {
                bytes.extend(half(rng, -1.0, 1.0).to_le_bytes());
            }
        }
        GgmlType::BF16 => {
            for _ in 0..n {
                bytes.extend(bf16::from_f32(rng.random_range(-1f32..1.0)).to_le_bytes());
            }
        }
        _ => {
            let blocks = n / ty.block_size();
            for _ in 0..blocks {
                let mut b = vec![0u8; ty.type_size()];
                rng.fill(&mut b[..]);
                // (offset, low, high) of each f16 field: Q4_1's min is negative, as real ones are.
                let fields: &[(usize, f32, f32)] = match ty {
                    GgmlType::Q8_0 | GgmlType::Q4_0 => &[(0, 0.001, 0.05)],
                    GgmlType::Q4_1 => &[(0, 0.001, 0.05), (2, -0.5, -0.01)],
                    GgmlType::Q4_K => &[(0, 0.001, 0.05), (2, 0.001, 0.05)],
                    GgmlType::Q6_K => &[(208, 0.0005, 0.01)],
                    _ => unreachable!("every quantized type is listed"),
                };
                for &(at, lo, hi) in fields {
                    b[at..at + 2].copy_from_slice(&half(rng, lo, hi).to_le_bytes());
                }
                bytes.extend(b);
            }
        }
    }
    QMatrix::from_vec("w", ty, rows, cols, bytes).unwrap()
}

fn random_x(rng: &mut ChaCha8Rng, n: usize) -> Vec<f32> {
    (0..n).map(|_| rng.random_range(-2f32..2.0)).collect()
}

/// `Σ_k |x_k·w_k|` per output: the scale float rounding of a dot product is relative to.
fn magnitudes(x: &[f32], w: &QMatrix) -> Vec<f32> {
    let abs_x: Vec<f32> = x.iter().map(|v| v.abs()).collect();
    let mut dense = vec![0f32; w.rows() * w.cols()];
    for (r, row) in dense.chunks_exact_mut(w.cols()).enumerate() {
        let bytes = &w.bytes()[r * w.row_bytes()..(r + 1) * w.row_bytes()];
        tributary_gguf::dequantize_into(w.ggml_type(), bytes, row).unwrap();
        row.iter_mut().for_each(|v| *v = v.abs());
    }
    let abs_w = QMatrix::from_vec(
        "abs",
        GgmlType::F32,
        w.rows(),
        w.cols(),
        dense.iter().flat_map(|v| v.to_le_bytes()).collect(),
    )
    .unwrap();
    let mut out = vec![0f32; x.len() / w.cols() * w.rows()];
    reference::matmul(&abs_x, &abs_w, &mut out).unwrap();
    out
}

const TYPES: [GgmlType; 8] = [
    GgmlType::F32,
    GgmlType::F16,
    GgmlType::BF16,
    GgmlType::Q8_0,
    GgmlType::Q4_0,
    GgmlType::Q4_1,
    GgmlType::Q4_K,
    GgmlType::Q6_K,
];

#[test]
fn matches_the_reference_on_every_type_and_odd_shapes() {
    let mut rng = ChaCha8Rng::seed_from_u64(19);
    for ty in TYPES {
        let block = ty.block_size().max(32);
        // Rows not a multiple of any tile or task size; K of one and of several blocks.
        for (rows, cols) in [(1, block), (7, 2 * block), (33, 3 * block), (130, block)] {
            let w = random_matrix(&mut rng, ty, rows, cols);
            for m in [1, 2, 3, 4, 7] {
                let x = random_x(&mut rng, m * cols);
                let mut got = vec![f32::NAN; m * rows];
                let mut want = vec![f32::NAN; m * rows];
                matmul(&x, &w, &mut got).unwrap();
                reference::matmul(&x, &w, &mut want).unwrap();
                let scale = magnitudes(&x, &w);
                for (k, ((g, r), s)) in got.iter().zip(&want).zip(&scale).enumerate() {
                    // A few ulps of the sum of magnitudes: the kernel only reorders the sum (and
                    // factors a block's scale out of it).
                    let tol = 4e-6 * s + 1e-6;
                    assert!(
                        (g - r).abs() <= tol,
                        "{ty} {rows}x{cols}, m={m}, output {k}: kernel {g}, reference {r} (tol {tol})"
                    );
                }
            }
        }
    }
}

#[test]
fn bit_identical_across_runs_and_thread_counts() {
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    for ty in [GgmlType::Q4_1, GgmlType::Q8_0, GgmlType::Q6_K] {
        let block = ty.block_size().max(32);
        let w = random_matrix(&mut rng, ty, 301, 4 * block);
        for m in [1, 5] {
            let x = random_x(&mut rng, m * w.cols());
            let mut first = vec![0f32; m * w.rows()];
            matmul_threads(&x, &w, &mut first, 1).unwrap();
            for threads in [1, 2, 3] {
                let mut again = vec![0f32; m * w.rows()];
                matmul_threads(&x, &w, &mut again, threads).unwrap();
                let same = first
                    .iter()
                    .zip(&again)
                    .all(|(a, b)| a.to_bits() == b.to_bits());
                assert!(same, "{ty}, m={m}, {threads} threads");
            }
        }
    }
}

#[test]
fn bad_shapes_are_typed_errors() {
    // K not a multiple of the block size.
    assert!(matches!(
        QMatrix::from_vec("blk.0.attn_q.weight", GgmlType::Q4_1, 2, 48, vec![0; 60]),
        Err(QuantError::NotBlockAligned {
            cols: 48,
            block: 32,
            ..
        })
    ));
    let err = QMatrix::from_vec("blk.0.attn_q.weight", GgmlType::Q4_1, 2, 64, vec![0; 79]);
    match err {
        Err(e @ QuantError::Length { expected: 80, .. }) => {
            assert!(e.to_string().contains("blk.0.attn_q.weight"), "{e}")
        }
        other => panic!("{other:?}"),
    }
    let w = QMatrix::from_vec("w", GgmlType::Q8_0, 3, 32, vec![0; 3 * 34]).unwrap();
    let mut y = vec![0f32; 3];
    assert!(matches!(
        matmul(&[0.0; 33], &w, &mut y),
        Err(QuantError::Shape { .. })
    ));
    assert!(matches!(
        matmul(&[0.0; 64], &w, &mut y),
        Err(QuantError::Shape { .. })
    ));
}
