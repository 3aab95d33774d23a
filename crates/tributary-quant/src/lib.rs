//! Linear layers whose weights stay in their GGUF block format, on burn's backends: `y = x·Wᵀ`
//! with `W` quantized (Q4_1, Q4_0, Q8_0, Q4_K, Q6_K) or half precision (F16, BF16), dequantized
//! on the fly and accumulated in f32.
//!
//! The weights are never expanded to f32 in memory (a 135M-parameter Q4_1 model stays ~90 MB, not
//! 540), and the activations are never quantized: llama.cpp and candle quantize `x` to 8 bits
//! inside their dot products, which moves logits by ~0.6; here results stay within float
//! rounding of the f32 model that transformers dequantizes the same file into.
//!
//! The matrix type, the CPU kernel and the reference every kernel is checked against live in
//! `tributary-qmatmul` (re-exported here): [`reference`] is the plain definition (dequantize a row
//! with `tributary-gguf`, dot it in order), [`matmul`] the CPU kernel, used by the NdArray
//! backend; the WGSL kernels for burn's Wgpu backend are in this crate, beside their dispatch.

#[cfg(feature = "burn")]
mod backend;
#[cfg(feature = "wgpu")]
mod wgpu;

#[cfg(feature = "burn")]
pub use backend::{QuantBackend, QuantLinear};
pub use tributary_qmatmul::{
    Bytes, GgmlType, QMatrix, QuantError, matmul, matmul_threads, reference,
};
#[cfg(feature = "wgpu")]
pub use wgpu::{GEMV_MAX_ROWS, SCRATCH_BYTES, wgsl_kernels};
