// The edge worker in the real workerd (Miniflare) with local R2/KV/secret bindings: adapters
// written by Hugging Face PEFT (the model crate's fixtures) uploaded, listed and downloaded whole,
// by ranges and conditionally; bad uploads refused with nothing stored; the anvil receipt fixture
// verified, and every single-field change rejected at the wallet's step; a 1 GB object streamed
// with workerd's memory flat.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import {
  TOKEN, contentHash, patternSha256, rss, sha256, start, uploadForm, workerdPids,
} from '../miniflare.mjs';
import { proofTampers, receiptTampers } from '../../pkg/test/tamper.mjs';

const fixtures = new URL('../../crates/tributary-model/tests/fixtures/', import.meta.url);
const adapter = (dir) => ({
  config: readFileSync(new URL(`${dir}/adapter_config.json`, fixtures)),
  weights: readFileSync(new URL(`${dir}/adapter_model.safetensors`, fixtures)),
});
const attn = adapter('llama-gqa/adapters/attn-r8');
const mlp = adapter('llama-gqa/adapters/mlp-r4');
const receipts = JSON.parse(readFileSync(new URL('../../pkg/test/fixtures/anchored.json', import.meta.url), 'utf8'));

const auth = { authorization: `Bearer ${TOKEN}` };

async function put(url, id, form, headers = auth) {
  const res = await fetch(`${url}/v1/adapters/${id}`, { method: 'PUT', body: form, headers });
  return { status: res.status, body: await res.json() };
}

/** An OpenAI-shaped error: {error: {message, type, param, code}}. */
function assertError(body, type, message) {
  assert.equal(body.error.type, type, JSON.stringify(body));
  assert.match(body.error.message, message);
  assert.ok('param' in body.error && 'code' in body.error);
}

async function stored(mf) {
  const bucket = await mf.getR2Bucket('ADAPTERS');
  const kv = await mf.getKVNamespace('ADAPTER_INDEX');
  return { blobs: (await bucket.list()).objects.length, entries: (await kv.list()).keys.length };
}

