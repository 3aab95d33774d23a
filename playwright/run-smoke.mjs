// Runs the smoke page once in headless Chromium and prints what it shows (used by the demo).
//   node run-smoke.mjs URL
import { launchChromium, openSmokePage } from './chromium.mjs';

const url = process.argv[2];
if (!url) {
  console.error('usage: node run-smoke.mjs URL');
  process.exit(2);
}
const browser = await launchChromium();
try {
  const { page, errors } = await openSmokePage(browser.context, url);
  console.log((await page.locator('#report').innerText()).trim());
  const status = await page.evaluate(() => document.body.dataset.status);
  const passed = status === 'done' && (await page.evaluate(() => window.smoke.allPassed));
  for (const e of errors) console.error(e);
  process.exitCode = passed && errors.length === 0 ? 0 : 1;
} finally {
  await browser.close();
}
