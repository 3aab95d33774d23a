// A `tributary serve` for the in-tab app, the way a user would set one up with the CLI: the
// fixture checkpoint (random weights) with two adapters, a datanet whose contributions quote the
// answers the native `tributary run --greedy` gives (so span attribution has something to find
// in gibberish from random weights), its suffix-array index, and the built app under --web.
// Used by the browser tests and by `cargo xtask demo`.
//   node app-node.mjs [--port N]   (prints `serving URL`, serves until killed)
import { execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createInterface } from 'node:readline';

export const fixture = fileURLToPath(new URL('../crates/tributary-model/tests/fixtures/llama-gqa', import.meta.url));
export const PROMPT = 'This License applies to any program';
export const MAX_TOKENS = 24;
export const ADAPTERS = ['attn-r8', 'mlp-r4'];

// Anvil's well-known development keys: fine for a local demo, never for real funds.
const KEYS = {
  validator: ['0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80', '0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266'],
  alice: ['0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d', '0x70997970C51812dc3A010C7d01b50e0d17dc79C8'],
  bob: ['0x5de4111afa1a4b94908f83103eb1f1706367c2e68ca870fc3fb9a804cdf365ab'],
  node: ['0x7c852118294e51e653712a81e05800f419141751be58f605c371e15141b007a6', '0x90F79bf6EB2c4f870365E785982E1f101E93b906'],
};
export const NODE_ADDRESS = KEYS.node[1];

export function tributaryBin() {
  const bin = process.env.TRIBUTARY_BIN;
  if (!bin) throw new Error('TRIBUTARY_BIN is not set (cargo xtask sets it to the built `tributary`)');
  return bin;
}

function webDist() {
  const dist = process.env.TRIBUTARY_WEB_DIST;
  if (!dist) throw new Error('TRIBUTARY_WEB_DIST is not set (cargo xtask builds the app with trunk)');
  return dist;
}

function tributary(args) {
  return execFileSync(tributaryBin(), args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] });
}

/** The native greedy answer (token ids and text) of the fixture with `adapter` (null: base). */
export function nativeGreedy(adapter, prompt = PROMPT, maxTokens = MAX_TOKENS) {
  const args = ['run', '--model', fixture, '--prompt', prompt, '--max-tokens', String(maxTokens), '--greedy', '--json'];
  if (adapter) args.push('--adapter', join(fixture, 'adapters', adapter));
  return JSON.parse(tributary(args));
}

/** Starts the node; resolves to { url, native, close() }. */
export async function startAppNode({ port = 0 } = {}) {
  const dir = mkdtempSync(join(tmpdir(), 'tributary-app-'));
  const db = join(dir, 'datanets.sqlite');
  const native = Object.fromEntries(ADAPTERS.map((a) => [a, nativeGreedy(a)]));
  tributary(['datanet', '--db', db, 'create', 'demo', '--validator', KEYS.validator[1], '--description', 'quotes of the fixture']);
  const hashes = [];
  const contributors = {};
  ADAPTERS.forEach((adapter, i) => {
    const file = join(dir, `${adapter}.txt`);
    writeFileSync(
      file,
      `Contribution ${i + 1}, a passage quoted in the ${adapter} answer.\n\n${native[adapter].text}\n\nEnd of contribution ${i + 1}.\n`,
    );
    const who = adapter === 'attn-r8' ? KEYS.alice : KEYS.bob;
    const report = JSON.parse(tributary(['datanet', '--db', db, '--json', 'add', 'demo', file, '--license', 'CC-BY-4.0', '--key', who[0]]));
    hashes.push(...report.added);
    contributors[adapter] = report.added[0];
  });
  // Who signed each planted contribution, as the datanet recorded it.
  const shown = JSON.parse(tributary(['datanet', '--db', db, '--json', 'show', 'demo', '--contributions']));
  for (const adapter of ADAPTERS) {
    contributors[adapter] = shown.contributions.find((c) => c.contentHash === contributors[adapter]).contributor;
  }
  for (const hash of hashes) {
    tributary(['datanet', '--db', db, 'review', 'demo', hash, '--accept', '--key', KEYS.validator[0]]);
  }
  tributary(['datanet', '--db', db, 'snapshot', 'demo']);
  tributary(['index', 'build', '--datanet', 'demo', '--model', fixture, '--db', db]);

  const adapters = ADAPTERS.flatMap((a) => ['--adapter', `${a}=${join(fixture, 'adapters', a)}`]);
  const child = spawn(
    tributaryBin(),
    ['serve', '--port', String(port), '--model', fixture, ...adapters, '--web', webDist(),
      '--datanet', 'demo', '--db', db, '--node-key', KEYS.node[0]],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  );
  const lines = createInterface({ input: child.stdout });
  const url = await new Promise((resolve, reject) => {
    child.once('exit', (code) => reject(new Error(`tributary serve exited (${code})`)));
    lines.once('line', (line) => {
      const last = line.trim().split(/\s+/).pop();
      if (last.startsWith('http://')) resolve(last);
      else reject(new Error(`unexpected banner: ${line}`));
    });
  });
  return {
    url,
    native,
    contributors,
    child,
    close: async () => {
      child.kill();
      await new Promise((r) => (child.exitCode === null ? child.once('exit', r) : r()));
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** Requests to /v1/files so far, from the node's /metrics. */
export async function fileRequests(url) {
  const text = await (await fetch(`${url}/metrics`)).text();
  const line = text.split('\n').find((l) => l.startsWith('tributary_file_requests_total'));
  if (!line) throw new Error('/metrics has no tributary_file_requests_total');
  return Number(line.trim().split(/\s+/).pop());
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const i = process.argv.indexOf('--port');
  const node = await startAppNode({ port: i > 0 ? Number(process.argv[i + 1]) : 0 });
  console.log(`serving ${node.url}/`);
  const stop = async () => {
    await node.close();
    process.exit(0);
  };
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);
}
