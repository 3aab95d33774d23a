// Compiled by `tsc --noEmit` in the test suite: the declarations accept what a wallet writes and
// reject what it must not.
import type { AnchorProof, Outcome, SignedReceipt, TrustedHeader } from "../types.js";
import { batchRoot, hashReceipt, verifyReceipt } from "../types.js";

declare const signed: SignedReceipt;
declare const proofs: AnchorProof;
declare const trusted: TrustedHeader;

const outcome: Outcome = verifyReceipt(signed, proofs, trusted);
if (outcome.valid) {
  const level: "Signed" | "Anchored" = outcome.trust;
  void level;
} else {
  const step: "signature" | "weights" | "batch" | "header" | "account" | "storage" = outcome.step;
  void step;
}
const signedOnly: Outcome = verifyReceipt(signed);
const digest: `0x${string}` = hashReceipt({ receipt: signed.receipt, domain: signed.domain });
const batch: { root: `0x${string}`; proofs: `0x${string}`[][] } = batchRoot([digest]);
void signedOnly;
void batch;

// @ts-expect-error: a method outside 0 | 1
const bad: SignedReceipt["receipt"]["attributions"][number] = { contributionId: "0x", contributor: "0x", weightPpm: 1, method: 2 };
void bad;
