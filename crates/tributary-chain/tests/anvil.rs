//! The contracts on a real anvil (npm `@foundry-rs/anvil`, started on a free loopback port and
//! stopped by alloy's node bindings): receipts verified end to end to `Anchored` from
//! `eth_getProof`, Solidity's MerkleProof agreeing with our batch trees, reward claims, and every
//! access rule refused.

use alloy::eips::BlockNumberOrTag;
use alloy::network::EthereumWallet;
use alloy::node_bindings::{Anvil, AnvilInstance};
use alloy::primitives::{Address, B256, U256, keccak256};
use alloy::providers::{Provider, ProviderBuilder};
use alloy::signers::local::PrivateKeySigner;
use tributary_chain::contracts::{
    AttributionParams, NodeRegistry, ReceiptAnchor, RewardDistributor, RewardToken,
};
use tributary_chain::{
    Deployment, anchor_proof, anvil_path, claim_leaf, claims_tree, deploy, send,
};
use tributary_receipt::{
    Attribution, Domain, METHOD_SPAN, MerkleTree, Receipt, SignedReceipt, Trust, TrustedHeader,
    VerifyError, receipt_leaf, verify,
};

fn anvil() -> AnvilInstance {
    let path = anvil_path();
    assert!(
        path.exists(),
        "{} is missing: run `cargo xtask setup` (npm ci in crates/tributary-chain/solidity)",
        path.display()
    );
    Anvil::at(path).spawn()
}

fn signer(anvil: &AnvilInstance, i: usize) -> PrivateKeySigner {
    anvil.keys()[i].clone().into()
}

fn provider(anvil: &AnvilInstance, key: &PrivateKeySigner) -> impl Provider + Clone + use<> {
    ProviderBuilder::new()
        .wallet(EthereumWallet::from(key.clone()))
        .connect_http(anvil.endpoint_url())
}

async fn setup(anvil: &AnvilInstance) -> (impl Provider + Clone + use<>, Deployment) {
    let owner = signer(anvil, 0);
    let p = provider(anvil, &owner);
    let d = deploy(&p, owner.address(), 10_000, 800_000).await.unwrap();
    (p, d)
}

fn receipts(node: &PrivateKeySigner, domain: Domain, batch: u64, n: u64) -> Vec<SignedReceipt> {
    (0..n)
        .map(|k| {
            Receipt {
                node: node.address(),
                baseModel: keccak256("base"),
                adapter: keccak256("adapter"),
                prompt: keccak256(format!("prompt {batch} {k}")),
                output: keccak256(format!("output {batch} {k}")),
                datanetRoots: vec![keccak256("datanet")],
                attributions: vec![Attribution {
                    contributionId: keccak256(format!("contribution {k}")),
                    contributor: Address::repeat_byte(0x42),
                    weightPpm: 500_000,
                    method: METHOD_SPAN,
                }],
                thresholdPpm: 10_000,
                timestamp: 1_790_000_000,
                nonce: batch * 1000 + k,
            }
            .sign(domain, node)
            .unwrap()
        })
        .collect()
}

