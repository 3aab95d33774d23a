//! Proof of Attribution. Span method (infini-gram / OLMoTrace): suffix-array indexes over the
//! token ids of datanet snapshots ([`Shard`], several as one [`Index`]), traced for the spans of a
//! model's output that occur verbatim in the data ([`trace`]). Gradient method (LoGra-style, for
//! LoRA-tuned models): projected per-example LoRA gradients in a store per snapshot, scored
//! against a query's preconditioned gradient ([`gradient`]). Both turn their evidence into the
//! receipt's attribution entries by one threshold-and-split rule ([`threshold`], [`split_masses`]).

pub mod gradient;
mod index;
mod snapshot;
mod split;
mod trace;

pub use index::{IndexError, MAX_TOKEN, Match, Meta, Shard};
pub use snapshot::{
    SHARD_TOKENS, SnapshotMeta, build_snapshot, open_snapshot, read_snapshot_meta, reuse,
    snapshot_dir,
};
pub use split::{Share, Source, Split, split_masses, split_spans, threshold};
pub use trace::{Index, Span, SpanParams, trace};
