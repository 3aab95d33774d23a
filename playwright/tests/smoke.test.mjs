// The WGSL matvec kernel, compiled to wasm32, on Chromium's WebGPU (SwiftShader here), checked
// against both the Rust CPU reference and an independent JavaScript f64 product.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { openSmokePage } from '../chromium.mjs';
import { artifacts, smokeHarness } from '../harness.mjs';

const h = smokeHarness();

/** Max over rows of |got - exact| / Σ|w·x|, with the product computed here in f64. */
function errorAgainstJs(got, w, x, rows, cols) {
  let worst = 0;
  for (let i = 0; i < rows; i++) {
    let exact = 0;
    let scale = 0;
    for (let j = 0; j < cols; j++) {
      const term = w[i * cols + j] * x[j];
      exact += term;
      scale += Math.abs(term);
    }
    const err = Math.abs(got[i] - exact) / Math.max(scale, Number.MIN_VALUE);
    worst = Number.isNaN(err) ? Infinity : Math.max(worst, err);
  }
  return worst;
}

test('matvec over WebGPU matches the CPU reference on odd shapes', async () => {
  const { page, errors } = await openSmokePage(h.browser.context, h.server.url);
  await page.screenshot({ path: `${artifacts}smoke.png`, fullPage: true });
  const status = await page.evaluate(() => document.body.dataset.status);
  const pageError = await page.evaluate(() => document.getElementById('report').dataset.error);
  assert.equal(status, 'done', `the page failed: ${pageError}`);
  assert.deepEqual(errors, [], 'no uncaught errors or console errors');

  const info = await page.evaluate(() => ({ adapter: window.smoke.adapter, max: window.smoke.maxStorageBufferBindingSize }));
  console.log(`WebGPU adapter: ${info.adapter}; maxStorageBufferBindingSize ${info.max}`);
  assert.match(info.adapter, /BrowserWebGpu/, 'ran on the browser WebGPU backend');

  for (const [rows, cols, seed] of [[1, 2049, 1], [67, 129, 2], [5, 1, 3], [33, 700, 4]]) {
    const r = await page.evaluate(([a, b, c]) => window.smoke.runCase(a, b, c), [rows, cols, seed]);
    assert.equal(r.y.length, rows);
    const vsRust = errorAgainstJs(r.y, r.w, r.x, rows, cols);
    const rustVsJs = errorAgainstJs(r.reference, r.w, r.x, rows, cols);
    console.log(`${rows}×${cols}: GPU error ${vsRust.toExponential(2)}; Rust reference ${rustVsJs.toExponential(2)}`);
    assert.ok(r.error <= 1e-5, `${rows}×${cols}: GPU vs Rust reference ${r.error}`);
    assert.ok(vsRust <= 1e-5, `${rows}×${cols}: GPU vs JS f64 product ${vsRust}`);
    assert.ok(rustVsJs <= 1e-7, `${rows}×${cols}: Rust reference vs JS f64 product ${rustVsJs}`);
  }
  assert.ok(await page.evaluate(() => window.smoke.allPassed), 'the page reports its own cases as passing');
});
