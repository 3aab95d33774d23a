// SPDX-License-Identifier: MIT OR Apache-2.0
pragma solidity ^0.8.28;

import {Ownable} from "@openzeppelin/contracts/access/Ownable.sol";
import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";
import {MerkleProof} from "@openzeppelin/contracts/utils/cryptography/MerkleProof.sol";

/// @notice Pays contributors per epoch from a Merkle root of (account, amount) claims, built as
/// an OpenZeppelin StandardMerkleTree over ["address", "uint256"]. The owner publishes an epoch
/// and funds it in the same call; each claim pays once.
contract RewardDistributor is Ownable {
    using SafeERC20 for IERC20;

    IERC20 public immutable token;
    mapping(uint64 epoch => bytes32 root) public epochRoots;
    mapping(uint64 epoch => uint256 amount) public unclaimed;
    mapping(uint64 epoch => mapping(address account => bool)) public claimed;

    event EpochPublished(uint64 indexed epoch, bytes32 root, uint256 total);
    event Claimed(uint64 indexed epoch, address indexed account, uint256 amount);

    error EpochExists(uint64 epoch);
    error UnknownEpoch(uint64 epoch);
    error EmptyRoot();
    error AlreadyClaimed(uint64 epoch, address account);
    error InvalidProof();
    error OverFunded(uint64 epoch, uint256 amount, uint256 left);

    constructor(address owner, IERC20 token_) Ownable(owner) {
        token = token_;
    }

    function publishEpoch(uint64 epoch, bytes32 root, uint256 total) external onlyOwner {
        if (root == bytes32(0)) revert EmptyRoot();
        if (epochRoots[epoch] != bytes32(0)) revert EpochExists(epoch);
        epochRoots[epoch] = root;
        unclaimed[epoch] = total;
        token.safeTransferFrom(msg.sender, address(this), total);
        emit EpochPublished(epoch, root, total);
    }

    function claim(uint64 epoch, address account, uint256 amount, bytes32[] calldata proof) external {
        bytes32 root = epochRoots[epoch];
        if (root == bytes32(0)) revert UnknownEpoch(epoch);
        if (claimed[epoch][account]) revert AlreadyClaimed(epoch, account);
        bytes32 leaf = keccak256(bytes.concat(keccak256(abi.encode(account, amount))));
        if (!MerkleProof.verifyCalldata(proof, root, leaf)) revert InvalidProof();
        uint256 left = unclaimed[epoch];
        if (amount > left) revert OverFunded(epoch, amount, left);
        claimed[epoch][account] = true;
        unclaimed[epoch] = left - amount;
        token.safeTransfer(account, amount);
        emit Claimed(epoch, account, amount);
    }
}
