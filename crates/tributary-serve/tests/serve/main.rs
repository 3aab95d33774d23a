//! tributary-serve's integration tests in one binary: each instantiated the model's generic code
//! again and was linked apart (see tributary-model's `tests/cpu`).

mod common;
mod engine;
mod openai;
mod store;
