//! tributary-attribution's integration tests in one binary: each binary instantiated burn's and
//! the model's generic code again and was linked apart (see tributary-model's `tests/cpu`).

mod canaries;
mod common;
mod gradient;
mod index;
mod split;
