// Runs a few SGMV batches over WebGPU; `window.sgmvSmoke` exposes the same entry point to the tests.
import init, { sgmvCheck } from './pkg/smoke.js';
import { runPage } from './page.js';

export const TOLERANCE = 1e-4;
// [rows, fan_in, fan_out, popularity]
const CASES = [
  [3, 64, 64, 'distinct'],
  [32, 64, 2049, 'zipf'],
  [67, 2049, 64, 'uniform'],
  [32, 2049, 2049, 'identical'],
];

const progress = document.getElementById('progress');

async function main(report) {
  await init();
  const results = [];
  progress.max = CASES.length;
  for (const [i, [rows, fanIn, fanOut, popularity]] of CASES.entries()) {
    const r = await sgmvCheck(rows, fanIn, fanOut, popularity, 500 + i);
    results.push({ rows, fanIn, fanOut, popularity, ...r, pass: r.error <= TOLERANCE && r.bitIdentical });
    progress.value = i + 1;
  }
  window.sgmvSmoke = {
    results,
    allPassed: results.every((r) => r.pass),
    check: (rows, fanIn, fanOut, popularity, seed) => sgmvCheck(rows, fanIn, fanOut, popularity, seed),
  };
  const rowsHtml = results
    .map((r) => `<tr><td>${r.rows}</td><td>${r.fanIn} → ${r.fanOut}</td><td>${r.popularity}</td>` +
      `<td>${r.adapters}</td><td>${r.segments}</td><td>${r.error.toExponential(2)}</td>` +
      `<td class="${r.pass ? 'pass' : 'fail'}">${r.pass ? 'pass' : 'FAIL'}</td></tr>`)
    .join('');
  report.innerHTML =
    `<table><tr><th>rows</th><th>shape</th><th>popularity</th><th>adapters</th><th>segments</th>` +
    `<th>max rel. error</th><th>result</th></tr>${rowsHtml}</table>` +
    `<p class="${window.sgmvSmoke.allPassed ? 'pass' : 'fail'}">${window.sgmvSmoke.allPassed
      ? 'Every batch matches the CPU reference, bit-identically on rerun.'
      : 'Some batches do not match the CPU reference.'}</p>`;
}

runPage(main);
