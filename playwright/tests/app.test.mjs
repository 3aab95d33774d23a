// The in-tab app (web/, built by trunk) against a `tributary serve` started here: tokens in the
// tab equal the native `tributary run --greedy` tokens, compare mode equals the single runs, the
// node's receipt verifies in the tab and a tampered one is rejected with its step, a reload
// downloads nothing, and the CPU fallback gives the same tokens.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import { launchChromium } from '../chromium.mjs';
import { artifacts } from '../harness.mjs';
import { ADAPTERS, NODE_ADDRESS, fileRequests, startAppNode } from '../app-node.mjs';
import { generate, openApp, waitForReceipt } from '../app-page.mjs';

let node;
let browser;
before(async () => {
  mkdirSync(artifacts, { recursive: true });
  node = await startAppNode();
  browser = await launchChromium();
});
after(async () => {
  await browser?.close();
  await node?.close();
});

test('greedy tokens in the tab equal the native run, and the receipt verifies in the tab', { timeout: 600_000 }, async () => {
  // A small Range chunk, so the weights (about 0.6 MB) arrive in several Range requests.
  const { page, errors } = await openApp(browser.context, node.url, '?chunk=131072');
  assert.match(await page.locator('#backend').innerText(), /WebGPU/);
  const [lane] = await generate(page, 'attn-r8');
  assert.deepEqual(lane.tokens, node.native['attn-r8'].generated_ids, 'tokens equal `tributary run --greedy`');
  assert.equal(lane.text, node.native['attn-r8'].text);

  const receipt = await waitForReceipt(page);
  assert.equal(receipt.trust, 'Signed', receipt.text);
  assert.match(receipt.text, new RegExp(NODE_ADDRESS, 'i'));
  // The answer quotes alice's contribution only: she has the largest share.
  const top = await page.locator('.lane[data-lane="0"] .chart').first().locator('.share .who').first().innerText();
  assert.equal(top.toLowerCase(), node.contributors['attn-r8'].toLowerCase());
  await page.locator('.lane[data-lane="0"] .share').first().hover();
  await page.screenshot({ path: `${artifacts}app-attribution.png`, fullPage: true });
  assert.deepEqual(errors, [], 'no uncaught errors or console errors');
  await page.close();
});

test('compare mode: two adapters in one batch equal their single runs', { timeout: 600_000 }, async () => {
  const { page, errors } = await openApp(browser.context, node.url);
  const lanes = await generate(page, ADAPTERS[0], ADAPTERS[1]);
  assert.equal(lanes.length, 2);
  for (const [i, adapter] of ADAPTERS.entries()) {
    assert.equal(lanes[i].model.endsWith(`:${adapter}`), true);
    assert.deepEqual(lanes[i].tokens, node.native[adapter].generated_ids, `${adapter} in compare mode`);
  }
  assert.notDeepEqual(lanes[0].tokens, lanes[1].tokens, 'the two adapters answer differently');
  for (const [i, adapter] of ADAPTERS.entries()) {
    assert.equal((await waitForReceipt(page, i)).trust, 'Signed');
    // Each answer is attributed to the contributor who quoted it.
    const top = await page.locator(`.lane[data-lane="${i}"] .chart`).first().locator('.share .who').first().innerText();
    assert.equal(top.toLowerCase(), node.contributors[adapter].toLowerCase(), `${adapter}'s contributor`);
  }
  await page.screenshot({ path: `${artifacts}app-compare.png`, fullPage: true });
  assert.deepEqual(errors, []);
  await page.close();
});

test('a tampered receipt is rejected in the tab, naming the step', { timeout: 600_000 }, async () => {
  const { page, errors } = await openApp(browser.context, node.url);
  // A test route in front of the node's: the real answer with one field of the receipt changed.
  await page.route('**/v1/attribution', async (route) => {
    const response = await route.fetch();
    const body = await response.json();
    body.receipt.receipt.attributions[0].weightPpm += 1;
    await route.fulfill({ response, json: body });
  });
  await generate(page, 'attn-r8');
  const receipt = await waitForReceipt(page);
  assert.equal(receipt.trust, 'Rejected', receipt.text);
  assert.equal(receipt.step, 'signature');
  await page.screenshot({ path: `${artifacts}app-rejected.png`, fullPage: true });
  assert.deepEqual(errors, []);
  await page.close();
});

test('a reload takes the weights from the cache, not the network', { timeout: 600_000 }, async () => {
  // The earlier tests in this browser profile downloaded every file once.
  const before = await fileRequests(node.url);
  const { page, errors } = await openApp(browser.context, node.url);
  const files = await page.$$eval('#downloads .file', (fs) => fs.map((f) => [f.dataset.file, f.dataset.fromCache]));
  assert.ok(files.length >= 3, 'the base files are listed');
  for (const [file, cached] of files) assert.equal(cached, 'true', `${file} came from the cache`);
  const [lane] = await generate(page, 'mlp-r4');
  assert.deepEqual(lane.tokens, node.native['mlp-r4'].generated_ids);
  assert.equal(await fileRequests(node.url), before, 'no file was downloaded again');
  await page.screenshot({ path: `${artifacts}app-cached.png`, fullPage: true });
  assert.deepEqual(errors, []);
  await page.close();
});

test('without WebGPU the CPU fallback gives the same tokens', { timeout: 600_000 }, async () => {
  const plain = await launchChromium({ webgpu: false });
  try {
    const { page, errors } = await openApp(plain.context, node.url);
    const backend = await page.locator('#backend').innerText();
    const notices = await page.locator('.notice').allInnerTexts();
    const [lane] = await generate(page, 'attn-r8');
    assert.deepEqual(lane.tokens, node.native['attn-r8'].generated_ids, `tokens on ${backend}`);
    if (!/CPU/.test(backend)) {
      // This Chromium still offered WebGPU: force the fallback with the page flag.
      const forced = await openApp(plain.context, node.url, '?backend=cpu');
      assert.match(await forced.page.locator('#backend').innerText(), /CPU/);
      const [cpu] = await generate(forced.page, 'attn-r8');
      assert.deepEqual(cpu.tokens, node.native['attn-r8'].generated_ids, 'tokens on the CPU backend');
      assert.deepEqual(forced.errors, []);
    } else {
      assert.ok(notices.some((n) => /CPU/.test(n)), 'the page says it fell back to the CPU');
    }
    await page.screenshot({ path: `${artifacts}app-cpu.png`, fullPage: true });
    assert.deepEqual(errors, []);
  } finally {
    await plain.close();
  }
});
