// The wallet package's web build in headless Chromium: the anvil fixture verifies to Anchored
// with the same digest as in Node, tampering fails at the same steps, and the batch root matches.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { openSmokePage } from '../chromium.mjs';
import { artifacts, smokeHarness } from '../harness.mjs';

const h = smokeHarness();

test('receipts verify in the tab as in Node', async () => {
  const { page, errors } = await openSmokePage(h.browser.context, `${h.server.url}verifier.html`);
  await page.screenshot({ path: `${artifacts}verifier.png`, fullPage: true });
  const status = await page.evaluate(() => document.body.dataset.status);
  const pageError = await page.evaluate(() => document.getElementById('report').dataset.error);
  assert.equal(status, 'done', `the page failed: ${pageError}`);
  assert.deepEqual(errors, [], 'no uncaught errors or console errors');

  const r = await page.evaluate(() => {
    const s = window.verifierSmoke;
    const f = structuredClone(s.fixture);
    const flip = (x) => x.slice(0, -1) + (x.at(-1) === '0' ? '1' : '0');
    const steps = {};
    const output = structuredClone(f.receipt);
    output.receipt.output = flip(output.receipt.output);
    steps.signature = s.verify(output, f.proofs, f.trustedHeader).step;
    const batch = structuredClone(f.proofs);
    batch.root = flip(batch.root);
    steps.batch = s.verify(f.receipt, batch, f.trustedHeader).step;
    steps.header = s.verify(f.receipt, f.proofs, { hash: flip(f.trustedHeader.hash) }).step;
    const account = structuredClone(f.proofs);
    account.account.storageHash = flip(account.account.storageHash);
    steps.account = s.verify(f.receipt, account, f.trustedHeader).step;
    const storage = structuredClone(f.proofs);
    storage.sequence += 1;
    steps.storage = s.verify(f.receipt, storage, f.trustedHeader).step;
    return {
      outcome: s.outcome,
      hash: s.hash(f.receipt),
      root: s.batchRoot(f.batch.digests).root,
      expectedRoot: f.batch.root,
      steps,
      medianMs: s.medianMs,
    };
  });
  console.log(`verification in Chromium: median ${r.medianMs.toFixed(3)} ms`);
  assert.equal(r.outcome.valid, true, r.outcome.error);
  assert.equal(r.outcome.trust, 'Anchored');
  assert.equal(r.outcome.digest, r.hash);
  assert.equal(r.root, r.expectedRoot);
  for (const step of ['signature', 'batch', 'header', 'account', 'storage']) {
    assert.equal(r.steps[step], step, `tampering for ${step}`);
  }
});
