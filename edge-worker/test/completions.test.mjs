// Completions on the worker's CPU, in the real workerd (Miniflare): the model crate's Hugging Face
// fixture as the base in local R2 and adapters uploaded through the worker; greedy tokens equal
// transformers' (+ PEFT's) reference tokens, alone, streamed and all at once; bad requests and
// models or adapters over the budgets refused with the node's JSON errors; and a base near the
// default memory budget loads and runs within 128 MB; a client that goes away mid-stream stops its
// generation (through the request signal: this workerd does not cancel a streamed body on
// disconnect, workerd#6832) and frees its KV blocks.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { TOKEN, contentHash, seedBase, start, syntheticLlama, uploadForm } from '../miniflare.mjs';

const fixtures = new URL('../../crates/tributary-model/tests/fixtures/', import.meta.url);
const read = (path) => readFileSync(new URL(path, fixtures));
const reference = JSON.parse(read('llama-gqa/reference.json'));
const auth = { authorization: `Bearer ${TOKEN}` };
const ISOLATE_MEMORY = 128 * 1024 * 1024;

const fixtureBase = () => ({
  'config.json': read('llama-gqa/config.json'),
  'tokenizer.json': read('llama-gqa/tokenizer.json'),
  'model.safetensors': read('llama-gqa/model.safetensors'),
});

async function upload(w, id, dir) {
  const config = read(`${dir}/adapter_config.json`);
  const weights = read(`${dir}/adapter_model.safetensors`);
  const res = await fetch(`${w.url}/v1/adapters/${id}`, {
    method: 'PUT', headers: auth, body: uploadForm(config, weights, contentHash(config, weights)),
  });
  assert.equal(res.status, 201, await res.text());
}

async function complete(url, body) {
  const res = await fetch(`${url}/v1/completions`, {
    method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body),
  });
  return { status: res.status, body: await res.json() };
}

/** A streamed completion's chunks (parsed), checking the framing and the final `[DONE]`. */
async function completeStreamed(url, body) {
  const res = await fetch(`${url}/v1/completions`, {
    method: 'POST', body: JSON.stringify({ ...body, stream: true }),
  });
  assert.equal(res.status, 200);
  assert.equal(res.headers.get('content-type'), 'text/event-stream');
  const frames = (await res.text()).split('\n\n').filter((f) => f.length > 0);
  assert.ok(frames.every((f) => f.startsWith('data: ')), frames.join('|'));
  assert.equal(frames.at(-1), 'data: [DONE]');
  return frames.slice(0, -1).map((f) => JSON.parse(f.slice('data: '.length)));
}

const greedy = (model, prompt, n) => ({ model, prompt, max_tokens: n, temperature: 0, ignore_eos: true });

function assertError(res, status, type, message) {
  assert.equal(res.status, status, JSON.stringify(res.body));
  assert.equal(res.body.error.type, type, JSON.stringify(res.body));
  assert.match(res.body.error.message, message);
}

async function health(url) {
  return (await fetch(`${url}/healthz`)).json();
}

