// The package's API, written and checked by hand: wasm-bindgen's own declarations type every
// argument as `any`. pkg/test checks that this file and the generated one declare the same
// functions, and `tsc` checks test/types.ts against it.

/** 0x-prefixed hex: hashes (32 bytes), addresses (20), byte strings, and 256-bit quantities. */
export type Hex = `0x${string}`;

/** `method`: 0 = suffix-array span tracing, 1 = gradient influence. */
export interface Attribution {
  contributionId: Hex;
  contributor: Hex;
  /** Parts per million of the answer. */
  weightPpm: number;
  method: 0 | 1;
}

/** The EIP-712 `Receipt` struct a node signs (hashes are keccak256 of the named content). */
export interface Receipt {
  node: Hex;
  baseModel: Hex;
  adapter: Hex;
  prompt: Hex;
  output: Hex;
  datanetRoots: Hex[];
  attributions: Attribution[];
  thresholdPpm: number;
  /** Seconds since the Unix epoch. */
  timestamp: number;
  nonce: number;
}

/** EIP-712 domain: name "Tributary", version "1", this chain and anchor contract. */
export interface Domain {
  chainId: number;
  /** The ReceiptAnchor contract (EIP-712 verifyingContract). */
  anchor: Hex;
}

export interface SignedReceipt {
  receipt: Receipt;
  domain: Domain;
  /** 65 bytes: r, s, v. */
  signature: Hex;
}

/** One slot of an EIP-1186 `eth_getProof` response. */
export interface StorageProof {
  key: Hex;
  value: Hex;
  proof: Hex[];
}

/** An EIP-1186 `eth_getProof` response for the anchor contract. */
export interface AccountProof {
  address: Hex;
  balance: Hex;
  codeHash: Hex;
  nonce: Hex;
  storageHash: Hex;
  accountProof: Hex[];
  storageProof: StorageProof[];
}

/** Where a receipt's batch is anchored, and the proofs of it. */
export interface AnchorProof {
  /** The batch's Merkle root. */
  root: Hex;
  /** The receipt leaf's siblings up to `root`. */
  proof: Hex[];
  /** The node's batch sequence number. */
  sequence: number;
  account: AccountProof;
  /** RLP of the block header the proof was taken at. */
  header: Hex;
}

/** A block the wallet trusts (its light client's, or a checkpoint). */
export interface TrustedHeader {
  hash: Hex;
}

/** The verification step that failed, in the order they run. */
export type Step = "signature" | "weights" | "batch" | "header" | "account" | "storage";

export type Outcome =
  | { valid: true; trust: "Signed" | "Anchored"; digest: Hex }
  | { valid: false; step: Step; error: string; digest: Hex };

/**
 * Verifies a signed receipt: the signature recovers `receipt.node` and the weights are well
 * formed (`Signed`); with `proofs` and `trustedHeader`, also that its batch root is stored in the
 * anchor contract under that block (`Anchored`). Throws on malformed input, naming the field.
 */
export function verifyReceipt(
  receipt: SignedReceipt,
  proofs?: AnchorProof | null,
  trustedHeader?: TrustedHeader | null,
): Outcome;

/** The receipt's EIP-712 digest (what the node signs and the batch commits to). */
export function hashReceipt(receipt: { receipt: Receipt; domain: Domain; signature?: Hex }): Hex;

/** The batch root over receipt digests and each digest's proof, in the order given. */
export function batchRoot(digests: Hex[]): { root: Hex; proofs: Hex[][] };
