// Shared set-up of the browser test files: one static server and one headless Chromium per file,
// and the folder where screenshots are kept as test artifacts.
import { after, before } from 'node:test';
import { mkdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { startServer } from './serve.mjs';
import { launchChromium } from './chromium.mjs';

export const artifacts = fileURLToPath(new URL('./artifacts/', import.meta.url));

/** Registers before/after hooks; the returned object gets `server` and `browser` once started. */
export function smokeHarness() {
  const h = {};
  before(async () => {
    h.server = await startServer();
    h.browser = await launchChromium();
    mkdirSync(artifacts, { recursive: true });
  });
  after(async () => {
    await h.browser?.close();
    await h.server?.close();
  });
  return h;
}
