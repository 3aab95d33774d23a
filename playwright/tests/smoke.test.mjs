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

// cubecl logs a kernel that fails to compile and then launches nothing, so a kernel Chrome's
// Tint rejects shows up only as wrong numbers far downstream. Each kernel's complete source, as
// cubecl builds it, compiled here with the browser's compiler: any error names the kernel, the
// line and Tint's message.
test('every cubecl kernel compiles with the browser\'s WGSL compiler', async () => {
  const { page, errors } = await openSmokePage(h.browser.context, h.server.url);
  const results = await page.evaluate(async () => {
    const device = await (await navigator.gpu.requestAdapter()).requestDevice();
    const out = [];
    for (const [name, code] of window.smoke.wgslKernels()) {
      device.pushErrorScope('validation');
      const module = device.createShaderModule({ code, label: name });
      const messages = (await module.getCompilationInfo()).messages
        .filter((m) => m.type === 'error')
        .map((m) => `${m.lineNum}:${m.linePos} ${m.message}: ${code.split('\n')[m.lineNum - 1]?.trim()}`);
      let pipeline = 'ok';
      try {
        await device.createComputePipelineAsync({ layout: 'auto', compute: { module, entryPoint: 'main' } });
      } catch (e) {
        pipeline = String(e.message ?? e);
      }
      const scope = await device.popErrorScope();
      out.push({ name, messages, pipeline, scope: scope?.message ?? null });
    }
    return out;
  });
  assert.ok(results.length >= 6, `kernels of both crates: ${results.map((r) => r.name)}`);
  for (const r of results) {
    console.log(`${r.name}: ${r.messages.length ? r.messages.join('; ') : 'compiles'}`);
    assert.deepEqual(r.messages, [], `${r.name}: Tint's errors`);
    assert.equal(r.pipeline, 'ok', `${r.name}: compute pipeline`);
    assert.equal(r.scope, null, `${r.name}: validation error`);
  }
  assert.deepEqual(errors, [], 'no uncaught errors or console errors');
});
