// SGMV (tributary-sgmv's WGSL shrink/expand over a paged adapter pool) compiled to wasm32, on
// Chromium's WebGPU (SwiftShader here): a subset of the native matrix against the CPU reference.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { openSmokePage } from '../chromium.mjs';
import { artifacts, smokeHarness } from '../harness.mjs';

const h = smokeHarness();

test('SGMV over WebGPU matches the CPU reference and reruns bit-identically', { timeout: 600_000 }, async () => {
  const { page, errors } = await openSmokePage(h.browser.context, `${h.server.url}sgmv.html`, { timeout: 540_000 });
  await page.screenshot({ path: `${artifacts}sgmv.png`, fullPage: true });
  const status = await page.evaluate(() => document.body.dataset.status);
  const pageError = await page.evaluate(() => document.getElementById('report').dataset.error);
  assert.equal(status, 'done', `the page failed: ${pageError}`);
  assert.deepEqual(errors, [], 'no uncaught errors or console errors');

  // Batch sizes 1, 3, 32, 67; hidden 64 and 2049; every popularity at least once.
  const cases = [
    [1, 2049, 2049, 'identical'],
    [3, 64, 2049, 'distinct'],
    [32, 2049, 64, 'uniform'],
    [67, 64, 64, 'zipf'],
    [67, 2049, 2049, 'distinct'],
  ];
  for (const [i, [rows, fanIn, fanOut, popularity]] of cases.entries()) {
    const r = await page.evaluate((args) => window.sgmvSmoke.check(...args), [rows, fanIn, fanOut, popularity, 900 + i]);
    console.log(`${rows} rows ${fanIn}→${fanOut} ${popularity}: ${r.adapters} adapters, ${r.segments} segments, error ${r.error.toExponential(2)}`);
    assert.ok(r.error <= 1e-4, `${rows} rows ${fanIn}→${fanOut} ${popularity}: error ${r.error}`);
    assert.ok(r.bitIdentical, `${rows} rows ${fanIn}→${fanOut} ${popularity}: a rerun changed the bits`);
    // The adapters did something (a kernel that never writes y would fail the error check too).
    assert.ok(r.maxDelta > 1e-3, `${rows} rows ${popularity}: y moved by only ${r.maxDelta}`);
  }
  assert.ok(await page.evaluate(() => window.sgmvSmoke.allPassed), 'the page reports its own cases as passing');
});
