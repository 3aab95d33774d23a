//! tributary-receipt's integration tests in one binary, one link of alloy instead of two.

mod vectors;
mod verify;
