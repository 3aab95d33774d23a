// SPDX-License-Identifier: MIT OR Apache-2.0
pragma solidity ^0.8.28;

import {MerkleProof} from "@openzeppelin/contracts/utils/cryptography/MerkleProof.sol";
import {NodeRegistry} from "./NodeRegistry.sol";

/// @notice Merkle roots of receipt batches, by node and per-node sequence number.
/// @dev `roots` must stay the first state variable: wallets prove `roots[node][sequence]` with
/// eth_getProof at storage slot 0 (tributary-receipt's ROOTS_SLOT; checked against the compiler's
/// storage layout by tributary-chain's tests). Sequences make a node's batches gap-free, so a
/// missing batch is visible.
contract ReceiptAnchor {
    mapping(address node => mapping(uint64 sequence => bytes32 root)) public roots;
    mapping(address node => uint64) public nextSequence;

    NodeRegistry public immutable registry;

    event BatchAnchored(address indexed node, uint64 indexed sequence, bytes32 root, uint32 receipts);

    error NotRegisteredNode(address caller);
    error WrongSequence(uint64 expected, uint64 got);
    error EmptyBatch();

    constructor(NodeRegistry registry_) {
        registry = registry_;
    }

    function anchor(uint64 sequence, bytes32 root, uint32 receipts) external {
        if (!registry.isNode(msg.sender)) revert NotRegisteredNode(msg.sender);
        uint64 expected = nextSequence[msg.sender];
        if (sequence != expected) revert WrongSequence(expected, sequence);
        if (root == bytes32(0) || receipts == 0) revert EmptyBatch();
        roots[msg.sender][sequence] = root;
        nextSequence[msg.sender] = expected + 1;
        emit BatchAnchored(msg.sender, sequence, root, receipts);
    }

    /// @notice Whether a receipt's EIP-712 digest is in an anchored batch (leaves are
    /// OpenZeppelin StandardMerkleTree leaves over ["bytes32"]).
    function contains(address node, uint64 sequence, bytes32 digest, bytes32[] calldata proof)
        external
        view
        returns (bool)
    {
        bytes32 root = roots[node][sequence];
        if (root == bytes32(0)) return false;
        bytes32 leaf = keccak256(bytes.concat(keccak256(abi.encode(digest))));
        return MerkleProof.verifyCalldata(proof, root, leaf);
    }
}
