//! Public vectors: EIP-712's own "Ether Mail" example (digest and signature from the EIP), which
//! pins our domain separator, struct hashing and signing to the standard's reference.

use alloy::primitives::{Address, U256, address, b256, keccak256};
use alloy::signers::SignerSync;
use alloy::signers::local::PrivateKeySigner;
use alloy::sol_types::{Eip712Domain, SolStruct};

alloy::sol! {
    struct Person {
        string name;
        address wallet;
    }
    struct Mail {
        Person from;
        Person to;
        string contents;
    }
}

#[test]
fn ether_mail_digest_and_signature() {
    let domain = Eip712Domain::new(
        Some("Ether Mail".into()),
        Some("1".into()),
        Some(U256::from(1)),
        Some(address!("CcCCccccCCCCcCCCCCCcCcCccCcCCCcCcccccccC")),
        None,
    );
    let mail = Mail {
        from: Person {
            name: "Cow".into(),
            wallet: address!("CD2a3d9F938E13CD947Ec05AbC7FE734Df8DD826"),
        },
        to: Person {
            name: "Bob".into(),
            wallet: address!("bBbBBBBbbBBBbbbBbbBbbbbBBbBbbbbBbBbbBBbB"),
        },
        contents: "Hello, Bob!".into(),
    };
    let digest = mail.eip712_signing_hash(&domain);
    assert_eq!(
        digest,
        b256!("be609aee343fb3c4b28e1df9e632fca64fcfaede20f02e86244efddf30957bd2")
    );
    let key = PrivateKeySigner::from_bytes(&keccak256("cow")).unwrap();
    let cow: Address = address!("CD2a3d9F938E13CD947Ec05AbC7FE734Df8DD826");
    assert_eq!(key.address(), cow);
    let signature = key.sign_hash_sync(&digest).unwrap();
    assert_eq!(
        signature.r(),
        U256::from_be_bytes(
            b256!("4355c47d63924e8a72e509b65029052eb6c299d53a04e167c5775fd466751c9d").0
        )
    );
    assert_eq!(
        signature.s(),
        U256::from_be_bytes(
            b256!("07299936d304c153f6443dfa05f40ff007d72911b6f72307f996231605b91562").0
        )
    );
    assert!(signature.v(), "v = 28");
    assert_eq!(
        signature.recover_address_from_prehash(&digest).unwrap(),
        cow
    );
}
