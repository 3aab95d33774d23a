//! LoRA kernels for the OpenLoRA engine, written in WGSL so that one source runs natively through
//! wgpu (Vulkan; Mesa lavapipe in CI) and in a browser tab over WebGPU.
//!
//! Every kernel lives in a `.wgsl` file beside the Rust that dispatches it and a plain-Rust CPU
//! reference of the same operation; tests compare the two, and CPU devices run the reference.

mod context;
mod error;
pub mod matvec;

pub use context::GpuContext;
pub use error::GpuError;
pub use matvec::Matvec;
