//! LoRA kernels for the OpenLoRA engine: SGMV (segmented gather matrix-vector multiplication)
//! lets each segment of one batch use its own adapter, in one pass over the shared base model.
//!
//! The kernels are WGSL, so one source runs natively through wgpu (Vulkan; Mesa lavapipe in CI)
//! and in a browser tab over WebGPU, on the same device and queue as burn's `Wgpu` backend.
//! Every kernel lives in a `.wgsl` file beside the Rust that dispatches it, and [`reference`]
//! holds the same operation in plain Rust: tests compare the two, and CPU backends run it.

mod backend;
pub mod cases;
mod error;
mod lora;
pub mod pages;
pub mod plan;
pub mod reference;

#[cfg(feature = "wgpu")]
mod context;
#[cfg(feature = "wgpu")]
pub mod matvec;
#[cfg(feature = "wgpu")]
mod wgpu_pool;

pub use backend::{AdapterPool, HostPool, PoolOptions, SgmvBackend, TensorPool};
pub use error::SgmvError;
pub use lora::{AdapterId, AdapterMatrices, LoraMatrices, Segment, segments};

#[cfg(feature = "wgpu")]
pub use context::GpuContext;
#[cfg(feature = "wgpu")]
pub use error::GpuError;
#[cfg(feature = "wgpu")]
pub use matvec::Matvec;
#[cfg(feature = "wgpu")]
pub use wgpu_pool::{WgpuPool, wgsl_kernels};
