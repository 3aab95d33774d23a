//! What the CPU and GPU kernel tests share: random matrices of every type and the tolerance
//! scale of a dot product.

use half::{bf16, f16};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use tributary_quant::{GgmlType, QMatrix, reference};

pub fn rng(seed: u64) -> ChaCha8Rng {
    ChaCha8Rng::seed_from_u64(seed)
}

/// Random blocks of `ty` whose scale fields are finite, moderate halves (random bytes there would
/// give infinities and NaNs that no real file holds).
pub fn random_matrix(rng: &mut ChaCha8Rng, ty: GgmlType, rows: usize, cols: usize) -> QMatrix {
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

pub fn random_x(rng: &mut ChaCha8Rng, n: usize) -> Vec<f32> {
    (0..n).map(|_| rng.random_range(-2f32..2.0)).collect()
}

/// `Σ_k |x_k·w_k|` per output: the scale float rounding of a dot product is relative to.
pub fn magnitudes(x: &[f32], w: &QMatrix) -> Vec<f32> {
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

pub const TYPES: [GgmlType; 8] = [
    GgmlType::F32,
    GgmlType::F16,
    GgmlType::BF16,
    GgmlType::Q8_0,
    GgmlType::Q4_0,
    GgmlType::Q4_1,
    GgmlType::Q4_K,
    GgmlType::Q6_K,
];

/// Asserts that `got` (a kernel's `x·Wᵀ`) is within a few ulps of the sum of magnitudes of the
/// reference product: kernels only reorder the sum (and factor a block's scale out of it, or let
/// the shader compiler fuse a dequantization's multiply-add).
pub fn assert_matches_reference(got: &[f32], x: &[f32], w: &QMatrix, what: &str) {
    let mut want = vec![f32::NAN; got.len()];
    reference::matmul(x, w, &mut want).unwrap();
    let scale = magnitudes(x, w);
    for (k, ((g, r), s)) in got.iter().zip(&want).zip(&scale).enumerate() {
        let tol = 4e-6 * s + 1e-6;
        assert!(
            (g - r).abs() <= tol,
            "{what}, output {k}: kernel {g}, reference {r} (tol {tol})"
        );
    }
}