describe('adapters', () => {
  let w;
  before(async () => { w = await start(); });
  after(async () => { await w?.stop(); });

  test('bad uploads are refused with JSON errors and store nothing', async () => {
    const { config, weights } = attn;
    const good = contentHash(config, weights);
    const cases = [
      [401, 'authentication_error', /Bearer/, uploadForm(config, weights, good), {}],
      [401, 'authentication_error', /Bearer/, uploadForm(config, weights, good), { authorization: 'Bearer wrong' }],
      [400, 'invalid_request_error', /sha256.*hash to/, uploadForm(config, weights, 'ab'.repeat(32))],
      [400, 'invalid_request_error', /sha256.*64 hex/, uploadForm(config, weights, 'xyz')],
      [400, 'invalid_request_error', /sha256.*missing/, uploadForm(config, weights, good, { sha256: null })],
      [400, 'invalid_request_error', /adapter_model\.safetensors.*missing/,
        uploadForm(config, weights, good, { 'adapter_model.safetensors': null })],
      // Cut mid-tensor: the header promises bytes that are not there.
      [400, 'invalid_request_error', /^adapter_model\.safetensors: not a valid safetensors file/,
        uploadForm(config, weights.subarray(0, weights.length - 7), contentHash(config, weights.subarray(0, weights.length - 7)))],
      [400, 'invalid_request_error', /^adapter_config\.json: invalid JSON/,
        uploadForm(config.subarray(0, 10), weights, contentHash(config.subarray(0, 10), weights))],
      // The other adapter's config over these weights: its targets are not these tensors'.
      [400, 'invalid_request_error', /^adapter_model\.safetensors: tensor `.*`: targets/,
        uploadForm(mlp.config, weights, contentHash(mlp.config, weights))],
    ];
    for (const [status, type, message, form, headers = auth] of cases) {
      const res = await put(w.url, 'attn', form, headers);
      assert.equal(res.status, status, JSON.stringify(res.body));
      assertError(res.body, type, message);
    }
    for (const id of ['.hidden', 'a%20b']) {
      const invalid = await put(w.url, id, uploadForm(config, weights, good));
      assert.equal(invalid.status, 400, id);
      assertError(invalid.body, 'invalid_request_error', /id/);
    }
    const refused = await fetch(`${w.url}/v1/adapters/attn`, { method: 'PUT', body: uploadForm(config, weights, good) });
    assert.equal(refused.headers.get('www-authenticate'), 'Bearer');
    assert.match(refused.headers.get('content-type'), /application\/json/);
    assert.deepEqual(await stored(w.mf), { blobs: 0, entries: 0 });
  });

  test('an upload over the size limit is refused before it is read', async () => {
    const small = await start({ maxUpload: '1000' });
    try {
      const res = await put(small.url, 'attn', uploadForm(attn.config, attn.weights, contentHash(attn.config, attn.weights)));
      assert.equal(res.status, 413);
      assertError(res.body, 'invalid_request_error', /at most 1000 bytes/);
      assert.deepEqual(await stored(small.mf), { blobs: 0, entries: 0 });
    } finally {
      await small.stop();
    }
  });

  test('upload, list, download whole, by ranges and conditionally', async () => {
    const { config, weights } = attn;
    const hash = contentHash(config, weights);
    const created = await put(w.url, 'attn', uploadForm(config, weights, hash));
    assert.equal(created.status, 201, JSON.stringify(created.body));
    const m = created.body;
    assert.equal(m.id, 'attn');
    assert.equal(m.hash, hash);
    assert.equal(m.rank, 8);
    assert.deepEqual(m.targets, ['q_proj', 'k_proj', 'v_proj', 'o_proj']);
    assert.equal(m.layers, 2);
    assert.deepEqual(m.files.map((f) => [f.name, f.sha256, f.bytes]), [
      ['adapter_config.json', sha256(config), config.length],
      ['adapter_model.safetensors', sha256(weights), weights.length],
    ]);
    // The same content again is accepted as is; other content under the id is not.
    assert.equal((await put(w.url, 'attn', uploadForm(config, weights, hash))).status, 200);
    const other = await put(w.url, 'attn', uploadForm(mlp.config, mlp.weights, contentHash(mlp.config, mlp.weights)));
    assert.equal(other.status, 409);
    assertError(other.body, 'invalid_request_error', /write-once/);
    assert.equal((await put(w.url, 'mlp', uploadForm(mlp.config, mlp.weights, contentHash(mlp.config, mlp.weights)))).status, 201);

    const list = await (await fetch(`${w.url}/v1/adapters`)).json();
    assert.equal(list.object, 'list');
    assert.deepEqual(list.data.map((a) => [a.id, a.hash, a.rank]), [
      ['attn', hash, 8],
      ['mlp', contentHash(mlp.config, mlp.weights), 4],
    ]);
    const paged = await (await fetch(`${w.url}/v1/adapters?limit=1`)).json();
    assert.equal(paged.data.length, 1);
    assert.equal(paged.complete, false);
    const rest = await (await fetch(`${w.url}/v1/adapters?limit=1&cursor=${encodeURIComponent(paged.cursor)}`)).json();
    assert.deepEqual(rest.data.map((a) => a.id), ['mlp']);

    const url = `${w.url}/v1/adapters/attn/adapter_model.safetensors`;
    // The manifest's URL pins the bytes by hash: immutable; the bare one revalidates.
    assert.equal(m.files[1].url, `/v1/adapters/attn/adapter_model.safetensors?sha256=${sha256(weights)}`);
    const pinned = await fetch(`${w.url}${m.files[1].url}`);
    assert.ok(Buffer.from(await pinned.arrayBuffer()).equals(weights));
    assert.equal(pinned.headers.get('cache-control'), 'public, max-age=31536000, immutable');
    const otherHash = await fetch(`${url}?sha256=${sha256(config)}`);
    assert.equal(otherHash.status, 404);
    assertError(await otherHash.json(), 'not_found_error', /with sha256/);
    const whole = await fetch(url);
    assert.equal(whole.status, 200);
    assert.ok(Buffer.from(await whole.arrayBuffer()).equals(weights));
    const etag = `"${sha256(weights)}"`;
    assert.equal(whole.headers.get('etag'), etag);
    assert.equal(whole.headers.get('x-content-sha256'), sha256(weights));
    assert.equal(whole.headers.get('repr-digest'),
      `sha-256=:${createHash('sha256').update(weights).digest('base64')}:`);
    assert.equal(whole.headers.get('cache-control'), 'no-cache');
    assert.equal(whole.headers.get('access-control-allow-origin'), '*');
    assert.match(whole.headers.get('access-control-expose-headers'), /content-range/);
    assert.equal(whole.headers.get('content-length'), String(weights.length));
    assert.equal(whole.headers.get('accept-ranges'), 'bytes');
    const cfg = await fetch(`${w.url}/v1/adapters/attn/adapter_config.json`);
    assert.ok(Buffer.from(await cfg.arrayBuffer()).equals(config));
    assert.equal(cfg.headers.get('content-type'), 'application/json');

    const n = weights.length;
    for (const [range, first, last] of [
      ['bytes=0-99', 0, 99], ['bytes=100-', 100, n - 1], ['bytes=-50', n - 50, n - 1],
      [`bytes=${n - 10}-${n + 1000}`, n - 10, n - 1], ['bytes=7-7', 7, 7],
    ]) {
      const res = await fetch(url, { headers: { range } });
      assert.equal(res.status, 206, range);
      assert.equal(res.headers.get('content-range'), `bytes ${first}-${last}/${n}`);
      assert.ok(Buffer.from(await res.arrayBuffer()).equals(weights.subarray(first, last + 1)), range);
    }
    const past = await fetch(url, { headers: { range: `bytes=${n}-` } });
    assert.equal(past.status, 416);
    assert.equal(past.headers.get('content-range'), `bytes */${n}`);
    assert.match(past.headers.get('content-type'), /application\/json/);
    assertError(await past.json(), 'invalid_request_error', /range/);
    const head = await fetch(url, { method: 'HEAD' });
    assert.equal(head.status, 200);
    assert.equal(head.headers.get('content-length'), String(n));
    assert.equal((await head.arrayBuffer()).byteLength, 0);
    const preflight = await fetch(url, { method: 'OPTIONS' });
    assert.equal(preflight.status, 204);
    assert.match(preflight.headers.get('access-control-allow-headers'), /range/);

    for (const inm of [etag, `"other", ${etag}`, '*']) {
      const again = await fetch(url, { headers: { 'if-none-match': inm } });
      assert.equal(again.status, 304, inm);
      assert.equal((await again.arrayBuffer()).byteLength, 0);
    }
    const stale = await fetch(url, { headers: { 'if-range': '"old"', range: 'bytes=0-9' } });
    assert.equal(stale.status, 200, 'If-Range with another tag gets the whole file');
    assert.equal((await stale.arrayBuffer()).byteLength, n);

    const manifest = await (await fetch(`${w.url}/v1/adapters/attn`)).json();
    assert.deepEqual(manifest, m);
    for (const path of ['/v1/adapters/nope', '/v1/adapters/attn/other.bin', '/v1/nothing', '/v1/adapters/a/b/c']) {
      const res = await fetch(`${w.url}${path}`);
      assert.equal(res.status, 404, path);
      assertError(await res.json(), 'not_found_error', /no /);
    }
    const wrong = await fetch(`${w.url}/v1/adapters`, { method: 'DELETE' });
    assert.equal(wrong.status, 405);
    assertError(await wrong.json(), 'invalid_request_error', /not allowed/);
    const health = await (await fetch(`${w.url}/healthz`)).json();
    assert.equal(health.status, 'ok');
    assert.equal(health.base, null, 'no completion has loaded a base');
  });

  test('a 1 GB object streams through without workerd holding it', async () => {
    const size = 1 << 30;
    const digest = patternSha256(size);
    const t0 = performance.now();
    await w.seed(`blobs/${digest}`, size);
    console.log(`1 GiB written into local R2 in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
    const kv = await w.mf.getKVNamespace('ADAPTER_INDEX');
    const manifest = {
      id: 'big', object: 'adapter', hash: digest, rank: 1, alpha: 1, targets: ['q_proj'], layers: 1,
      parameters: 0, bytes: size, created: 0,
      files: [{ name: 'adapter_model.safetensors', sha256: digest, bytes: size, url: '/v1/adapters/big/adapter_model.safetensors' }],
    };
    await kv.put('adapter:big', JSON.stringify(manifest));

    const pids = workerdPids();
    assert.ok(pids.length > 0, 'workerd runs under this process');
    const memory = (field) => pids.reduce((sum, pid) => sum + rss(pid, field), 0);
    console.log(['VmRSS', 'RssAnon', 'RssFile', 'RssShmem'].map((f) => `${f} ${(memory(f) / 2 ** 20).toFixed(0)}`).join(' '));
    const before = memory();
    let peak = before;
    const t1 = performance.now();
    const res = await fetch(`${w.url}/v1/adapters/big/adapter_model.safetensors`);
    assert.equal(res.status, 200);
    assert.equal(res.headers.get('content-length'), String(size));
    const received = createHash('sha256');
    let bytes = 0;
    let chunks = 0;
    let firstByte;
    for await (const chunk of res.body) {
      firstByte ??= performance.now() - t1;
      received.update(chunk);
      bytes += chunk.length;
      if (++chunks % 64 === 0) peak = Math.max(peak, memory());
      if (process.env.TRACE && chunks % 4096 === 0) console.log(bytes >> 20, (memory() - before) >> 20, ((performance.now() - t1) / 1000).toFixed(1));
    }
    peak = Math.max(peak, memory());
    console.log(['VmRSS', 'RssAnon', 'RssFile', 'RssShmem'].map((f) => `${f} ${(memory(f) / 2 ** 20).toFixed(0)}`).join(' '));
    console.log(`1 GiB through the worker in ${((performance.now() - t1) / 1000).toFixed(1)} s, first byte after ${firstByte.toFixed(0)} ms`);
    assert.equal(bytes, size);
    assert.equal(received.digest('hex'), digest);
    const grew = peak - before;
    console.log(`workerd RSS ${(before / 2 ** 20).toFixed(0)} MiB before, peak +${(grew / 2 ** 20).toFixed(1)} MiB over 1 GiB streamed`);
    // An isolate may use 128 MB; a buffered gigabyte would show as ~1024 MiB here.
    assert.ok(grew < 128 * 2 ** 20, `workerd grew ${grew} bytes while streaming`);
  });
});

describe('receipt verification', () => {
  let w;
  before(async () => { w = await start(); });
  after(async () => { await w?.stop(); });

  const verify = async (body) => {
    const res = await fetch(`${w.url}/v1/receipts/verify`, {
      method: 'POST',
      body: typeof body === 'string' ? body : JSON.stringify(body),
      headers: { 'content-type': 'application/json' },
    });
    return { status: res.status, body: await res.json() };
  };

  test('the anvil receipt is Anchored with its proofs and Signed without', async () => {
    const full = await verify({ receipt: receipts.receipt, proofs: receipts.proofs, trustedHeader: receipts.trustedHeader });
    assert.equal(full.status, 200);
    assert.equal(full.body.valid, true);
    assert.equal(full.body.trust, 'Anchored');
    assert.ok(receipts.batch.digests.includes(full.body.digest));
    const bare = await verify({ receipt: receipts.receipt });
    assert.deepEqual(bare.body, { valid: true, trust: 'Signed', digest: full.body.digest });
  });

  test('every tampered field is rejected at its step', async () => {
    const tampers = receiptTampers(receipts);
    assert.ok(tampers.length >= 15);
    for (const [name, signed] of tampers) {
      const out = await verify({ receipt: signed, proofs: receipts.proofs, trustedHeader: receipts.trustedHeader });
      assert.equal(out.status, 200);
      assert.equal(out.body.valid, false, name);
      assert.equal(out.body.step, 'signature', `${name}: ${out.body.error}`);
    }
    for (const [step, change] of proofTampers) {
      const proofs = structuredClone(receipts.proofs);
      const trustedHeader = structuredClone(receipts.trustedHeader);
      change(proofs, trustedHeader);
      const out = await verify({ receipt: receipts.receipt, proofs, trustedHeader });
      assert.equal(out.body.valid, false, change.toString());
      assert.equal(out.body.step, step, `${change}: ${out.body.error}`);
    }
  });

  test('input that is not a receipt bundle is a 400 naming the problem', async () => {
    const cases = [
      ['{', /request body/],
      [{}, /receipt/],
      [{ receipt: receipts.receipt, proofs: receipts.proofs }, /trustedHeader/],
      [{ receipt: receipts.receipt, proofs: { ...receipts.proofs, root: '0x12' }, trustedHeader: receipts.trustedHeader }, /request body/],
      [{ receipt: receipts.receipt, extra: 1 }, /unknown field `extra`/],
    ];
    for (const [body, message] of cases) {
      const out = await verify(body);
      assert.equal(out.status, 400, JSON.stringify(body).slice(0, 80));
      assertError(out.body, 'invalid_request_error', message);
    }
    const huge = await verify('x'.repeat(300 * 1024));
    assert.equal(huge.status, 413);
  });
});
