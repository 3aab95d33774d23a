//! Benchmark scenarios shared by the criterion benches (`benches/`) and the report binaries
//! that `cargo xtask bench` runs, so both time the same work.

pub mod checkpoint;
pub mod sgmv;
