// Our Rust (through the wasm package) against the JavaScript libraries wallets already use:
// OpenZeppelin's merkle-tree for batch roots and proofs, and viem for EIP-712 hashing and signing
// of the receipt type.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { StandardMerkleTree } from '@openzeppelin/merkle-tree';
import { hashTypedData, keccak256, toHex } from 'viem';
import { privateKeyToAccount } from 'viem/accounts';
import { batchRoot, hashReceipt, verifyReceipt } from '../node/tributary_verifier.js';

const fixture = JSON.parse(readFileSync(new URL('./fixtures/anchored.json', import.meta.url), 'utf8'));

// The receipt's EIP-712 types, written out for viem from the Solidity struct definitions.
const types = {
  Attribution: [
    { name: 'contributionId', type: 'bytes32' },
    { name: 'contributor', type: 'address' },
    { name: 'weightPpm', type: 'uint32' },
    { name: 'method', type: 'uint8' },
  ],
  Receipt: [
    { name: 'node', type: 'address' },
    { name: 'baseModel', type: 'bytes32' },
    { name: 'adapter', type: 'bytes32' },
    { name: 'prompt', type: 'bytes32' },
    { name: 'output', type: 'bytes32' },
    { name: 'datanetRoots', type: 'bytes32[]' },
    { name: 'attributions', type: 'Attribution[]' },
    { name: 'thresholdPpm', type: 'uint32' },
    { name: 'timestamp', type: 'uint64' },
    { name: 'nonce', type: 'uint64' },
  ],
};

const viemDomain = (d) => ({ name: 'Tributary', version: '1', chainId: d.chainId, verifyingContract: d.anchor });
const viemMessage = (r) => ({ ...r, timestamp: BigInt(r.timestamp), nonce: BigInt(r.nonce) });

/** Receipts unlike the fixture's: several attributions, both methods, empty lists, big numbers. */
function variants() {
  const base = fixture.receipt.receipt;
  const h = (s) => keccak256(toHex(s));
  return [
    base,
    { ...base, datanetRoots: [], attributions: [] },
    {
      ...base,
      datanetRoots: [h('a'), h('b'), h('c')],
      attributions: [0, 1, 2].map((i) => ({
        contributionId: h(`c${i}`),
        contributor: `0x${String(i + 1).repeat(40)}`,
        weightPpm: 100000 * (i + 1),
        method: i % 2,
      })),
      timestamp: 2 ** 40,
      nonce: Number.MAX_SAFE_INTEGER,
    },
  ];
}

test('viem hashes the receipt type to our digest', () => {
  for (const chainId of [1, 31337, 8453]) {
    for (const receipt of variants()) {
      const domain = { ...fixture.receipt.domain, chainId };
      const ours = hashReceipt({ receipt, domain });
      const theirs = hashTypedData({ domain: viemDomain(domain), types, primaryType: 'Receipt', message: viemMessage(receipt) });
      assert.equal(ours, theirs);
    }
  }
});

test('a receipt signed by viem verifies here, byte-identical to the node signature', async () => {
  const account = privateKeyToAccount(fixture.nodeKey);
  assert.equal(account.address.toLowerCase(), fixture.receipt.receipt.node.toLowerCase());
  const { receipt, domain } = fixture.receipt;
  const signature = await account.signTypedData({ domain: viemDomain(domain), types, primaryType: 'Receipt', message: viemMessage(receipt) });
  // RFC 6979 signatures are deterministic: viem's equals the one the Rust node made.
  assert.equal(signature, fixture.receipt.signature);
  for (const r of variants()) {
    const sig = await account.signTypedData({ domain: viemDomain(domain), types, primaryType: 'Receipt', message: viemMessage(r) });
    const out = verifyReceipt({ receipt: r, domain, signature: sig });
    // The third variant's weights sum to 600,000 and clear the threshold; all verify.
    assert.equal(out.valid, true, out.error);
    assert.equal(out.trust, 'Signed');
  }
  // Signed by another key: the signature step.
  const other = privateKeyToAccount(keccak256(toHex('someone else')));
  const forged = await other.signTypedData({ domain: viemDomain(domain), types, primaryType: 'Receipt', message: viemMessage(receipt) });
  assert.equal(verifyReceipt({ receipt, domain, signature: forged }).step, 'signature');
});

test("OpenZeppelin's StandardMerkleTree builds our batch roots and proofs", () => {
  for (const n of [1, 2, 3, 5, 8, 13]) {
    const digests = Array.from({ length: n }, (_, i) => keccak256(toHex(`receipt ${n} ${i}`)));
    const tree = StandardMerkleTree.of(digests.map((d) => [d]), ['bytes32']);
    const ours = batchRoot(digests);
    assert.equal(ours.root, tree.root, `${n} leaves`);
    digests.forEach((d, i) => {
      const index = [...tree.entries()].find(([, v]) => v[0] === d)[0];
      assert.deepEqual(ours.proofs[i], tree.getProof(index), `${n} leaves, proof ${i}`);
    });
  }
  // The anvil batch.
  const tree = StandardMerkleTree.of(fixture.batch.digests.map((d) => [d]), ['bytes32']);
  assert.equal(tree.root, fixture.proofs.root);
});
