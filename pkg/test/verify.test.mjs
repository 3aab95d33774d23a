// The package in Node: a receipt whose proofs came from a real anvil (fixtures/anchored.json,
// written by tributary-chain's test) verifies to Anchored; a change to any field of the receipt,
// the proofs or the trusted header fails at the step that checks it; malformed input throws
// naming the field.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { batchRoot, hashReceipt, verifyReceipt } from '../node/tributary_verifier.js';

const fixture = JSON.parse(readFileSync(new URL('./fixtures/anchored.json', import.meta.url), 'utf8'));
const clone = (v) => structuredClone(v);

/** Flips the last hex digit of a 0x string (keeps its length, changes its value). */
function flipHex(s) {
  const last = s.at(-1);
  return s.slice(0, -1) + (last === '0' ? '1' : '0');
}

test('the anvil receipt is Anchored with its proofs and Signed without', () => {
  const full = verifyReceipt(fixture.receipt, fixture.proofs, fixture.trustedHeader);
  assert.deepEqual(full, { valid: true, trust: 'Anchored', digest: full.digest });
  assert.equal(full.digest, hashReceipt(fixture.receipt));
  assert.ok(fixture.batch.digests.includes(full.digest));
  const bare = verifyReceipt(fixture.receipt);
  assert.equal(bare.trust, 'Signed');
});

test('every receipt field, changed alone, fails at the signature', () => {
  const r = fixture.receipt.receipt;
  const paths = [];
  for (const [k, v] of Object.entries(r)) {
    if (Array.isArray(v)) {
      v.forEach((item, i) => {
        if (typeof item === 'object') for (const f of Object.keys(item)) paths.push([k, i, f]);
        else paths.push([k, i]);
      });
    } else paths.push([k]);
  }
  paths.push(['$domain', 'chainId'], ['$domain', 'anchor']);
  assert.ok(paths.length >= 14);
  for (const path of paths) {
    const signed = clone(fixture.receipt);
    let parent = path[0] === '$domain' ? signed.domain : signed.receipt;
    const keys = path[0] === '$domain' ? path.slice(1) : path;
    for (const k of keys.slice(0, -1)) parent = parent[k];
    const k = keys.at(-1);
    const v = parent[k];
    // Keep every value valid for its type, so the failure is the signature, not the input.
    parent[k] = typeof v === 'number' ? (k === 'method' ? 1 - v : v + 1) : flipHex(v);
    const out = verifyReceipt(signed, fixture.proofs, fixture.trustedHeader);
    assert.equal(out.valid, false, `changing ${path.join('.')} must fail`);
    assert.equal(out.step, 'signature', `${path.join('.')}: ${out.error}`);
  }
  const sig = clone(fixture.receipt);
  sig.signature = flipHex(sig.signature.slice(0, 66)) + sig.signature.slice(66);
  assert.equal(verifyReceipt(sig).step, 'signature');
});

test('proof and header changes fail at their own step', () => {
  const cases = [
    ['batch', (p) => { p.root = flipHex(p.root); }],
    ['batch', (p) => { p.proof[0] = flipHex(p.proof[0]); }],
    ['header', (p) => { p.header = flipHex(p.header); }],
    ['header', (p, t) => { t.hash = flipHex(t.hash); }],
    ['account', (p) => { p.account.address = flipHex(p.account.address); }],
    ['account', (p) => { p.account.storageHash = flipHex(p.account.storageHash); }],
    ['account', (p) => { p.account.balance = '0x1'; }],
    ['account', (p) => { p.account.accountProof[0] = flipHex(p.account.accountProof[0]); }],
    ['storage', (p) => { p.sequence += 1; }],
    ['storage', (p) => { p.account.storageProof[0].value = flipHex(p.account.storageProof[0].value); }],
    ['storage', (p) => { const s = p.account.storageProof[0]; s.proof[0] = flipHex(s.proof[0]); }],
    ['storage', (p) => { p.account.storageProof = []; }],
  ];
  for (const [step, change] of cases) {
    const proofs = clone(fixture.proofs);
    const trusted = clone(fixture.trustedHeader);
    change(proofs, trusted);
    const out = verifyReceipt(fixture.receipt, proofs, trusted);
    assert.equal(out.valid, false, change.toString());
    assert.equal(out.step, step, `${change}: ${out.error}`);
  }
});

test('malformed input throws, naming what is wrong', () => {
  const bad = [
    [() => verifyReceipt({}), /receipt/],
    [() => verifyReceipt(fixture.receipt, { ...fixture.proofs, root: '0x1234' }, fixture.trustedHeader), /proofs/],
    [() => verifyReceipt(fixture.receipt, fixture.proofs, undefined), /trustedHeader/],
    [() => verifyReceipt(fixture.receipt, fixture.proofs, { hash: 42 }), /trustedHeader/],
    [() => hashReceipt({ receipt: fixture.receipt.receipt }), /domain/],
    [() => batchRoot([]), /at least one/],
    [() => batchRoot(['0xzz']), /digests/],
  ];
  for (const [call, message] of bad) assert.throws(call, message);
  // A signature of the wrong length is well-formed input that does not verify: its own step.
  for (const signature of ['0x12', '0x' + '11'.repeat(64)]) {
    assert.equal(verifyReceipt({ ...fixture.receipt, signature }).step, 'signature');
  }
});

test('batchRoot rebuilds the anchored root from the batch digests', () => {
  const { root, proofs } = batchRoot(fixture.batch.digests);
  assert.equal(root, fixture.batch.root);
  assert.equal(root, fixture.proofs.root);
  const i = fixture.batch.digests.indexOf(hashReceipt(fixture.receipt));
  assert.deepEqual(proofs[i], fixture.proofs.proof);
});

test('the hand-written declarations name exactly the generated functions', () => {
  const names = (file) =>
    [...readFileSync(new URL(file, import.meta.url), 'utf8').matchAll(/export function (\w+)/g)].map((m) => m[1]).sort();
  assert.deepEqual(names('../types.d.ts'), names('../node/tributary_verifier.d.ts'));
  assert.deepEqual(names('../types.d.ts'), names('../web/tributary_verifier.d.ts').filter((n) => n !== 'initSync'));
});
