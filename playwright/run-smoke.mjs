// Runs the smoke pages once in headless Chromium and prints what they show (used by the demo):
// the WGSL kernels against their CPU references, the model against transformers' tokens, and
// the wallet package verifying a receipt anchored on anvil.
//   node run-smoke.mjs URL
import { launchChromium, openSmokePage } from './chromium.mjs';

const url = process.argv[2];
if (!url) {
  console.error('usage: node run-smoke.mjs URL');
  process.exit(2);
}
const pages = [
  ['index.html', 'smoke'],
  ['sgmv.html', 'sgmvSmoke'],
  ['model.html', 'modelSmoke'],
  ['verifier.html', 'verifierSmoke'],
];
const browser = await launchChromium();
let ok = true;
try {
  for (const [path, global] of pages) {
    console.log(`--- ${url}${path}`);
    const { page, errors } = await openSmokePage(browser.context, `${url}${path}`, { timeout: 540_000 });
    console.log((await page.locator('#report').innerText()).trim());
    const status = await page.evaluate(() => document.body.dataset.status);
    const passed = status === 'done' && (await page.evaluate((g) => window[g].allPassed, global));
    for (const e of errors) console.error(e);
    ok = ok && passed && errors.length === 0;
  }
} finally {
  await browser.close();
}
process.exitCode = ok ? 0 : 1;
