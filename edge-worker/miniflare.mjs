// The built worker (build/, from `cargo xtask edge`) in the real workerd through Miniflare, with
// local R2, KV and secret bindings as wrangler.toml names them. Shared by the tests and the bench.
import { Miniflare } from 'miniflare';
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execFileSync } from 'node:child_process';

const build = new URL('./build/', import.meta.url).pathname;
export const TOKEN = 'test-upload-token';

/** Starts workerd with the worker; `limits` overrides vars. Storage lives on disk in a temp
 * folder (a 1 GB object must not sit in anyone's memory), removed by `stop`. */
export async function start({ maxUpload = '32000000' } = {}) {
  const storage = mkdtempSync(join(tmpdir(), 'tributary-edge-'));
  const r2Buckets = { ADAPTERS: 'tributary-adapters' };
  const mf = new Miniflare({
    workers: [
      {
        name: 'edge',
        modules: [
          { type: 'ESModule', path: join(build, 'index.js') },
          { type: 'CompiledWasm', path: join(build, 'index_bg.wasm') },
        ],
        modulesRoot: build,
        compatibilityDate: '2026-07-30',
        r2Buckets,
        kvNamespaces: { ADAPTER_INDEX: 'tributary-adapter-index' },
        bindings: { UPLOAD_TOKEN: TOKEN, MAX_UPLOAD_BYTES: maxUpload },
      },
      // Writes large test objects into the same local R2 from inside workerd (through
      // Miniflare's Node proxy a gigabyte takes half a minute).
      { name: 'seed', modules: true, script: SEED, compatibilityDate: '2026-07-30', r2Buckets },
    ],
    cf: false,
    r2Persist: join(storage, 'r2'),
    kvPersist: join(storage, 'kv'),
  });
  const url = await mf.ready;
  return {
    mf,
    url: url.toString().replace(/\/$/, ''),
    /** Stores `size` bytes of `patternBlock` content under `key` in R2. */
    async seed(key, size) {
      const seed = await mf.getWorker('seed');
      const res = await seed.fetch(`http://seed/${key}?size=${size}`, { method: 'PUT' });
      if (res.status !== 201) throw new Error(`seeding ${key}: ${res.status} ${await res.text()}`);
    },
    async stop() {
      await mf.dispose();
      rmSync(storage, { recursive: true, force: true });
    },
  };
}

const MIB = 1 << 20;

/** MiB number `index` of a seeded object: filled with index % 251, its first four bytes the
 * index (little-endian), so no two MiB are alike and a misplaced one changes the hash. */
export function patternBlock(index) {
  const block = Buffer.alloc(MIB, index % 251);
  block.writeUInt32LE(index, 0);
  return block;
}

/** SHA-256 (hex) of a seeded object of `size` bytes (a whole number of MiB). */
export function patternSha256(size) {
  const hash = createHash('sha256');
  for (let i = 0; i < size / MIB; i++) hash.update(patternBlock(i));
  return hash.digest('hex');
}

const SEED = `
export default {
  async fetch(req, env) {
    const url = new URL(req.url);
    const size = Number(url.searchParams.get('size'));
    const MIB = ${MIB};
    let index = 0;
    const body = new FixedLengthStream(size);
    const writer = body.writable.getWriter();
    const write = (async () => {
      for (; index < size / MIB; index++) {
        const block = new Uint8Array(MIB).fill(index % 251);
        new DataView(block.buffer).setUint32(0, index, true);
        await writer.write(block);
      }
      await writer.close();
    })();
    await Promise.all([env.ADAPTERS.put(url.pathname.slice(1), body.readable), write]);
    return new Response(null, { status: 201 });
  },
};
`;

/** The content hash adapters are registered under (tributary-peft's `content_hash`): SHA-256
 * over the config's length as a little-endian u64, the config, then the weights. */
export function contentHash(config, weights) {
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(config.length));
  return createHash('sha256').update(len).update(config).update(weights).digest('hex');
}

export const sha256 = (bytes) => createHash('sha256').update(bytes).digest('hex');

/** A multipart upload of an adapter's two files; `parts` overrides or drops (null) parts. */
export function uploadForm(config, weights, hash, parts = {}) {
  const form = new FormData();
  const all = {
    'adapter_config.json': new Blob([config]),
    'adapter_model.safetensors': new Blob([weights]),
    sha256: hash,
    ...parts,
  };
  for (const [name, value] of Object.entries(all)) {
    if (value === null) continue;
    if (value instanceof Blob) form.append(name, value, name);
    else form.append(name, value);
  }
  return form;
}

/** PIDs of the workerd processes this Node process started. */
export function workerdPids() {
  const out = execFileSync('ps', ['-eo', 'pid=,ppid=,comm='], { encoding: 'utf8' });
  const rows = out.trim().split('\n').map((l) => l.trim().split(/\s+/));
  const children = (pid) => rows.filter((r) => r[1] === String(pid));
  const found = [];
  const walk = (pid) => {
    for (const r of children(pid)) {
      if (r[2].startsWith('workerd')) found.push(Number(r[0]));
      walk(r[0]);
    }
  };
  walk(process.pid);
  return found;
}

/** Anonymous resident memory of a process in bytes (Linux `RssAnon`): the heaps where a
 * buffered body would live, without the file pages that local R2's reads bring in. */
export function rss(pid, field = 'RssAnon') {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = Number(new RegExp(`${field}:\\s+(\\d+)`).exec(status)[1]);
  return kb * 1024;
}
