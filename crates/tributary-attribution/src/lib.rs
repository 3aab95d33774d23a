//! Proof of Attribution, span method (infini-gram / OLMoTrace): suffix-array indexes over the
//! token ids of datanet snapshots, queried for the longest spans of a model's output that occur
//! verbatim in the data. So far: the index shard ([`Shard`]) and its queries.

mod index;

pub use index::{IndexError, MAX_TOKEN, Match, Meta, Shard};
