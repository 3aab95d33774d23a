// SPDX-License-Identifier: MIT OR Apache-2.0
pragma solidity ^0.8.28;

import {ERC20} from "@openzeppelin/contracts/token/ERC20/ERC20.sol";
import {Ownable} from "@openzeppelin/contracts/access/Ownable.sol";

/// @notice The ERC-20 rewards are paid in on a development chain; a deployment names its own.
contract RewardToken is ERC20, Ownable {
    constructor(address owner) ERC20("Tributary Reward", "TRIB") Ownable(owner) {}

    function mint(address to, uint256 amount) external onlyOwner {
        _mint(to, amount);
    }
}
