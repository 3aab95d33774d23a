//! Weight matrices that stay in their GGUF block format ([`QMatrix`]) and the CPU product
//! `y = x·Wᵀ` over them: [`matmul`], dequantizing on the fly and accumulating in f32, and
//! [`reference`], the plain definition it is checked against.
//!
//! This is its own crate, apart from `tributary-quant` (the burn backends and WGSL kernels), for
//! one reason: it is the hot loop of every model test on the CPU and must be compiled at
//! opt-level 3 even in test builds, while the burn glue over it compiled at level 3 took ~230 s of
//! a cold test build on two cores.

mod cpu;
pub mod reference;

use std::fmt;
use std::ops::Range;
use std::sync::Arc;

pub use tributary_gguf::GgmlType;

pub use cpu::{matmul, matmul_threads};

/// What is wrong with a quantized matrix or the operands of a product.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QuantError {
    #[error(
        "{what}: rows of {cols} {ty} elements are not whole blocks of {block} (K must be a \
         multiple of the block size)"
    )]
    NotBlockAligned {
        what: String,
        ty: GgmlType,
        cols: usize,
        block: usize,
    },
    #[error("{what}: {rows}×{cols} {ty} needs {expected} bytes, got {actual}")]
    Length {
        what: String,
        ty: GgmlType,
        rows: usize,
        cols: usize,
        expected: usize,
        actual: usize,
    },
    #[error("{what}: {reason}")]
    Shape { what: String, reason: String },
}

/// Shared, immutable bytes: a memory-mapped file, a fetched buffer, a `Vec`.
pub type Bytes = Arc<dyn AsRef<[u8]> + Send + Sync>;

/// A `[rows, cols]` weight matrix (PyTorch's `[out, in]`) in a GGUF tensor type, each row a run of
/// whole blocks. The bytes are shared, not copied: natively they are a range of the memory-mapped
/// GGUF file, so the loaded model costs the file's pages and nothing more.
#[derive(Clone)]
pub struct QMatrix {
    name: String,
    ty: GgmlType,
    rows: usize,
    cols: usize,
    row_bytes: usize,
    data: Bytes,
    range: Range<usize>,
}

impl fmt::Debug for QMatrix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("QMatrix")
            .field("name", &self.name)
            .field("ty", &self.ty)
            .field("rows", &self.rows)
            .field("cols", &self.cols)
            .field("bytes", &self.range.len())
            .finish()
    }
}

impl QMatrix {
    /// The matrix stored at `range` of `data`; `name` (a tensor name) only appears in errors.
    pub fn new(
        name: impl Into<String>,
        ty: GgmlType,
        rows: usize,
        cols: usize,
        data: Bytes,
        range: Range<usize>,
    ) -> Result<Self, QuantError> {
        let name = name.into();
        let block = ty.block_size();
        if cols == 0 || !cols.is_multiple_of(block) {
            return Err(QuantError::NotBlockAligned {
                what: name,
                ty,
                cols,
                block,
            });
        }
        let row_bytes = cols / block * ty.type_size();
        let expected = row_bytes.checked_mul(rows);
        let actual = range.len();
        let in_bounds = range.start <= range.end && range.end <= (*data).as_ref().len();
        if expected != Some(actual) || !in_bounds {
            return Err(QuantError::Length {
                what: name,
                ty,
                rows,
                cols,
                expected: expected.unwrap_or(usize::MAX),
                actual: if in_bounds { actual } else { 0 },
            });
        }
        Ok(Self {
            name,
            ty,
            rows,
            cols,
            row_bytes,
            data,
            range,
        })
    }

    /// A matrix owning its bytes (tests, weights made in memory).
    pub fn from_vec(
        name: impl Into<String>,
        ty: GgmlType,
        rows: usize,
        cols: usize,
        bytes: Vec<u8>,
    ) -> Result<Self, QuantError> {
        let len = bytes.len();
        Self::new(name, ty, rows, cols, Arc::new(bytes), 0..len)
    }

    /// A copy whose row `r` is this matrix's row `source(r)`: llama.cpp stores the rows of the q
    /// and k projections in its rotary order, and a loader puts them back in Hugging Face's.
    /// `source` must be a permutation of `0..rows`; anything else is a typed error.
    pub fn permute_rows(
        &self,
        source: impl Fn(usize) -> Option<usize>,
    ) -> Result<Self, QuantError> {
        let mut seen = vec![false; self.rows];
        let mut bytes = Vec::with_capacity(self.range.len());
        for r in 0..self.rows {
            let s = source(r)
                .filter(|&s| s < self.rows && !seen[s])
                .ok_or_else(|| QuantError::Shape {
                    what: self.name.clone(),
                    reason: format!("row order is not a permutation (at row {r})"),
                })?;
            seen[s] = true;
            bytes.extend_from_slice(self.row(s));
        }
        Self::from_vec(self.name.clone(), self.ty, self.rows, self.cols, bytes)
    }

    /// Row `id` (an `i64` as burn's integer tensors hold it) dequantized into `out`.
    pub fn dequantize_row(&self, id: i64, out: &mut [f32]) -> Result<(), QuantError> {
        let r = usize::try_from(id)
            .ok()
            .filter(|&r| r < self.rows)
            .ok_or_else(|| QuantError::Shape {
                what: self.name.clone(),
                reason: format!("row {id} out of range (the matrix has {} rows)", self.rows),
            })?;
        tributary_gguf::dequantize_into(self.ty, self.row(r), out).map_err(|e| QuantError::Shape {
            what: self.name.clone(),
            reason: e.to_string(),
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn ggml_type(&self) -> GgmlType {
        self.ty
    }

    /// Output features (PyTorch's `out_features`).
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Input features (`in_features`).
    pub fn cols(&self) -> usize {
        self.cols
    }

    /// The matrix's bytes as stored.
    pub fn bytes(&self) -> &[u8] {
        &(*self.data).as_ref()[self.range.clone()]
    }

    /// Bytes of one row.
    pub fn row_bytes(&self) -> usize {
        self.row_bytes
    }

    fn row(&self, r: usize) -> &[u8] {
        &self.bytes()[r * self.row_bytes..(r + 1) * self.row_bytes]
    }

    /// `m`, the number of rows of `x`, for a product writing `y`; errors name the matrix.
    fn check(&self, x: &[f32], y: &[f32]) -> Result<usize, QuantError> {
        let shape = |reason: String| QuantError::Shape {
            what: self.name.clone(),
            reason,
        };
        if !x.len().is_multiple_of(self.cols) {
            return Err(shape(format!(
                "x has {} values, not a whole number of rows of {}",
                x.len(),
                self.cols
            )));
        }
        let m = x.len() / self.cols;
        if y.len() != m * self.rows {
            return Err(shape(format!(
                "y has {} values, {m} rows of {} need {}",
                y.len(),
                self.rows,
                m * self.rows
            )));
        }
        Ok(m)
    }
}
