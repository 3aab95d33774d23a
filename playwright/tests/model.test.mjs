// tributary-model compiled to wasm32 on Chromium's WebGPU (SwiftShader here): greedy tokens of a
// fixture checkpoint, with and without a LoRA adapter, equal Hugging Face transformers + PEFT's.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { openSmokePage } from '../chromium.mjs';
import { artifacts, smokeHarness } from '../harness.mjs';

const fixtures = fileURLToPath(new URL('../../crates/tributary-model/tests/fixtures/', import.meta.url));
const h = smokeHarness();

test('greedy tokens in the tab equal transformers', { timeout: 600_000 }, async () => {
  const { page, errors } = await openSmokePage(h.browser.context, `${h.server.url}model.html`, { timeout: 540_000 });
  await page.screenshot({ path: `${artifacts}model.png`, fullPage: true });
  const status = await page.evaluate(() => document.body.dataset.status);
  const pageError = await page.evaluate(() => document.getElementById('report').dataset.error);
  assert.equal(status, 'done', `the page failed: ${pageError}`);
  assert.deepEqual(errors, [], 'no uncaught errors or console errors');

  // The expectation is read here from the reference file, not taken from the page.
  const reference = JSON.parse(readFileSync(`${fixtures}llama-gqa/reference.json`, 'utf8'));
  const cases = [
    [null, reference.base[1]],
    ['attn-r8', reference.adapters['attn-r8'][1]],
  ];
  for (const [adapter, c] of cases) {
    const tokens = await page.evaluate(
      ([ids, a, n]) => window.modelSmoke.generate(ids, a, n),
      [c.prompt_ids, adapter, c.greedy.length],
    );
    assert.deepEqual(tokens, c.greedy, `greedy tokens (${adapter ?? 'base'})`);
  }
  const rows = await page.evaluate(() => window.modelSmoke.rows);
  for (const r of rows) console.log(`${r.label}: ${r.tokensPerSecond.toFixed(1)} tokens/s in the tab`);
  assert.ok(await page.evaluate(() => window.modelSmoke.allPassed), 'the page reports its own cases as passing');
});
