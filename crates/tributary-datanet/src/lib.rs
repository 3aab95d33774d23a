//! Datanets: named, versioned collections of data contributions. Each contribution is signed
//! (EIP-712) by its contributor over its content hash, the datanet and its license; a validator
//! address accepts or rejects it with a signed review; a snapshot freezes the accepted set at a
//! version under a Merkle root (OpenZeppelin StandardMerkleTree, like receipt batches), so a
//! receipt's `datanetRoots` name exactly the data attribution ran against, and a contributor can
//! prove membership. Stored in SQLite.

mod minhash;
mod signed;
mod store;

pub use signed::{Contribution as ContributionMessage, Review, SignedReview, Submission, domain};
pub use store::{
    Contribution, DatanetError, ImportReport, Refusal, Snapshot, Status, Store, Summary,
    contribution_leaf,
};
