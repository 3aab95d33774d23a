//! The in-tab app: a leptos page ([`app`]) and a dedicated Web Worker ([`worker`]) that runs the
//! base model and LoRA adapters with the same `tributary-model`, `tributary-sgmv` and
//! `tributary-serve` crates as the node — on burn's `Wgpu` backend over WebGPU, or on its `NdArray`
//! backend in wasm when the browser has no WebGPU.
//!
//! Inference lives in a worker so decoding never blocks the page; the page keeps the UI, the
//! node's API and receipt verification. [`protocol`] is what they say to each other.

pub mod models;
pub mod protocol;

#[cfg(target_arch = "wasm32")]
pub mod app;
#[cfg(target_arch = "wasm32")]
pub mod worker;
