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

/** Starts workerd with the worker; `vars` adds to or overrides wrangler.toml's vars. Storage
 * lives on disk in a temp folder (a 1 GB object must not sit in anyone's memory), removed by
 * `stop`. */
export async function start({ maxUpload = '32000000', vars = {} } = {}) {
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
        compatibilityFlags: ['enable_request_signal'],
        r2Buckets,
        kvNamespaces: { ADAPTER_INDEX: 'tributary-adapter-index' },
        bindings: { UPLOAD_TOKEN: TOKEN, MAX_UPLOAD_BYTES: maxUpload, ...vars },
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

/** The base's Hugging Face files into the worker's R2, where BASE_MODEL names them. */
export async function seedBase(w, name, files) {
  const bucket = await w.mf.getR2Bucket('ADAPTERS');
  for (const [file, bytes] of Object.entries(files)) await bucket.put(`models/${name}/${file}`, bytes);
}

/** A Llama checkpoint of the given shape (`base`: a config.json to start from) with small pseudo-random f32 weights (norms 1), as
 * Hugging Face would write it: config.json and one safetensors file. */
export function syntheticLlama(base, { hidden, intermediate, layers, heads, vocab }) {
  const headDim = hidden / heads;
  const config = {
    ...base, hidden_size: hidden, intermediate_size: intermediate, num_hidden_layers: layers,
    num_attention_heads: heads, num_key_value_heads: heads, head_dim: headDim, vocab_size: vocab,
  };
  const tensors = [['model.embed_tokens.weight', [vocab, hidden]]];
  for (let l = 0; l < layers; l++) {
    const p = `model.layers.${l}.`;
    for (const m of ['q', 'k', 'v', 'o']) tensors.push([`${p}self_attn.${m}_proj.weight`, [hidden, hidden]]);
    tensors.push([`${p}mlp.gate_proj.weight`, [intermediate, hidden]], [`${p}mlp.up_proj.weight`, [intermediate, hidden]],
      [`${p}mlp.down_proj.weight`, [hidden, intermediate]],
      [`${p}input_layernorm.weight`, [hidden]], [`${p}post_attention_layernorm.weight`, [hidden]]);
  }
  tensors.push(['model.norm.weight', [hidden]], ['lm_head.weight', [vocab, hidden]]);
  const header = {};
  let offset = 0;
  for (const [name, shape] of tensors) {
    const bytes = 4 * shape.reduce((a, b) => a * b, 1);
    header[name] = { dtype: 'F32', shape, data_offsets: [offset, offset + bytes] };
    offset += bytes;
  }
  let json = JSON.stringify(header);
  json += ' '.repeat((8 - (json.length % 8)) % 8);
  const out = Buffer.alloc(8 + json.length + offset);
  out.writeBigUInt64LE(BigInt(json.length), 0);
  out.write(json, 8, 'latin1');
  const data = new Float32Array(out.buffer, out.byteOffset + 8 + json.length, offset / 4);
  let state = 12345;
  for (const [name, shape] of tensors) {
    const [start, end] = header[name].data_offsets.map((o) => o / 4);
    const norm = shape.length === 1;
    for (let i = start; i < end; i++) {
      state = (Math.imul(state, 1103515245) + 12345) >>> 0;
      data[i] = norm ? 1 : ((state / 2 ** 32) - 0.5) * 0.04;
    }
  }
  return { config, weights: out };
}