#[tokio::test]
async fn receipts_verify_to_anchored_from_eth_get_proof() {
    let anvil = anvil();
    let (owner, d) = setup(&anvil).await;
    let node = signer(&anvil, 1);
    let registry = NodeRegistry::new(d.registry, &owner);
    send(registry.addNode(node.address())).await.unwrap();

    let domain = Domain {
        chain_id: anvil.chain_id(),
        anchor: d.anchor,
    };
    let node_p = provider(&anvil, &node);
    let anchor = ReceiptAnchor::new(d.anchor, &node_p);
    let mut batches = Vec::new();
    for sequence in 0..2u64 {
        let signed = receipts(&node, domain, sequence, 5 + sequence);
        let tree =
            MerkleTree::new(signed.iter().map(|s| receipt_leaf(s.digest())).collect()).unwrap();
        let tx = send(anchor.anchor(sequence, tree.root(), signed.len() as u32))
            .await
            .unwrap();
        eprintln!(
            "gas: anchoring batch {sequence} of {} receipts: {}",
            signed.len(),
            tx.gas_used
        );
        batches.push((signed, tree));
    }

    for (sequence, (signed, tree)) in batches.iter().enumerate() {
        for s in signed {
            let leaf_proof = tree.proof(receipt_leaf(s.digest())).unwrap();
            // Solidity's MerkleProof agrees with our tree.
            assert!(
                anchor
                    .contains(
                        node.address(),
                        sequence as u64,
                        s.digest(),
                        leaf_proof.clone()
                    )
                    .call()
                    .await
                    .unwrap()
            );
            let (proof, hash) = anchor_proof(
                &node_p,
                d.anchor,
                node.address(),
                sequence as u64,
                tree.root(),
                leaf_proof,
                BlockNumberOrTag::Latest,
            )
            .await
            .unwrap();
            assert_eq!(
                verify(s, Some((&proof, &TrustedHeader { hash }))),
                Ok(Trust::Anchored)
            );
        }
    }

    let (signed, tree) = &batches[0];
    let s = &signed[0];
    let leaf_proof = tree.proof(receipt_leaf(s.digest())).unwrap();
    if std::env::var_os("TRIBUTARY_UPDATE_FIXTURES").is_some() {
        write_wallet_fixture(&node_p, &d, &node, signed, tree).await;
    }
    let node_address = node.address();
    let fetch = |contract: Address, sequence: u64, block: BlockNumberOrTag| {
        let (p, lp, root) = (&node_p, leaf_proof.clone(), tree.root());
        async move {
            anchor_proof(p, contract, node_address, sequence, root, lp, block)
                .await
                .unwrap()
        }
    };
    // A proof of the same slot of another contract.
    let (proof, hash) = fetch(d.registry, 0, BlockNumberOrTag::Latest).await;
    assert!(matches!(
        verify(s, Some((&proof, &TrustedHeader { hash }))),
        Err(VerifyError::WrongContract { .. })
    ));
    // The right contract, another batch's slot: it holds another root.
    let (proof, hash) = fetch(d.anchor, 1, BlockNumberOrTag::Latest).await;
    assert!(matches!(
        verify(s, Some((&proof, &TrustedHeader { hash }))),
        Err(VerifyError::RootNotStored { .. })
    ));
    // Before the batch was anchored (the block after deployment and registration).
    let anchored_at = node_p.get_block_number().await.unwrap() - 1;
    let (proof, hash) = fetch(d.anchor, 0, (anchored_at - 1).into()).await;
    assert!(matches!(
        verify(s, Some((&proof, &TrustedHeader { hash }))),
        Err(VerifyError::RootNotStored { .. })
    ));
    // A header the wallet does not trust.
    let (proof, _) = fetch(d.anchor, 0, BlockNumberOrTag::Latest).await;
    let other = node_p
        .get_block_by_number(BlockNumberOrTag::Earliest)
        .await
        .unwrap()
        .unwrap()
        .header
        .hash;
    assert!(matches!(
        verify(s, Some((&proof, &TrustedHeader { hash: other }))),
        Err(VerifyError::UntrustedHeader { .. })
    ));
}

