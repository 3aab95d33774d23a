// `cargo xtask bench edge`: the built worker in workerd (Miniflare). Receipt verification time
// per request (client round trip on loopback, the anvil fixture to Anchored), and adapter download
// throughput through the worker against reading the same bytes from a local file (both read by
// this Node process, the file in 1 MiB chunks, hot in the page cache like local R2's blobs). Bundle sizes
// come from xtask (it built the worker) through the environment. Completions on the worker's CPU:
// greedy tokens per second for the model fixture and for a synthetic base near the default
// memory budget, one request alone and eight in flight at once (one shared engine batches them).
import { closeSync, createReadStream, openSync, readFileSync, rmSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { patternBlock, patternSha256, seedBase, start, syntheticLlama } from './miniflare.mjs';

const receipts = JSON.parse(readFileSync(new URL('../pkg/test/fixtures/anchored.json', import.meta.url), 'utf8'));
const SIZE = 1 << 30;
const ROUNDS = 3;

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const pct = (xs, p) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(xs.length * p))];

async function drain(stream) {
  let n = 0;
  for await (const chunk of stream) n += chunk.length;
  return n;
}

const fixtures = new URL('../crates/tributary-model/tests/fixtures/llama-gqa/', import.meta.url);
const fixture = (file) => readFileSync(new URL(file, fixtures));
const TOKENS = 64;

/** Tokens per second: `clients` greedy requests of TOKENS tokens in flight at once. */
async function throughput(url, model, clients) {
  const one = () => fetch(`${url}/v1/completions`, {
    method: 'POST',
    body: JSON.stringify({ model, prompt: 'This License applies to any program', max_tokens: TOKENS, temperature: 0, ignore_eos: true }),
  }).then(async (res) => {
    const out = await res.json();
    if (out.choices?.[0]?.token_ids?.length !== TOKENS) throw new Error(`completion gave ${JSON.stringify(out)}`);
  });
  await one(); // the base loads on the first request
  const rates = [];
  for (let r = 0; r < ROUNDS; r++) {
    const t = performance.now();
    await Promise.all(Array.from({ length: clients }, one));
    rates.push((clients * TOKENS) / ((performance.now() - t) / 1000));
  }
  return median(rates);
}

const generation = [];
for (const [name, files] of [
  ['llama-gqa', { 'config.json': fixture('config.json'), 'model.safetensors': fixture('model.safetensors') }],
  ['wide', (() => {
    const { config, weights } = syntheticLlama(JSON.parse(fixture('config.json')), { hidden: 512, intermediate: 1536, layers: 2, heads: 8, vocab: 384 });
    return { 'config.json': Buffer.from(JSON.stringify(config)), 'model.safetensors': weights };
  })()],
]) {
  const g = await start({ vars: { BASE_MODEL: name } });
  try {
    await seedBase(g, name, { ...files, 'tokenizer.json': fixture('tokenizer.json') });
    const alone = await throughput(g.url, name, 1);
    const eight = await throughput(g.url, name, 8);
    const health = await (await fetch(`${g.url}/healthz`)).json();
    generation.push({ name, bytes: files['model.safetensors'].length, alone, eight, memory: health.wasm_memory_bytes });
  } finally {
    await g.stop();
  }
}

const w = await start();
try {
  const body = JSON.stringify({ receipt: receipts.receipt, proofs: receipts.proofs, trustedHeader: receipts.trustedHeader });
  const verify = async () => {
    const res = await fetch(`${w.url}/v1/receipts/verify`, { method: 'POST', body, headers: { 'content-type': 'application/json' } });
    const out = await res.json();
    if (out.trust !== 'Anchored') throw new Error(`verification gave ${JSON.stringify(out)}`);
  };
  for (let i = 0; i < 20; i++) await verify();
  const times = [];
  for (let i = 0; i < 300; i++) {
    const t = performance.now();
    await verify();
    times.push(performance.now() - t);
  }
  const health = [];
  for (let i = 0; i < 300; i++) {
    const t = performance.now();
    await (await fetch(`${w.url}/healthz`)).arrayBuffer();
    health.push(performance.now() - t);
  }

  const digest = patternSha256(SIZE);
  await w.seed(`blobs/${digest}`, SIZE);
  const kv = await w.mf.getKVNamespace('ADAPTER_INDEX');
  await kv.put('adapter:big', JSON.stringify({
    id: 'big', object: 'adapter', hash: digest, rank: 1, alpha: 1, targets: ['q_proj'], layers: 1, parameters: 0,
    bytes: SIZE, created: 0,
    files: [{ name: 'adapter_model.safetensors', sha256: digest, bytes: SIZE, url: '/v1/adapters/big/adapter_model.safetensors' }],
  }));
  const file = join(tmpdir(), `tributary-edge-bench-${process.pid}`);
  const fd = openSync(file, 'w');
  for (let i = 0; i < SIZE / (1 << 20); i++) writeSync(fd, patternBlock(i));
  closeSync(fd);
  const worker = [];
  const direct = [];
  try {
    for (let r = 0; r < ROUNDS; r++) {
      let t = performance.now();
      const res = await fetch(`${w.url}/v1/adapters/big/adapter_model.safetensors`);
      if ((await drain(res.body)) !== SIZE) throw new Error('short download');
      worker.push(SIZE / ((performance.now() - t) / 1000));
      t = performance.now();
      if ((await drain(createReadStream(file, { highWaterMark: 1 << 20 }))) !== SIZE) throw new Error('short read');
      direct.push(SIZE / ((performance.now() - t) / 1000));
    }
  } finally {
    rmSync(file, { force: true });
  }

  const raw = Number(process.env.TRIBUTARY_EDGE_RAW ?? NaN);
  const gz = Number(process.env.TRIBUTARY_EDGE_GZ ?? NaN);
  const mb = (x) => (x / 1e6).toFixed(2);
  console.log('\nedge worker under Miniflare (workerd from npm), loopback, one sequential client\n');
  console.log('| bundle raw MB | bundle gzip MB (goal <= 3 MiB = 3.15 MB) | verify median ms | verify p99 ms | /healthz median ms |');
  console.log('|---|---|---|---|---|');
  console.log(`| ${mb(raw)} | ${mb(gz)} | ${median(times).toFixed(2)} | ${pct(times, 0.99).toFixed(2)} | ${median(health).toFixed(2)} |`);
  console.log(`\n1 GiB adapter file, ${ROUNDS} rounds (median): through the worker vs a local file read (1 MiB chunks)\n`);
  console.log('| through the worker MB/s | direct file MB/s | ratio |');
  console.log('|---|---|---|');
  console.log(`| ${mb(median(worker))} | ${mb(median(direct))} | ${(median(worker) / median(direct)).toFixed(3)} |`);
  console.log(`\nCompletions on the worker's CPU (NdArray in wasm), greedy, ${TOKENS} tokens per request, ${ROUNDS} rounds (median)\n`);
  console.log('| base | safetensors MB | 1 request tok/s | 8 in flight tok/s | ratio | wasm memory MiB |');
  console.log('|---|---|---|---|---|---|');
  for (const g of generation) {
    console.log(`| ${g.name} | ${mb(g.bytes)} | ${g.alone.toFixed(1)} | ${g.eight.toFixed(1)} | ${(g.eight / g.alone).toFixed(2)} | ${(g.memory / 2 ** 20).toFixed(1)} |`);
  }
} finally {
  await w.stop();
}
