//! The receipt as EIP-712 typed data. The struct definitions below are the whole format: their
//! EIP-712 type string is what wallets (and viem's `signTypedData`) hash, and their ABI encoding
//! is what a contract would decode.

use alloy::primitives::{Address, B256, Signature, U256};
use alloy::sol_types::{Eip712Domain, SolStruct};
use serde::{Deserialize, Serialize};

alloy::sol! {
    /// One contribution's share of an answer.
    #[derive(Debug, PartialEq, Eq, Serialize, Deserialize)]
    struct Attribution {
        /// The datanet contribution (its content hash).
        bytes32 contributionId;
        /// Who is paid for it.
        address contributor;
        /// Share of the answer, in parts per million.
        uint32 weightPpm;
        /// How it was found: [`METHOD_SPAN`] or [`METHOD_GRADIENT`].
        uint8 method;
    }

    /// What a node signs for one answer.
    #[derive(Debug, PartialEq, Eq, Serialize, Deserialize)]
    struct Receipt {
        /// The node's signing address.
        address node;
        /// keccak256 of the base model's weights manifest.
        bytes32 baseModel;
        /// keccak256 of the adapter's files, or zero for the base model alone.
        bytes32 adapter;
        /// keccak256 of the prompt's UTF-8 bytes.
        bytes32 prompt;
        /// keccak256 of the output's UTF-8 bytes.
        bytes32 output;
        /// Merkle roots of the datanet snapshots attribution ran against.
        bytes32[] datanetRoots;
        Attribution[] attributions;
        /// The smallest weight reported, in parts per million (from `AttributionParams`).
        uint32 thresholdPpm;
        /// Seconds since the Unix epoch.
        uint64 timestamp;
        /// Unique per node, so two equal answers still have distinct receipts.
        uint64 nonce;
    }
}

/// Suffix-array span tracing (large models).
pub const METHOD_SPAN: u8 = 0;
/// Gradient influence (small models).
pub const METHOD_GRADIENT: u8 = 1;
/// The whole answer, in parts per million.
pub const PPM: u64 = 1_000_000;

/// The EIP-712 domain: a receipt is bound to one chain and one anchor contract.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Domain {
    pub chain_id: u64,
    /// The `ReceiptAnchor` contract (EIP-712's `verifyingContract`).
    pub anchor: Address,
}

impl Domain {
    pub const NAME: &'static str = "Tributary";
    pub const VERSION: &'static str = "1";

    pub fn eip712(&self) -> Eip712Domain {
        Eip712Domain::new(
            Some(Self::NAME.into()),
            Some(Self::VERSION.into()),
            Some(U256::from(self.chain_id)),
            Some(self.anchor),
            None,
        )
    }
}

impl Receipt {
    /// The EIP-712 digest a node signs and a batch commits to.
    pub fn digest(&self, domain: &Domain) -> B256 {
        self.eip712_signing_hash(&domain.eip712())
    }
}

/// A receipt with its domain and the node's signature, as exchanged in JSON.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SignedReceipt {
    pub receipt: Receipt,
    pub domain: Domain,
    /// 65 bytes: r, s, v (27/28 or 0/1).
    pub signature: alloy::primitives::Bytes,
}

impl SignedReceipt {
    pub fn digest(&self) -> B256 {
        self.receipt.digest(&self.domain)
    }

    pub fn signature(&self) -> Result<Signature, alloy::primitives::SignatureError> {
        Signature::from_raw(&self.signature)
    }
}

#[cfg(feature = "sign")]
mod signing {
    use alloy::signers::SignerSync;
    use alloy::signers::local::PrivateKeySigner;

    use super::*;

    impl Receipt {
        /// Signs as `signer`, whose address must be the receipt's `node`.
        pub fn sign(
            self,
            domain: Domain,
            signer: &PrivateKeySigner,
        ) -> Result<SignedReceipt, alloy::signers::Error> {
            if signer.address() != self.node {
                return Err(alloy::signers::Error::other(format!(
                    "the receipt names node {} but the key is {}'s",
                    self.node,
                    signer.address()
                )));
            }
            let signature = signer.sign_hash_sync(&self.digest(&domain))?;
            Ok(SignedReceipt {
                receipt: self,
                domain,
                signature: signature.as_bytes().to_vec().into(),
            })
        }
    }
}
