// The wallet package's web build in a tab: verifies the anvil fixture and times verification;
// `window.verifierSmoke` lets the Playwright test run its own cases.
import init, { batchRoot, hashReceipt, verifyReceipt } from './verifier/web/tributary_verifier.js';
import { runPage } from './page.js';

async function main(report) {
  await init();
  const fixture = await fetch('./verifier/test/fixtures/anchored.json').then((r) => r.json());
  const outcome = verifyReceipt(fixture.receipt, fixture.proofs, fixture.trustedHeader);
  // Median of many single verifications, after a warm-up.
  for (let i = 0; i < 20; i++) verifyReceipt(fixture.receipt, fixture.proofs, fixture.trustedHeader);
  const times = [];
  for (let i = 0; i < 200; i++) {
    const t = performance.now();
    verifyReceipt(fixture.receipt, fixture.proofs, fixture.trustedHeader);
    times.push(performance.now() - t);
  }
  times.sort((a, b) => a - b);
  const medianMs = times[times.length >> 1];
  window.verifierSmoke = {
    fixture,
    outcome,
    medianMs,
    allPassed: outcome.valid && outcome.trust === 'Anchored',
    verify: (receipt, proofs, trusted) => verifyReceipt(receipt, proofs, trusted),
    hash: (receipt) => hashReceipt(receipt),
    batchRoot: (digests) => batchRoot(digests),
  };
  report.textContent = `${outcome.valid ? outcome.trust : `failed at ${outcome.step}: ${outcome.error}`}; ` +
    `digest ${outcome.digest}; median verification ${medianMs.toFixed(3)} ms`;
}

runPage(main);
