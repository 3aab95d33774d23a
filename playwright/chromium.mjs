// Launching Debian's Chromium (never a downloaded browser) with WebGPU enabled. In headless mode
// on a machine without a GPU, Chromium's WebGPU runs on SwiftShader.
import { chromium } from 'playwright-core';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

function chromiumPath() {
  if (process.env.CHROMIUM) return process.env.CHROMIUM;
  try {
    return execFileSync('which', ['chromium'], { encoding: 'utf8' }).trim();
  } catch {
    throw new Error('no `chromium` on PATH: `cargo xtask setup` installs Debian\'s chromium');
  }
}

/** Launches a fresh headless Chromium; `close()` also removes its profile folder. */
export async function launchChromium({ webgpu = true } = {}) {
  const profile = mkdtempSync(join(tmpdir(), 'tributary-chromium-'));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: chromiumPath(),
    headless: true,
    args: [
      webgpu ? '--enable-unsafe-webgpu' : '--disable-unsafe-webgpu',
      '--no-sandbox',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  });
  return {
    context,
    close: async () => {
      await context.close();
      rmSync(profile, { recursive: true, force: true });
    },
  };
}

/**
 * Opens the smoke page and waits until it has run its cases. Resolves to { page, errors }, where
 * errors collects uncaught exceptions and console errors.
 */
export async function openSmokePage(context, url, { timeout = 120_000 } = {}) {
  const page = await context.newPage();
  const errors = [];
  page.on('pageerror', (err) => errors.push(`pageerror: ${err.message}`));
  page.on('console', (msg) => {
    if (msg.type() === 'error') errors.push(`console: ${msg.text()}`);
  });
  await page.goto(url);
  await page.waitForFunction(() => ['done', 'error'].includes(document.body.dataset.status), null, {
    timeout,
  });
  return { page, errors };
}