/// pkg/test/fixtures/anchored.json: one receipt of this batch with its proofs from this anvil,
/// for the wallet package's tests in Node and Chromium (and tributary-receipt's). The node key is
/// anvil's public development key, so interop tests can sign the same receipt with viem.
async fn write_wallet_fixture(
    p: &impl Provider,
    d: &Deployment,
    node: &PrivateKeySigner,
    signed: &[SignedReceipt],
    tree: &MerkleTree,
) {
    let s = &signed[0];
    let leaf_proof = tree.proof(receipt_leaf(s.digest())).unwrap();
    let (proof, hash) = anchor_proof(
        p,
        d.anchor,
        node.address(),
        0,
        tree.root(),
        leaf_proof,
        BlockNumberOrTag::Latest,
    )
    .await
    .unwrap();
    let fixture = serde_json::json!({
        "comment": "written by tributary-chain's anvil test with TRIBUTARY_UPDATE_FIXTURES=1",
        "nodeKey": format!("0x{}", alloy::hex::encode(node.to_bytes())),
        "receipt": s,
        "proofs": proof,
        "trustedHeader": {"hash": hash},
        "batch": {"root": tree.root(), "digests": signed.iter().map(|s| s.digest()).collect::<Vec<_>>()},
    });
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../pkg/test/fixtures/anchored.json");
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(
        &path,
        serde_json::to_string_pretty(&fixture).unwrap() + "\n",
    )
    .unwrap();
}

#[test]
fn the_anchor_keeps_roots_where_the_verifier_looks() {
    let artifact: serde_json::Value =
        serde_json::from_str(include_str!("../artifacts/ReceiptAnchor.json")).unwrap();
    let storage = &artifact["storageLayout"]["storage"];
    let roots = storage
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["label"] == "roots")
        .unwrap();
    assert_eq!(roots["slot"], tributary_receipt::ROOTS_SLOT.to_string());
    assert_eq!(
        roots["type"],
        "t_mapping(t_address,t_mapping(t_uint64,t_bytes32))"
    );
}

/// The call was refused with the contract's custom error `E`.
#[track_caller]
fn expect_revert<E: alloy::sol_types::SolError, T: std::fmt::Debug>(
    result: Result<T, alloy::contract::Error>,
) {
    let err = result.expect_err("the call should revert");
    assert!(
        err.as_decoded_error::<E>().is_some(),
        "expected {}, got {err}",
        E::SIGNATURE
    );
}

#[tokio::test]
async fn every_access_rule_is_enforced() {
    let anvil = anvil();
    let (owner_p, d) = setup(&anvil).await;
    let stranger = signer(&anvil, 2);
    let stranger_p = provider(&anvil, &stranger);
    let node = signer(&anvil, 1);
    let node_p = provider(&anvil, &node);

    // Governance only: registry, parameters, rewards.
    expect_revert::<NodeRegistry::OwnableUnauthorizedAccount, _>(
        NodeRegistry::new(d.registry, &stranger_p)
            .addNode(stranger.address())
            .call()
            .await,
    );
    let params = AttributionParams::new(d.params, &stranger_p);
    expect_revert::<AttributionParams::OwnableUnauthorizedAccount, _>(
        params.setThreshold(1).call().await,
    );
    expect_revert::<AttributionParams::OwnableUnauthorizedAccount, _>(
        params.setRewardSplit(1).call().await,
    );
    expect_revert::<RewardDistributor::OwnableUnauthorizedAccount, _>(
        RewardDistributor::new(d.distributor, &stranger_p)
            .publishEpoch(1, B256::repeat_byte(1), U256::from(1))
            .call()
            .await,
    );
    expect_revert::<RewardToken::OwnableUnauthorizedAccount, _>(
        RewardToken::new(d.token, &stranger_p)
            .mint(stranger.address(), U256::from(1))
            .call()
            .await,
    );

    // The owner's changes are range-checked and logged.
    let params = AttributionParams::new(d.params, &owner_p);
    expect_revert::<AttributionParams::OutOfRange, _>(params.setThreshold(1_000_001).call().await);
    let tx = send(params.setThreshold(20_000)).await.unwrap();
    let event = tx
        .decoded_log::<AttributionParams::ThresholdChanged>()
        .expect("ThresholdChanged");
    assert_eq!((event.previous, event.current), (10_000, 20_000));
    assert_eq!(params.thresholdPpm().call().await.unwrap(), 20_000);
    send(params.setRewardSplit(700_000)).await.unwrap();
    assert_eq!(params.contributorSharePpm().call().await.unwrap(), 700_000);

    // Only registered nodes anchor, in sequence, non-empty batches.
    let anchor = ReceiptAnchor::new(d.anchor, &node_p);
    expect_revert::<ReceiptAnchor::NotRegisteredNode, _>(
        anchor.anchor(0, B256::repeat_byte(1), 1).call().await,
    );
    let registry = NodeRegistry::new(d.registry, &owner_p);
    send(registry.addNode(node.address())).await.unwrap();
    expect_revert::<NodeRegistry::AlreadyNode, _>(registry.addNode(node.address()).call().await);
    expect_revert::<ReceiptAnchor::WrongSequence, _>(
        anchor.anchor(1, B256::repeat_byte(1), 1).call().await,
    );
    expect_revert::<ReceiptAnchor::EmptyBatch, _>(anchor.anchor(0, B256::ZERO, 1).call().await);
    send(anchor.anchor(0, B256::repeat_byte(1), 1))
        .await
        .unwrap();
    // A sequence is written once.
    expect_revert::<ReceiptAnchor::WrongSequence, _>(
        anchor.anchor(0, B256::repeat_byte(2), 1).call().await,
    );
    // A removed node can no longer anchor.
    send(registry.removeNode(node.address())).await.unwrap();
    expect_revert::<ReceiptAnchor::NotRegisteredNode, _>(
        anchor.anchor(1, B256::repeat_byte(1), 1).call().await,
    );
}

