// The package in Node: a receipt whose proofs came from a real anvil (fixtures/anchored.json,
// written by tributary-chain's test) verifies to Anchored; a change to any field of the receipt,
// the proofs or the trusted header fails at the step that checks it; malformed input throws
// naming the field.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { batchRoot, hashReceipt, verifyReceipt } from '../node/tributary_verifier.js';
import { proofTampers, receiptTampers } from './tamper.mjs';

const fixture = JSON.parse(readFileSync(new URL('./fixtures/anchored.json', import.meta.url), 'utf8'));
const clone = (v) => structuredClone(v);

test('the anvil receipt is Anchored with its proofs and Signed without', () => {
  const full = verifyReceipt(fixture.receipt, fixture.proofs, fixture.trustedHeader);
  assert.deepEqual(full, { valid: true, trust: 'Anchored', digest: full.digest });
  assert.equal(full.digest, hashReceipt(fixture.receipt));
  assert.ok(fixture.batch.digests.includes(full.digest));
  const bare = verifyReceipt(fixture.receipt);
  assert.equal(bare.trust, 'Signed');
});

test('every receipt field, changed alone, fails at the signature', () => {
  const tampers = receiptTampers(fixture);
  assert.ok(tampers.length >= 15);
  for (const [name, signed] of tampers) {
    const out = verifyReceipt(signed, fixture.proofs, fixture.trustedHeader);
    assert.equal(out.valid, false, `changing ${name} must fail`);
    assert.equal(out.step, 'signature', `${name}: ${out.error}`);
  }
});

test('proof and header changes fail at their own step', () => {
  for (const [step, change] of proofTampers) {
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
