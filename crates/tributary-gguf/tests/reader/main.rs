//! tributary-gguf's integration tests in one binary, one link instead of three.

mod common;
mod errors;
mod fuzz;
mod reference;
