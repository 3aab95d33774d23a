// Driving the in-tab app (web/) in Chromium: shared by its tests, `cargo xtask demo` and
// `cargo xtask bench web`. The page exposes its state as data attributes (phase, tokens, trust).
import { MAX_TOKENS } from './app-node.mjs';

/** Opens the app and waits for the model to load; collects uncaught and console errors. */
export async function openApp(context, url, query = '') {
  const page = await context.newPage();
  const errors = [];
  page.on('pageerror', (err) => errors.push(`pageerror: ${err.message}`));
  page.on('console', (msg) => {
    if (msg.type() === 'error') errors.push(`console: ${msg.text()}`);
  });
  await page.goto(`${url}/${query}`);
  await page.waitForFunction(() => ['ready', 'error'].includes(document.getElementById('app')?.dataset.phase), null, {
    timeout: 300_000,
  });
  const error = await page.locator('#error').allInnerTexts();
  if (error.length) throw new Error(`the app failed to load: ${error.join('; ')}`);
  return { page, errors };
}

/** Picks adapters (a second one turns compare mode on), generates, waits for every lane. */
export async function generate(page, adapter, second = null, maxTokens = MAX_TOKENS) {
  await page.locator('#max-tokens').fill(String(maxTokens));
  await page.locator('#max-tokens').dispatchEvent('change');
  await page.locator('#adapter').selectOption(adapter);
  await page.locator('#compare').setChecked(second !== null);
  if (second) await page.locator('#adapter-b').selectOption(second);
  await page.locator('#generate').click();
  const lanes = second ? 2 : 1;
  await page.waitForFunction(
    (n) => {
      const done = [...document.querySelectorAll('.lane')].filter((l) => l.dataset.done === 'true');
      return done.length === n || document.getElementById('app').dataset.phase === 'error';
    },
    lanes,
    { timeout: 300_000 },
  );
  const error = await page.locator('#error').allInnerTexts();
  if (error.length) throw new Error(`generation failed: ${error.join('; ')}`);
  return page.$$eval('.lane', (ls) =>
    ls.map((l) => ({
      model: l.dataset.model,
      tokens: l.dataset.tokens ? l.dataset.tokens.split(',').map(Number) : [],
      text: l.querySelector('.text').textContent,
      ttftMs: Number(l.dataset.ttftMs),
      tokensPerS: Number(l.dataset.tokensPerS),
      workerMemoryBytes: Number(l.dataset.workerMemory),
    })),
  );
}

export async function waitForReceipt(page, lane = 0) {
  const receipt = page.locator(`.lane[data-lane="${lane}"] .receipt`);
  await receipt.waitFor({ timeout: 120_000 });
  return { trust: await receipt.getAttribute('data-trust'), step: await receipt.getAttribute('data-step'), text: await receipt.innerText() };
}

