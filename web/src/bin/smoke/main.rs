//! JavaScript bindings for the browser smoke pages and their Playwright tests: the WGSL kernels
//! of `tributary-sgmv` (matvec and SGMV, against the same CPU references the native tests use) and
//! the `tributary-model` transformer on burn's `Wgpu` backend over the tab's WebGPU device.
//!
//! A binary of the app's package rather than a crate of its own: built with the same dependencies
//! and features as the app and its worker, its wasm32 release build shares every compiled
//! dependency with trunk's build of the app instead of compiling burn and wgpu a second time.

#[cfg(target_arch = "wasm32")]
mod kernels;
#[cfg(target_arch = "wasm32")]
mod model;
#[cfg(target_arch = "wasm32")]
mod sgmv;

/// Nothing to start: the pages call the exports once the module is initialised.
fn main() {}