describe('completions on the CPU', () => {
  let w;
  before(async () => {
    w = await start({ vars: { BASE_MODEL: 'llama-gqa' } });
    await seedBase(w, 'llama-gqa', fixtureBase());
    await upload(w, 'attn', 'llama-gqa/adapters/attn-r8');
    await upload(w, 'mlp', 'llama-gqa/adapters/mlp-r4');
    // Well-formed PEFT files, so the upload takes them, but made for Qwen2's shapes.
    await upload(w, 'qwen', 'qwen2-bias/adapters/all-r6');
  });
  after(async () => { await w?.stop(); });

  // Every (model, prompt) the reference has: the base and both adapters.
  const cases = () => [
    ['llama-gqa', reference.base],
    ['llama-gqa:attn', reference.adapters['attn-r8']],
    ['llama-gqa:mlp', reference.adapters['mlp-r4']],
  ].flatMap(([model, refs]) => refs.map((r, i) => ({ model, prompt: reference.prompts[i], ref: r })));

  test("greedy tokens equal transformers' and PEFT's, one request at a time", async () => {
    for (const { model, prompt, ref } of cases()) {
      const res = await complete(w.url, greedy(model, prompt, ref.greedy.length));
      assert.equal(res.status, 200, JSON.stringify(res.body));
      assert.deepEqual(res.body.choices[0].token_ids, ref.greedy, `${model}: ${prompt}`);
      assert.equal(res.body.object, 'text_completion');
      assert.equal(res.body.model, model);
      assert.equal(res.body.choices[0].finish_reason, 'length');
      assert.equal(res.body.usage.prompt_tokens, ref.prompt_ids.length);
      assert.equal(res.body.usage.completion_tokens, ref.greedy.length);
    }
  });

  test('a stream carries the same text chunk by chunk, then the finish reason', async () => {
    const { model, prompt, ref } = cases()[2];
    const whole = await complete(w.url, greedy(model, prompt, ref.greedy.length));
    const chunks = await completeStreamed(w.url, greedy(model, prompt, ref.greedy.length));
    assert.equal(chunks.length, ref.greedy.length + 1);
    assert.equal(chunks.map((c) => c.choices[0].text).join(''), whole.body.choices[0].text);
    assert.ok(chunks.every((c) => c.object === 'text_completion' && c.id === chunks[0].id));
    assert.deepEqual(chunks.slice(0, -1).map((c) => c.choices[0].finish_reason), Array(ref.greedy.length).fill(null));
    assert.equal(chunks.at(-1).choices[0].finish_reason, 'length');
  });

  test('requests in flight together share the engine and each gets its own tokens', async () => {
    const all = cases();
    const results = await Promise.all(all.map(({ model, prompt, ref }, i) => {
      const body = greedy(model, prompt, ref.greedy.length);
      if (i % 2 === 1) return complete(w.url, body).then((r) => r.body.choices[0].token_ids);
      // Streamed ones: the token ids are not in the chunks, so compare the text.
      return completeStreamed(w.url, body).then((chunks) => chunks.map((c) => c.choices[0].text).join(''));
    }));
    for (const [i, { model, prompt, ref }] of all.entries()) {
      if (i % 2 === 1) {
        assert.deepEqual(results[i], ref.greedy, `${model}: ${prompt}`);
      } else {
        const alone = await complete(w.url, greedy(model, prompt, ref.greedy.length));
        assert.deepEqual(alone.body.choices[0].token_ids, ref.greedy);
        assert.equal(results[i], alone.body.choices[0].text, `${model}: ${prompt}`);
      }
    }
  });

  test('bad requests get the node’s JSON errors', async () => {
    const prompt = reference.prompts[0];
    assertError(await complete(w.url, greedy('other', prompt, 2)), 404, 'model_not_found', /no model `other`/);
    assertError(await complete(w.url, greedy('llama-gqa:nope', prompt, 2)), 404, 'invalid_request_error', /no adapter `nope`/);
    assertError(await complete(w.url, greedy('llama-gqa:qwen', prompt, 2)), 422, 'invalid_request_error',
      /adapter `qwen` does not fit base model `llama-gqa`/);
    assertError(await complete(w.url, { model: 'llama-gqa' }), 400, 'invalid_request_error', /`prompt`/);
    assertError(await complete(w.url, { prompt }), 400, 'invalid_request_error', /`model`/);
    // Longer than the fixture's 256-position context.
    assertError(await complete(w.url, greedy('llama-gqa', 'word '.repeat(400), 2)), 413, 'invalid_request_error', /context/);
    const res = await fetch(`${w.url}/v1/completions`, { method: 'POST', body: '{"model":' });
    assertError({ status: res.status, body: await res.json() }, 400, 'invalid_request_error', /not valid JSON/);
    const get = await fetch(`${w.url}/v1/completions`);
    assert.equal(get.status, 405);
  });

  test('a client that goes away mid-stream stops its generation and frees its KV blocks', async () => {
    await complete(w.url, greedy('llama-gqa', 'Hello', 1)); // the base is loaded
    const before = (await health(w.url)).base.engine.tokens;
    const controller = new AbortController();
    const res = await fetch(`${w.url}/v1/completions`, {
      method: 'POST', signal: controller.signal,
      body: JSON.stringify({ ...greedy('llama-gqa:attn', 'Hello', 240), stream: true }),
    });
    const reader = res.body.getReader();
    await reader.read();
    controller.abort();
    await reader.closed.catch(() => {});
    // The request is cancelled before the next step, which the next request runs.
    let engine;
    for (let i = 0; i < 50; i++) {
      await new Promise((r) => setTimeout(r, 20));
      const next = await complete(w.url, greedy('llama-gqa', 'Hello', 1));
      assert.equal(next.status, 200);
      engine = (await health(w.url)).base.engine;
      if (engine.running === 0) break;
    }
    assert.deepEqual([engine.running, engine.waiting, engine.kv_blocks_used], [0, 0, 0], JSON.stringify(engine));
    // Stopped, not run to its end: the stream asked for 240 tokens.
    assert.ok(engine.tokens - before < 200, `${engine.tokens - before} tokens generated`);
  });

  test('the isolate stays far inside 128 MB', async () => {
    const h = await health(w.url);
    assert.equal(h.base.name, 'llama-gqa');
    assert.ok(h.wasm_memory_bytes > 0 && h.wasm_memory_bytes < ISOLATE_MEMORY / 2, JSON.stringify(h));
  });
});

