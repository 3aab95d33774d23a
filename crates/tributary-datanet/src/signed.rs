//! What contributors and validators sign: EIP-712 typed data, so a wallet shows them what they
//! are signing, and the same verifier code (alloy) checks them here.

use alloy::primitives::{Address, B256, Bytes, Signature, keccak256};
use alloy::sol_types::{Eip712Domain, SolStruct};
use serde::{Deserialize, Serialize};

alloy::sol! {
    /// A contributor's claim to one piece of content in one datanet, under a license.
    #[derive(Debug, PartialEq, Eq)]
    struct Contribution {
        string datanet;
        bytes32 contentHash;
        string license;
    }

    /// A validator's curation decision on one contribution.
    #[derive(Debug, PartialEq, Eq)]
    struct Review {
        string datanet;
        bytes32 contentHash;
        bool accepted;
        string reason;
    }
}

/// No chain id: contributions and reviews are off-chain records; the datanet name inside the
/// message keeps a signature from being replayed into another datanet.
pub fn domain() -> Eip712Domain {
    Eip712Domain::new(
        Some("Tributary Datanet".into()),
        Some("1".into()),
        None,
        None,
        None,
    )
}

/// One contribution as submitted: the content, who contributes it, the license, and the
/// contributor's signature over [`Contribution`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Submission {
    pub content: String,
    pub contributor: Address,
    pub license: String,
    /// 65 bytes; absent means unsigned, which is refused.
    #[serde(default)]
    pub signature: Option<Bytes>,
}

impl Submission {
    pub fn content_hash(&self) -> B256 {
        keccak256(self.content.as_bytes())
    }

    pub fn message(&self, datanet: &str) -> Contribution {
        Contribution {
            datanet: datanet.to_owned(),
            contentHash: self.content_hash(),
            license: self.license.clone(),
        }
    }
}

/// A review as submitted by the validator.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SignedReview {
    pub content_hash: B256,
    pub accepted: bool,
    /// Why, for a rejection (may be empty for an acceptance).
    #[serde(default)]
    pub reason: String,
    pub signature: Bytes,
}

/// Who signed `message`, or why no one can be said to.
pub(crate) fn recover<T: SolStruct>(message: &T, signature: &[u8]) -> Result<Address, String> {
    let signature = Signature::from_raw(signature).map_err(|e| format!("bad signature: {e}"))?;
    signature
        .recover_address_from_prehash(&message.eip712_signing_hash(&domain()))
        .map_err(|e| format!("bad signature: {e}"))
}

#[cfg(feature = "sign")]
mod signing {
    use alloy::signers::SignerSync;
    use alloy::signers::local::PrivateKeySigner;

    use super::*;

    impl Submission {
        /// Signs `content` for `datanet` as `key`'s address.
        pub fn sign(
            datanet: &str,
            content: String,
            license: &str,
            key: &PrivateKeySigner,
        ) -> Result<Self, alloy::signers::Error> {
            let mut s = Self {
                content,
                contributor: key.address(),
                license: license.to_owned(),
                signature: None,
            };
            let hash = s.message(datanet).eip712_signing_hash(&domain());
            s.signature = Some(key.sign_hash_sync(&hash)?.as_bytes().to_vec().into());
            Ok(s)
        }
    }

    impl SignedReview {
        pub fn sign(
            datanet: &str,
            content_hash: B256,
            accepted: bool,
            reason: &str,
            key: &PrivateKeySigner,
        ) -> Result<Self, alloy::signers::Error> {
            let message = Review {
                datanet: datanet.to_owned(),
                contentHash: content_hash,
                accepted,
                reason: reason.to_owned(),
            };
            let hash = message.eip712_signing_hash(&domain());
            Ok(Self {
                content_hash,
                accepted,
                reason: reason.to_owned(),
                signature: key.sign_hash_sync(&hash)?.as_bytes().to_vec().into(),
            })
        }
    }
}
