/**
 * The worker-thread side of src/trust/judge-thread.ts (the edge that hosts
 * the pure judge in another thread). On start it loads the trust policy
 * given as workerData.policy (this is where @peculiar/x509 and the policy
 * validator load), reports `ready` or the policy's GlassboxError, then
 * answers judging requests with judgeSigners / judgeRotation, the same
 * functions the in-thread judge runs.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { GlassboxError, describeError } from '../errors.js';
import { judgeRotation } from './judge.js';
import { loadTrustAnchors } from './policy.js';
import { judgeSigners } from './signers.js';
import type { SignatureEntry, TrustAnchors } from './types.js';
import type { JudgeReply, JudgeRequest, JudgeStart, WireEntry } from './judge-thread.js';

const port = parentPort;
if (port === null) throw new Error('judge-worker.js runs as a worker thread (src/trust/judge-thread.ts starts it)');

/** Bytes as they arrive over postMessage (a Uint8Array) viewed as a Buffer without a copy. */
const bytes = (u: Uint8Array): Buffer => Buffer.from(u.buffer, u.byteOffset, u.byteLength);
const entries = (wire: readonly WireEntry[]): SignatureEntry[] => wire.map((e) => ({ index: e.index, signature: bytes(e.signature), chainPem: bytes(e.chainPem) }));
const post = (reply: JudgeReply): void => port.postMessage(reply);

let anchors: TrustAnchors | undefined;
try {
  anchors = loadTrustAnchors(bytes((workerData as JudgeStart).policy));
  post({ kind: 'ready' });
} catch (err) {
  if (err instanceof GlassboxError) post({ kind: 'policy-error', code: err.code, message: err.message, exitCode: err.exitCode });
  else post({ kind: 'failed', message: describeError(err) });
}

port.on('message', (req: JudgeRequest) => {
  try {
    if (anchors === undefined) throw new Error('no trust policy loaded');
    const at = new Date(req.at);
    const manifest = bytes(req.manifest);
    if (req.kind === 'signers') post({ kind: 'signers', id: req.id, judgement: judgeSigners(manifest, entries(req.entries), anchors, at) });
    else post({ kind: 'rotation', id: req.id, rotation: judgeRotation(bytes(req.policy), manifest, entries(req.entries), at) });
  } catch (err) {
    post({ kind: 'request-failed', id: req.id, message: describeError(err) });
  }
});