describe('budgets', () => {
  let w;
  after(async () => { await w?.stop(); });

  test('a base or adapter over its budget is a 413 that names the budget', async () => {
    w = await start({ vars: { BASE_MODEL: 'llama-gqa', MODEL_MEMORY_BYTES: '500000', ADAPTER_MEMORY_BYTES: '10000' } });
    await seedBase(w, 'llama-gqa', fixtureBase());
    assertError(await complete(w.url, greedy('llama-gqa', 'Hello', 2)), 413, 'invalid_request_error',
      /base model `llama-gqa` is too big .* over MODEL_MEMORY_BYTES = 500000/);
    assert.equal((await health(w.url)).base, null, 'nothing was loaded');
    await w.stop();

    w = await start({ vars: { BASE_MODEL: 'llama-gqa', ADAPTER_MEMORY_BYTES: '10000' } });
    await seedBase(w, 'llama-gqa', fixtureBase());
    await upload(w, 'attn', 'llama-gqa/adapters/attn-r8');
    assertError(await complete(w.url, greedy('llama-gqa:attn', 'Hello', 2)), 413, 'invalid_request_error',
      /adapter `attn` is too big .* over ADAPTER_MEMORY_BYTES = 10000/);
    assert.equal((await complete(w.url, greedy('llama-gqa', 'Hello', 2))).status, 200);
  });

  test('a worker without BASE_MODEL says so', async () => {
    const bare = await start();
    try {
      assertError(await complete(bare.url, greedy('llama-gqa', 'Hello', 2)), 404, 'model_not_found', /BASE_MODEL/);
    } finally {
      await bare.stop();
    }
  });

  test('a base near the default budget loads and generates within 128 MB', async (t) => {
    const { config, weights } = syntheticLlama(JSON.parse(read('llama-gqa/config.json')), { hidden: 512, intermediate: 1536, layers: 2, heads: 8, vocab: 384 });
    const big = await start({ vars: { BASE_MODEL: 'wide' } });
    try {
      await seedBase(big, 'wide', {
        'config.json': Buffer.from(JSON.stringify(config)),
        'tokenizer.json': read('llama-gqa/tokenizer.json'),
        'model.safetensors': weights,
      });
      const res = await complete(big.url, greedy('wide', reference.prompts[0], 8));
      assert.equal(res.status, 200, JSON.stringify(res.body));
      assert.equal(res.body.choices[0].token_ids.length, 8);
      const h = await health(big.url);
      t.diagnostic(`safetensors ${weights.length} bytes; load_bytes ${h.base.load_bytes} of the default 64000000; ` +
        `wasm memory ${h.wasm_memory_bytes} bytes (${(h.wasm_memory_bytes / 2 ** 20).toFixed(1)} MiB)`);
      assert.ok(h.base.load_bytes > 0.85 * 64e6 && h.base.load_bytes <= 64e6, `${h.base.load_bytes}`);
      assert.ok(h.wasm_memory_bytes < ISOLATE_MEMORY - 24 * 2 ** 20,
        `wasm memory ${h.wasm_memory_bytes} leaves under 24 MiB of 128 MiB for the JS side`);
    } finally {
      await big.stop();
    }
  });
});
