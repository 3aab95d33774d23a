// `cargo xtask bench web`: the in-tab app against native `tributary run` on the same fixture
// model, adapter and prompt. Each tab figure is from the second of two generations in one page
// (the first compiles the kernels and loads the adapter). Prints one JSON object on stdout.
import { execFileSync } from 'node:child_process';
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { launchChromium } from './chromium.mjs';
import { fixture, startAppNode, tributaryBin } from './app-node.mjs';
import { generate, openApp } from './app-page.mjs';

const TOKENS = 64;
const ADAPTER = 'attn-r8';

function native(device) {
  const args = ['run', '--model', fixture, '--adapter', join(fixture, 'adapters', ADAPTER), '--prompt',
    'This License applies to any program', '--max-tokens', String(TOKENS), '--greedy', '--ignore-eos',
    '--json', '--device', device];
  const runs = [0, 1].map(() => JSON.parse(execFileSync(tributaryBin(), args, { encoding: 'utf8' })));
  return runs[1].timing; // the second, with the OS caches warm
}

async function tab(browser, url, query) {
  const { page } = await openApp(browser.context, url, query);
  await generate(page, ADAPTER, null, TOKENS);
  const [lane] = await generate(page, ADAPTER, null, TOKENS);
  const heap = await page.evaluate(() => performance.memory?.usedJSHeapSize ?? null);
  const backend = await page.locator('#backend').innerText();
  await page.close();
  return { backend, tokens: lane.tokens.length, firstTokenMs: lane.ttftMs, tokensPerS: lane.tokensPerS,
    pageJsHeapBytes: heap, workerMemoryBytes: lane.workerMemoryBytes };
}

const node = await startAppNode();
const browser = await launchChromium();
try {
  const result = {
    tabWebgpu: await tab(browser, node.url, '?nocache=1'),
    tabCpu: await tab(browser, node.url, '?nocache=1&backend=cpu'),
    nativeCpu: native('cpu'),
    nativeLavapipe: native('wgpu'),
    files: Object.fromEntries(
      readdirSync(process.env.TRIBUTARY_WEB_DIST)
        .filter((f) => /\.(wasm|js)$/.test(f))
        .map((f) => {
          const bytes = readFileSync(join(process.env.TRIBUTARY_WEB_DIST, f));
          return [f, { raw: bytes.length, gzip: gzipSync(bytes, { level: 9 }).length }];
        }),
    ),
  };
  console.log(JSON.stringify(result));
} finally {
  await browser.close();
  await node.close();
}
