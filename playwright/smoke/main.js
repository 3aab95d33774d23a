// Runs the matvec kernel over WebGPU on a few odd shapes and reports the error against the Rust
// CPU reference. `window.smoke` exposes the same entry points to the Playwright tests.
import init, { Gpu, matvecReference, maxRelativeError, wgslKernels } from './pkg/smoke.js';
import { runPage } from './page.js';

export const TOLERANCE = 1e-5;
const CASES = [
  [1, 2049],
  [67, 129],
  [3, 257],
  [130, 1000],
];

/** Seeded inputs in [-1, 1) (mulberry32), so a failing case can be replayed exactly. */
function randomInputs(rows, cols, seed) {
  let s = seed >>> 0;
  const next = () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const fill = (n) => Float32Array.from({ length: n }, () => next() * 2 - 1);
  return { w: fill(rows * cols), x: fill(cols) };
}

const progress = document.getElementById('progress');

async function main(report) {
  await init();
  const gpu = await Gpu.create();
  const runCase = async (rows, cols, seed) => {
    const { w, x } = randomInputs(rows, cols, seed);
    const y = await gpu.matvec(w, x, rows, cols);
    return { w, x, y, reference: matvecReference(w, x, rows, cols), error: maxRelativeError(y, w, x, rows, cols) };
  };
  const results = [];
  progress.max = CASES.length;
  for (const [i, [rows, cols]] of CASES.entries()) {
    const { error } = await runCase(rows, cols, 1000 + i);
    results.push({ rows, cols, error, pass: error <= TOLERANCE });
    progress.value = i + 1;
  }
  window.smoke = {
    adapter: gpu.adapter,
    maxStorageBufferBindingSize: gpu.maxStorageBufferBindingSize,
    results,
    allPassed: results.every((r) => r.pass),
    wgslKernels: () => wgslKernels(),
    // For the tests: plain arrays cross page.evaluate's serialisation.
    runCase: async (rows, cols, seed) => {
      const r = await runCase(rows, cols, seed);
      return { w: [...r.w], x: [...r.x], y: [...r.y], reference: [...r.reference], error: r.error };
    },
  };
  const rowsHtml = results
    .map((r) => `<tr><td>${r.rows} × ${r.cols}</td><td>${r.error.toExponential(2)}</td>` +
      `<td class="${r.pass ? 'pass' : 'fail'}">${r.pass ? 'pass' : 'FAIL'}</td></tr>`)
    .join('');
  report.innerHTML =
    `<p>Adapter: ${gpu.adapter || '(not disclosed)'}; max storage binding ` +
    `${(gpu.maxStorageBufferBindingSize / 2 ** 20).toFixed(0)} MiB</p>` +
    `<table><tr><th>W shape</th><th>max rel. error</th><th>result</th></tr>${rowsHtml}</table>` +
    `<p class="${window.smoke.allPassed ? 'pass' : 'fail'}">${window.smoke.allPassed ? 'All cases match the CPU reference.' : 'Some cases do not match the CPU reference.'}</p>`;
}

runPage(main);
