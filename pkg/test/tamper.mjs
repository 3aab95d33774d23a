// Single-field changes to the anvil fixture (fixtures/anchored.json), each with the verification
// step that must reject it. Shared by the package's tests and the edge worker's, which must
// reject the same changes at the same steps.

/** Flips the last hex digit of a 0x string (keeps its length, changes its value). */
export function flipHex(s) {
  const last = s.at(-1);
  return s.slice(0, -1) + (last === '0' ? '1' : '0');
}

/** Every field of the receipt and its domain, changed alone to another valid value of its type
 * (so the failure is the signature, not the input), plus a changed signature: `[name, signed]`. */
export function receiptTampers(fixture) {
  const r = fixture.receipt.receipt;
  const paths = [];
  for (const [k, v] of Object.entries(r)) {
    if (Array.isArray(v)) {
      v.forEach((item, i) => {
        if (typeof item === 'object') for (const f of Object.keys(item)) paths.push([k, i, f]);
        else paths.push([k, i]);
      });
    } else paths.push([k]);
  }
  paths.push(['$domain', 'chainId'], ['$domain', 'anchor']);
  const out = paths.map((path) => {
    const signed = structuredClone(fixture.receipt);
    let parent = path[0] === '$domain' ? signed.domain : signed.receipt;
    const keys = path[0] === '$domain' ? path.slice(1) : path;
    for (const k of keys.slice(0, -1)) parent = parent[k];
    const k = keys.at(-1);
    const v = parent[k];
    parent[k] = typeof v === 'number' ? (k === 'method' ? 1 - v : v + 1) : flipHex(v);
    return [path.join('.'), signed];
  });
  const sig = structuredClone(fixture.receipt);
  sig.signature = flipHex(sig.signature.slice(0, 66)) + sig.signature.slice(66);
  out.push(['signature', sig]);
  return out;
}

/** Changes to the proofs or the trusted header: `[step, change(proofs, trustedHeader)]`. */
export const proofTampers = [
  ['batch', (p) => { p.root = flipHex(p.root); }],
  ['batch', (p) => { p.proof[0] = flipHex(p.proof[0]); }],
  ['header', (p) => { p.header = flipHex(p.header); }],
  ['header', (p, t) => { t.hash = flipHex(t.hash); }],
  ['account', (p) => { p.account.address = flipHex(p.account.address); }],
  ['account', (p) => { p.account.storageHash = flipHex(p.account.storageHash); }],
  ['account', (p) => { p.account.balance = '0x1'; }],
  ['account', (p) => { p.account.accountProof[0] = flipHex(p.account.accountProof[0]); }],
  ['storage', (p) => { p.sequence += 1; }],
  ['storage', (p) => { p.account.storageProof[0].value = flipHex(p.account.storageProof[0].value); }],
  ['storage', (p) => { const s = p.account.storageProof[0]; s.proof[0] = flipHex(s.proof[0]); }],
  ['storage', (p) => { p.account.storageProof = []; }],
];
