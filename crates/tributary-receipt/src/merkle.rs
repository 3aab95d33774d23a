//! Batches of receipts under one Merkle root, built the way OpenZeppelin's `StandardMerkleTree`
//! builds them, so Solidity's `MerkleProof.verify` and `@openzeppelin/merkle-tree` accept our roots
//! and proofs: leaves are `keccak256(keccak256(abi.encode(values)))` (double-hashed so a leaf can
//! never pass for an inner node), pairs are hashed in sorted order (proofs carry no left/right
//! flags), leaves are sorted by hash, and the tree is a complete binary tree stored as an array
//! with the leaves at its end in reverse order.

use alloy::primitives::{B256, keccak256};
use alloy::sol_types::SolValue;

/// The leaf for a value already ABI-encoded as `abi.encode(values...)`.
pub fn leaf_hash_encoded(abi_encoded: &[u8]) -> B256 {
    keccak256(keccak256(abi_encoded))
}

/// The leaf of a receipt in a batch: its EIP-712 digest, encoded as `["bytes32"]`.
pub fn receipt_leaf(digest: B256) -> B256 {
    leaf_hash_encoded(&(digest,).abi_encode_params())
}

/// OpenZeppelin's `_hashPair`: the smaller hash first.
pub fn hash_pair(a: B256, b: B256) -> B256 {
    let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
    let mut both = [0u8; 64];
    both[..32].copy_from_slice(lo.as_slice());
    both[32..].copy_from_slice(hi.as_slice());
    keccak256(both)
}

/// The root a leaf and its proof lead to (`MerkleProof.processProof`).
pub fn process_proof(leaf: B256, proof: &[B256]) -> B256 {
    proof
        .iter()
        .fold(leaf, |node, sibling| hash_pair(node, *sibling))
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MerkleError {
    #[error("a Merkle tree needs at least one leaf")]
    Empty,
    #[error("leaf {0} is not in the tree")]
    NoSuchLeaf(B256),
}

/// A built tree over leaf hashes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MerkleTree {
    /// Node `i` has children `2i + 1` and `2i + 2`; the root is node 0.
    nodes: Vec<B256>,
}

impl MerkleTree {
    /// Builds the tree over `leaves` (hashes, as from [`receipt_leaf`]), sorted as
    /// `StandardMerkleTree.of(.., { sortLeaves: true })` sorts them.
    pub fn new(mut leaves: Vec<B256>) -> Result<Self, MerkleError> {
        if leaves.is_empty() {
            return Err(MerkleError::Empty);
        }
        leaves.sort();
        let n = leaves.len();
        let mut nodes = vec![B256::ZERO; 2 * n - 1];
        let len = nodes.len();
        for (i, leaf) in leaves.into_iter().enumerate() {
            nodes[len - 1 - i] = leaf;
        }
        for i in (0..len - n).rev() {
            nodes[i] = hash_pair(nodes[2 * i + 1], nodes[2 * i + 2]);
        }
        Ok(Self { nodes })
    }

    pub fn root(&self) -> B256 {
        self.nodes[0]
    }

    /// Number of leaves.
    pub fn len(&self) -> usize {
        self.nodes.len().div_ceil(2)
    }

    pub fn is_empty(&self) -> bool {
        false
    }

    /// The sibling hashes from `leaf` up to the root.
    pub fn proof(&self, leaf: B256) -> Result<Vec<B256>, MerkleError> {
        let first_leaf = self.nodes.len() - self.len();
        let mut i = self.nodes[first_leaf..]
            .iter()
            .position(|n| *n == leaf)
            .map(|p| p + first_leaf)
            .ok_or(MerkleError::NoSuchLeaf(leaf))?;
        let mut proof = Vec::new();
        while i > 0 {
            let sibling = if i % 2 == 1 { i + 1 } else { i - 1 };
            proof.push(self.nodes[sibling]);
            i = (i - 1) / 2;
        }
        Ok(proof)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The `standard-v1` dump in OpenZeppelin's merkle-tree repository: the values "a" to "f"
    /// encoded as `["string"]` (../shared/DESIGN.md §7).
    #[test]
    fn openzeppelin_standard_v1_root() {
        let leaves = ["a", "b", "c", "d", "e", "f"]
            .map(|v| leaf_hash_encoded(&(v.to_owned(),).abi_encode_params()))
            .to_vec();
        let tree = MerkleTree::new(leaves.clone()).unwrap();
        assert_eq!(
            tree.root().to_string(),
            "0x6deb52b5da8fd108f79fab00341f38d2587896634c646ee52e49f845680a70c8"
        );
        for leaf in leaves {
            let proof = tree.proof(leaf).unwrap();
            assert_eq!(process_proof(leaf, &proof), tree.root());
        }
    }

    #[test]
    fn one_leaf_is_its_own_root() {
        let leaf = receipt_leaf(B256::repeat_byte(7));
        let tree = MerkleTree::new(vec![leaf]).unwrap();
        assert_eq!(tree.root(), leaf);
        assert!(tree.proof(leaf).unwrap().is_empty());
        assert_eq!(MerkleTree::new(vec![]), Err(MerkleError::Empty));
        assert_eq!(
            tree.proof(B256::ZERO),
            Err(MerkleError::NoSuchLeaf(B256::ZERO))
        );
    }
}
