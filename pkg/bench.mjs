// `cargo xtask bench verify` (Node half): median time of one full verification (to Anchored) of
// the anvil fixture, and the wasm's size raw and gzipped. Prints one JSON object.
import { readFileSync } from 'node:fs';
import { gzipSync } from 'node:zlib';
import { verifyReceipt } from './node/tributary_verifier.js';

const fixture = JSON.parse(readFileSync(new URL('./test/fixtures/anchored.json', import.meta.url), 'utf8'));
const run = () => verifyReceipt(fixture.receipt, fixture.proofs, fixture.trustedHeader);
if (run().trust !== 'Anchored') throw new Error('the fixture does not verify');
for (let i = 0; i < 50; i++) run();
const times = [];
for (let i = 0; i < 1000; i++) {
  const t = process.hrtime.bigint();
  run();
  times.push(Number(process.hrtime.bigint() - t) / 1e6);
}
times.sort((a, b) => a - b);
const wasm = readFileSync(new URL('./web/tributary_verifier_bg.wasm', import.meta.url));
console.log(JSON.stringify({
  nodeMedianMs: times[times.length >> 1],
  nodeP99Ms: times[Math.floor(times.length * 0.99)],
  wasmBytes: wasm.length,
  wasmGzipBytes: gzipSync(wasm, { level: 9 }).length,
}));
