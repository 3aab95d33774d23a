//! The definition the kernels are checked against: each weight row dequantized by
//! `tributary-gguf` (bit-identical to ggml and gguf-py) and dotted with `x` in index order.

use crate::{QMatrix, QuantError};

/// `y[i, r] = Σ_k x[i, k] · W[r, k]`, `x` `[m, cols]`, `y` `[m, rows]`, row-major.
pub fn matmul(x: &[f32], w: &QMatrix, y: &mut [f32]) -> Result<(), QuantError> {
    let m = w.check(x, y)?;
    let mut row = vec![0f32; w.cols];
    for r in 0..w.rows {
        tributary_gguf::dequantize_into(w.ty, w.row(r), &mut row).map_err(|e| {
            QuantError::Shape {
                what: w.name.clone(),
                reason: e.to_string(),
            }
        })?;
        for i in 0..m {
            let xi = &x[i * w.cols..(i + 1) * w.cols];
            y[i * w.rows + r] = xi.iter().zip(&row).map(|(a, b)| a * b).sum();
        }
    }
    Ok(())
}
