// SPDX-License-Identifier: MIT OR Apache-2.0
pragma solidity ^0.8.28;

import {Ownable} from "@openzeppelin/contracts/access/Ownable.sol";

/// @notice The attribution threshold nodes must apply and how rewards are split between
/// contributors and the serving node, both in parts per million. Changed only by governance.
contract AttributionParams is Ownable {
    uint32 public constant PPM = 1_000_000;

    uint32 public thresholdPpm;
    uint32 public contributorSharePpm;

    event ThresholdChanged(uint32 previous, uint32 current);
    event RewardSplitChanged(uint32 previous, uint32 current);

    error OutOfRange(uint32 value);

    constructor(address owner, uint32 thresholdPpm_, uint32 contributorSharePpm_) Ownable(owner) {
        if (thresholdPpm_ > PPM) revert OutOfRange(thresholdPpm_);
        if (contributorSharePpm_ > PPM) revert OutOfRange(contributorSharePpm_);
        thresholdPpm = thresholdPpm_;
        contributorSharePpm = contributorSharePpm_;
    }

    function setThreshold(uint32 value) external onlyOwner {
        if (value > PPM) revert OutOfRange(value);
        emit ThresholdChanged(thresholdPpm, value);
        thresholdPpm = value;
    }

    function setRewardSplit(uint32 contributorShare) external onlyOwner {
        if (contributorShare > PPM) revert OutOfRange(contributorShare);
        emit RewardSplitChanged(contributorSharePpm, contributorShare);
        contributorSharePpm = contributorShare;
    }
}
