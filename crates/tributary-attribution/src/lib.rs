//! Proof of Attribution, span method (infini-gram / OLMoTrace): suffix-array indexes over the
//! token ids of datanet snapshots ([`Shard`], several as one [`Index`]), traced for the spans of a
//! model's output that occur verbatim in the data ([`trace`]), and the evidence turned into the
//! receipt's attribution entries by the threshold-and-split rule shared with the gradient method
//! ([`threshold`], [`split_spans`]).

mod index;
mod snapshot;
mod split;
mod trace;

pub use index::{IndexError, MAX_TOKEN, Match, Meta, Shard};
pub use snapshot::{
    SHARD_TOKENS, SnapshotMeta, build_snapshot, open_snapshot, read_snapshot_meta, reuse,
    snapshot_dir,
};
pub use split::{Share, Source, Split, split_spans, threshold};
pub use trace::{Index, Span, SpanParams, trace};
