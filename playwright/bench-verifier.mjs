// `cargo xtask bench verify` (Chromium half): opens the verifier page, which times 200
// verifications after a warm-up, and prints its median as JSON.
import { launchChromium, openSmokePage } from './chromium.mjs';
import { startServer } from './serve.mjs';

const server = await startServer();
const browser = await launchChromium({ webgpu: false });
try {
  const { page } = await openSmokePage(browser.context, `${server.url}verifier.html`);
  const r = await page.evaluate(() => ({ status: document.body.dataset.status, medianMs: window.verifierSmoke?.medianMs }));
  if (r.status !== 'done') throw new Error('the verifier page failed');
  console.log(JSON.stringify({ chromiumMedianMs: r.medianMs }));
} finally {
  await browser.close();
  await server.close();
}
