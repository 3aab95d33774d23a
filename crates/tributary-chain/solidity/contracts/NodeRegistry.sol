// SPDX-License-Identifier: MIT OR Apache-2.0
pragma solidity ^0.8.28;

import {Ownable} from "@openzeppelin/contracts/access/Ownable.sol";

/// @notice Which node addresses may anchor receipt batches. Governed by its owner.
contract NodeRegistry is Ownable {
    mapping(address node => bool) public isNode;

    event NodeAdded(address indexed node);
    event NodeRemoved(address indexed node);

    error AlreadyNode(address node);
    error NotNode(address node);

    constructor(address owner) Ownable(owner) {}

    function addNode(address node) external onlyOwner {
        if (isNode[node]) revert AlreadyNode(node);
        isNode[node] = true;
        emit NodeAdded(node);
    }

    function removeNode(address node) external onlyOwner {
        if (!isNode[node]) revert NotNode(node);
        isNode[node] = false;
        emit NodeRemoved(node);
    }
}
