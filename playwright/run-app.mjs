// The demo's check of the in-tab app: opens it in headless Chromium, generates with an adapter,
// and prints the answer, the speed and the receipt's verdict as the page shows them.
//   node run-app.mjs URL
import { launchChromium } from './chromium.mjs';
import { generate, openApp, waitForReceipt } from './app-page.mjs';

const url = process.argv[2]?.replace(/\/$/, '');
if (!url) {
  console.error('usage: node run-app.mjs URL');
  process.exit(2);
}
const browser = await launchChromium();
try {
  const { page, errors } = await openApp(browser.context, url);
  console.log(await page.locator('#backend').innerText());
  for (const lane of await generate(page, 'attn-r8', 'mlp-r4')) {
    console.log(`${lane.model}: ${lane.tokens.length} tokens, first after ${lane.ttftMs.toFixed(0)} ms, ${lane.tokensPerS.toFixed(1)} tokens/s`);
  }
  for (const lane of [0, 1]) console.log((await waitForReceipt(page, lane)).text);
  for (const e of errors) console.error(e);
  process.exitCode = errors.length ? 1 : 0;
} finally {
  await browser.close();
}
