/**
 * The signer judge of a verification that judges in its own thread (pure):
 * judgeSigners against the device's anchors, and the trust-rotation
 * judgement of a `trust` artifact. The worker thread of
 * src/trust/judge-thread.ts runs these same functions, so both judges give
 * the same verdicts.
 */
import type { RotationJudgement, SignerJudge } from '../bundle/types.js';
import { GlassboxError } from '../errors.js';
import { loadTrustAnchors } from './policy.js';
import { judgeSigners } from './signers.js';
import type { SignatureEntry, TrustAnchors } from './types.js';

/**
 * Trust rotation (bundle/verify.ts): the bytes loaded as a policy, then the
 * same signers judged against it. A policy that does not load is `invalid`
 * with its GlassboxError's message; any other error is thrown.
 */
export function judgeRotation(policyBytes: Buffer, manifestBytes: Buffer, entries: readonly SignatureEntry[], at: Date): RotationJudgement {
  let anchors: TrustAnchors;
  try {
    anchors = loadTrustAnchors(policyBytes);
  } catch (err) {
    if (!(err instanceof GlassboxError)) throw err;
    return { ok: false, invalid: err.message };
  }
  return { ok: true, policySha256: anchors.sha256, judgement: judgeSigners(manifestBytes, entries, anchors, at) };
}

/** Judges in this thread, synchronously at the call (the promise is already settled when returned). */
export function localJudge(trust: TrustAnchors): SignerJudge {
  return {
    signers: async (manifestBytes, entries, at) => judgeSigners(manifestBytes, entries, trust, at),
    rotation: async (policyBytes, manifestBytes, entries, at) => judgeRotation(policyBytes, manifestBytes, entries, at),
  };
}
