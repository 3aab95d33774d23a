//! Tributary on an EVM chain: the contracts (`solidity/contracts`, compiled by the pinned solc-js
//! into the committed `artifacts/` by `cargo xtask chain-artifacts`), their alloy bindings, and
//! the node-side client: deploy, anchor a batch of receipts, and fetch the proofs
//! (`eth_getProof` + the block header) a wallet needs to verify a receipt to `Anchored`.

use alloy::eips::BlockNumberOrTag;
use alloy::primitives::{Address, B256, U64, U256, keccak256};
use alloy::providers::Provider;
use alloy::sol_types::SolValue;
use tributary_receipt::{AccountProof, AnchorProof, MerkleTree, StorageProof, leaf_hash_encoded};

/// The contracts, bound from their compiled artifacts.
pub mod contracts {
    alloy::sol!(
        #[sol(rpc)]
        #[derive(Debug)]
        NodeRegistry,
        "artifacts/NodeRegistry.json"
    );
    alloy::sol!(
        #[sol(rpc)]
        #[derive(Debug)]
        ReceiptAnchor,
        "artifacts/ReceiptAnchor.json"
    );
    alloy::sol!(
        #[sol(rpc)]
        #[derive(Debug)]
        AttributionParams,
        "artifacts/AttributionParams.json"
    );
    alloy::sol!(
        #[sol(rpc)]
        #[derive(Debug)]
        RewardDistributor,
        "artifacts/RewardDistributor.json"
    );
    alloy::sol!(
        #[sol(rpc)]
        #[derive(Debug)]
        RewardToken,
        "artifacts/RewardToken.json"
    );
}

use contracts::{AttributionParams, NodeRegistry, ReceiptAnchor, RewardDistributor, RewardToken};

#[derive(Debug, thiserror::Error)]
pub enum ChainError {
    #[error("contract call: {0}")]
    Contract(#[from] alloy::contract::Error),
    #[error("RPC: {0}")]
    Rpc(#[from] alloy::transports::TransportError),
    #[error("waiting for the transaction: {0}")]
    Pending(#[from] alloy::providers::PendingTransactionError),
    #[error("transaction {0} reverted")]
    Reverted(B256),
    #[error("block {0} not found")]
    NoBlock(BlockNumberOrTag),
    #[error("block {number}: the header the node returned hashes to {computed}, not {claimed}")]
    HeaderHash {
        number: u64,
        claimed: B256,
        computed: B256,
    },
}

/// Where a deployment's contracts are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Deployment {
    pub registry: Address,
    pub anchor: Address,
    pub params: Address,
    pub token: Address,
    pub distributor: Address,
}

/// Deploys every contract with `owner` as governance (the provider's signer pays and must be
/// `owner` for the reward token to be mintable by it in tests and demos).
pub async fn deploy<P: Provider>(
    provider: &P,
    owner: Address,
    threshold_ppm: u32,
    contributor_share_ppm: u32,
) -> Result<Deployment, ChainError> {
    let registry = NodeRegistry::deploy(provider, owner).await?;
    let anchor = ReceiptAnchor::deploy(provider, *registry.address()).await?;
    let params =
        AttributionParams::deploy(provider, owner, threshold_ppm, contributor_share_ppm).await?;
    let token = RewardToken::deploy(provider, owner).await?;
    let distributor = RewardDistributor::deploy(provider, owner, *token.address()).await?;
    Ok(Deployment {
        registry: *registry.address(),
        anchor: *anchor.address(),
        params: *params.address(),
        token: *token.address(),
        distributor: *distributor.address(),
    })
}

/// Sends a transaction built by `call` and waits for its receipt; a revert is an error.
pub async fn send<P: Provider, D: alloy::contract::CallDecoder>(
    call: alloy::contract::CallBuilder<&P, D>,
) -> Result<alloy::rpc::types::TransactionReceipt, ChainError> {
    let receipt = call.send().await?.get_receipt().await?;
    if !receipt.status() {
        return Err(ChainError::Reverted(receipt.transaction_hash));
    }
    Ok(receipt)
}

/// The proofs a wallet needs for one receipt of an anchored batch, taken at `block`, and that
/// block's hash (which the wallet must trust by other means: its light client or a checkpoint).
pub async fn anchor_proof<P: Provider>(
    provider: &P,
    anchor: Address,
    node: Address,
    sequence: u64,
    batch_root: B256,
    batch_proof: Vec<B256>,
    block: BlockNumberOrTag,
) -> Result<(AnchorProof, B256), ChainError> {
    let found = provider
        .get_block_by_number(block)
        .await?
        .ok_or(ChainError::NoBlock(block))?;
    let header = &found.header;
    let rlp = alloy::rlp::encode(&header.inner);
    let computed = keccak256(&rlp);
    if computed != header.hash {
        return Err(ChainError::HeaderHash {
            number: header.number,
            claimed: header.hash,
            computed,
        });
    }
    let slot = tributary_receipt::root_slot(node, sequence);
    let proof = provider
        .get_proof(anchor, vec![slot])
        .number(header.number)
        .await?;
    let account = AccountProof {
        address: proof.address,
        balance: proof.balance,
        code_hash: proof.code_hash,
        nonce: U64::from(proof.nonce),
        storage_hash: proof.storage_hash,
        account_proof: proof.account_proof,
        storage_proof: proof
            .storage_proof
            .into_iter()
            .map(|s| StorageProof {
                key: U256::from_be_bytes(s.key.as_b256().0),
                value: s.value,
                proof: s.proof,
            })
            .collect(),
    };
    Ok((
        AnchorProof {
            root: batch_root,
            proof: batch_proof,
            sequence,
            account,
            header: rlp.into(),
        },
        header.hash,
    ))
}

/// The leaf of one reward claim: an OpenZeppelin StandardMerkleTree leaf over
/// `["address", "uint256"]`, as `RewardDistributor.claim` recomputes it.
pub fn claim_leaf(account: Address, amount: U256) -> B256 {
    leaf_hash_encoded(&(account, amount).abi_encode_params())
}

/// The tree of an epoch's claims.
pub fn claims_tree(
    claims: &[(Address, U256)],
) -> Result<MerkleTree, tributary_receipt::MerkleError> {
    MerkleTree::new(claims.iter().map(|(a, v)| claim_leaf(*a, *v)).collect())
}

/// The anvil binary the npm package `@foundry-rs/anvil` installs next to the Solidity sources
/// (`cargo xtask setup` runs that install); `TRIBUTARY_ANVIL` overrides it.
pub fn anvil_path() -> std::path::PathBuf {
    if let Some(path) = std::env::var_os("TRIBUTARY_ANVIL") {
        return path.into();
    }
    let arch = match std::env::consts::ARCH {
        "aarch64" => "arm64",
        _ => "amd64",
    };
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(format!(
        "solidity/node_modules/@foundry-rs/anvil-{}-{arch}/bin/anvil",
        std::env::consts::OS
    ))
}
