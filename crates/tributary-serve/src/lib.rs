//! The OpenLoRA engine, a piece at a time. [`AdapterStore`], which registers adapters
//! without loading them, loads each on first use (verifying its content hash), and keeps the
//! resident set within byte budgets on two tiers — device (the model's SGMV pool) and host
//! (parsed weights) — evicting the least recently used unpinned adapter first; and [`Engine`],
//! continuous batching over the model's paged KV cache with a bounded queue and cancellation.
//!
//! Nothing here needs an async runtime or the OS clock, so the engine compiles for wasm32 and the
//! same store can serve a tab or an edge worker; the HTTP server wraps it.

mod engine;
#[cfg(not(target_arch = "wasm32"))]
mod fetch;
pub mod openai;
mod store;

pub use engine::{Engine, EngineConfig, EngineError, EngineMetrics, Event, Request, RequestId};
#[cfg(not(target_arch = "wasm32"))]
pub use fetch::{FetchError, fetch_adapter, resolve_url};
pub use store::{AdapterSource, AdapterStore, Budgets, StoreError, StoreMetrics, content_hash};
