// Loads a fixture checkpoint and adapter into the wasm model over WebGPU and runs greedy
// generation; `window.modelSmoke` lets the Playwright test run its own cases.
import init, { BrowserModel } from './pkg/smoke.js';
import { runPage } from './page.js';

const FIXTURE = 'llama-gqa';
const ADAPTER = 'attn-r8';
const progress = document.getElementById('progress');

async function bytes(path) {
  const response = await fetch(path);
  if (!response.ok) throw new Error(`${path}: HTTP ${response.status}`);
  return new Uint8Array(await response.arrayBuffer());
}

const same = (a, b) => a.length === b.length && a.every((x, i) => x === b[i]);

async function main(report) {
  await init();
  const base = `./fixtures/${FIXTURE}`;
  const [config, weights, reference] = await Promise.all([
    bytes(`${base}/config.json`),
    bytes(`${base}/model.safetensors`),
    fetch(`${base}/reference.json`).then((r) => r.json()),
  ]);
  progress.value = 1;
  const model = await BrowserModel.load(config, weights);
  progress.value = 2;
  model.addAdapter(
    ADAPTER,
    await bytes(`${base}/adapters/${ADAPTER}/adapter_config.json`),
    await bytes(`${base}/adapters/${ADAPTER}/adapter_model.safetensors`),
  );
  progress.value = 3;
  const generate = async (promptIds, adapter, maxTokens) =>
    Array.from(await model.generateGreedy(Uint32Array.from(promptIds), adapter ?? undefined, maxTokens));

  const rows = [];
  for (const [label, adapter, cases] of [
    ['base', null, reference.base],
    [`+ ${ADAPTER}`, ADAPTER, reference.adapters[ADAPTER]],
  ]) {
    const c = cases[0];
    const started = performance.now();
    const tokens = await generate(c.prompt_ids, adapter, c.greedy.length);
    const seconds = (performance.now() - started) / 1000;
    rows.push({ label, tokens, expected: c.greedy, pass: same(tokens, c.greedy), tokensPerSecond: tokens.length / seconds });
  }
  progress.value = 4;
  // The default model (a GGUF, weights kept quantized on the GPU), loaded on request: a test
  // passes the file name and runs teacher-forced passes over the reference's prompts.
  let gguf = null;
  const teacherForced = async (file, ids, at, pick) => {
    gguf ??= await BrowserModel.loadGguf(await bytes(`./models/${file}`));
    return await gguf.teacherForced(Uint32Array.from(ids), at, Uint32Array.from(pick));
  };
  window.modelSmoke = { generate, teacherForced, rows, allPassed: rows.every((r) => r.pass) };
  report.innerHTML = rows
    .map((r) => `<p class="${r.pass ? 'pass' : 'fail'}">${FIXTURE} ${r.label}: ${r.pass ? 'same 32 greedy tokens as transformers' : 'tokens differ from transformers'} ` +
      `(${r.tokensPerSecond.toFixed(1)} tokens/s)<br><code>${r.tokens.join(' ')}</code></p>`)
    .join('');
}

runPage(main);
