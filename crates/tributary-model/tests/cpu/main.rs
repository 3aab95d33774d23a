//! tributary-model's CPU tests, in one test binary: every binary instantiates burn's generic
//! tensor code for the whole model again, ~40 s of compiling each on CI's two cores.

#[path = "../common/mod.rs"]
mod common;

mod bad_input;
mod batch;
mod chat;
mod hf_parity;
mod smollm2;