#[tokio::test]
async fn rewards_are_claimed_once_each() {
    let anvil = anvil();
    let (owner_p, d) = setup(&anvil).await;
    let owner = signer(&anvil, 0);
    let token = RewardToken::new(d.token, &owner_p);
    let distributor = RewardDistributor::new(d.distributor, &owner_p);
    let claims: Vec<(Address, U256)> = (1..=5u8)
        .map(|i| (Address::repeat_byte(i), U256::from(1000u64 * u64::from(i))))
        .collect();
    let total: U256 = claims.iter().map(|c| c.1).sum();
    let tree = claims_tree(&claims).unwrap();
    send(token.mint(owner.address(), total)).await.unwrap();
    send(token.approve(d.distributor, total)).await.unwrap();
    let tx = send(distributor.publishEpoch(7, tree.root(), total))
        .await
        .unwrap();
    eprintln!("gas: publishing an epoch: {}", tx.gas_used);
    expect_revert::<RewardDistributor::EpochExists, _>(
        distributor
            .publishEpoch(7, tree.root(), U256::ZERO)
            .call()
            .await,
    );

    // Anyone may submit a claim; the tokens go to the account named in the leaf.
    let stranger_p = provider(&anvil, &signer(&anvil, 3));
    let by_stranger = RewardDistributor::new(d.distributor, &stranger_p);
    for (account, amount) in &claims {
        let proof = tree.proof(claim_leaf(*account, *amount)).unwrap();
        // A different amount with the same proof is refused.
        expect_revert::<RewardDistributor::InvalidProof, _>(
            by_stranger
                .claim(7, *account, amount + U256::from(1), proof.clone())
                .call()
                .await,
        );
        expect_revert::<RewardDistributor::UnknownEpoch, _>(
            by_stranger
                .claim(8, *account, *amount, proof.clone())
                .call()
                .await,
        );
        let tx = send(by_stranger.claim(7, *account, *amount, proof.clone()))
            .await
            .unwrap();
        eprintln!("gas: one claim: {}", tx.gas_used);
        assert_eq!(token.balanceOf(*account).call().await.unwrap(), *amount);
        expect_revert::<RewardDistributor::AlreadyClaimed, _>(
            by_stranger.claim(7, *account, *amount, proof).call().await,
        );
    }
    assert_eq!(distributor.unclaimed(7).call().await.unwrap(), U256::ZERO);
    assert_eq!(
        token.balanceOf(d.distributor).call().await.unwrap(),
        U256::ZERO
    );
}
