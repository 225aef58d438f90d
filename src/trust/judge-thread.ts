/**
 * A SignerJudge in a worker thread (an edge: it starts a thread), used by
 * `glassbox verify` so that the X.509 work overlaps the hashing.
 *
 * Judging the signers needs @peculiar/x509 (≈ 75 ms to load here), the
 * trust policy (≈ 11 ms: schema, roots) and the chains (≈ 13 ms for the
 * first, ≈ 6 ms for the next): about 0.1 s that the verifier's thread used
 * to spend before it could hash the first artifact byte. Started as soon as
 * the policy file is read, the worker (src/trust/judge-worker.ts) loads all
 * that while the main thread loads the verifier and reads the bundle; the
 * verifier starts the judgement at its judge point and goes on hashing
 * (bundle/verify.ts says how the verdict stays the one of reading order).
 *
 * Measured on the 2-core machine here (1 GiB bench bundle, 15 alternating
 * runs, verifyBundleFile reading on the main thread): `glassbox verify`
 * 0.943 s median with this thread, 1.021 s judging in the main thread
 * (openssl dgst -sha256 0.792 s); the thread's isolate raises the peak RSS
 * from ≈ 69.5 to ≈ 85.5 MiB. The gain needs the second core: with one
 * busy-looping process beside it, 9 alternating runs gave 1.086 s with the
 * thread and 1.089 s without (openssl 0.817 s): no gain, no loss.
 *
 * The worker runs the same pure functions as the in-thread judge (judgeSigners,
 * judgeRotation); only bytes, times and plain results cross the thread.
 * A policy fault comes back as the GlassboxError loadTrustAnchors threw
 * (code, message, exit code); anything else that fails in the thread is an
 * internal error. Requests are one per verification (two with a trust
 * rotation), so nothing queues.
 */
import { Worker } from 'node:worker_threads';
import type { RotationJudgement, SignerJudge } from '../bundle/types.js';
import { GlassboxError } from '../errors.js';
import type { SignersJudgement } from './types.js';

/** workerData of the judge worker. */
export interface JudgeStart {
  readonly policy: Uint8Array;
}

/** A SignatureEntry as it crosses the thread. */
export interface WireEntry {
  readonly index: number;
  readonly signature: Uint8Array;
  readonly chainPem: Uint8Array;
}

export type JudgeRequest =
  | { readonly kind: 'signers'; readonly id: number; readonly manifest: Uint8Array; readonly entries: readonly WireEntry[]; readonly at: number }
  | { readonly kind: 'rotation'; readonly id: number; readonly policy: Uint8Array; readonly manifest: Uint8Array; readonly entries: readonly WireEntry[]; readonly at: number };

export type JudgeReply =
  | { readonly kind: 'ready' }
  | { readonly kind: 'policy-error'; readonly code: string; readonly message: string; readonly exitCode: 1 | 2 }
  | { readonly kind: 'failed'; readonly message: string }
  | { readonly kind: 'signers'; readonly id: number; readonly judgement: SignersJudgement }
  | { readonly kind: 'rotation'; readonly id: number; readonly rotation: RotationJudgement }
  | { readonly kind: 'request-failed'; readonly id: number; readonly message: string };

export interface JudgeThread extends SignerJudge {
  /**
   * Resolves once the worker has loaded the policy. Rejects with the
   * policy's GlassboxError (as loadTrustAnchors throws it: TRUST_POLICY_INVALID,
   * exit 2), or with an Error when the thread itself failed.
   */
  readonly ready: Promise<void>;
  /** Stops the thread; requests still pending reject. */
  close(): Promise<void>;
}

interface Pending {
  resolve(reply: JudgeReply): void;
  reject(err: Error): void;
}

/** Starts the worker on the policy file's bytes (already read, size-checked by the caller). */
export function startJudgeThread(policyBytes: Buffer): JudgeThread {
  const start: JudgeStart = { policy: policyBytes };
  const worker = new Worker(new URL('./judge-worker.js', import.meta.url), { workerData: start });
  const pending = new Map<number, Pending>();
  let nextId = 1;
  let failure: Error | null = null;
  let resolveReady!: () => void;
  let rejectReady!: (err: Error) => void;
  const ready = new Promise<void>((resolve, reject) => {
    resolveReady = resolve;
    rejectReady = reject;
  });
  // Awaited by the caller, perhaps only after the verification: not unhandled meanwhile.
  ready.catch(() => undefined);

  const fail = (err: Error): void => {
    failure ??= err;
    rejectReady(failure);
    for (const p of pending.values()) p.reject(failure);
    pending.clear();
  };

  worker.on('message', (reply: JudgeReply) => {
    switch (reply.kind) {
      case 'ready':
        resolveReady();
        return;
      case 'policy-error':
        rejectReady(new GlassboxError(reply.code, reply.message, { exitCode: reply.exitCode }));
        return;
      case 'failed':
        fail(new Error(`judge thread: ${reply.message}`));
        return;
      default: {
        const p = pending.get(reply.id);
        pending.delete(reply.id);
        if (reply.kind === 'request-failed') p?.reject(new Error(`judge thread: ${reply.message}`));
        else p?.resolve(reply);
      }
    }
  });
  worker.on('error', (err) => fail(err instanceof Error ? err : new Error(String(err))));
  worker.on('messageerror', (err) => fail(err instanceof Error ? err : new Error(String(err))));
  worker.on('exit', (code) => fail(new Error(`judge thread exited (code ${code})`)));

  const request = async (make: (id: number) => JudgeRequest): Promise<JudgeReply> => {
    await ready;
    if (failure) throw failure;
    const id = nextId++;
    const reply = new Promise<JudgeReply>((resolve, reject) => pending.set(id, { resolve, reject }));
    worker.postMessage(make(id));
    return reply;
  };
  return {
    ready,
    async signers(manifestBytes, entries, at) {
      const reply = await request((id) => ({ kind: 'signers', id, manifest: manifestBytes, entries, at: at.getTime() }));
      if (reply.kind !== 'signers') throw new Error(`judge thread: answered ${reply.kind} to signers`);
      return reply.judgement;
    },
    async rotation(policy, manifestBytes, entries, at) {
      const reply = await request((id) => ({ kind: 'rotation', id, policy, manifest: manifestBytes, entries, at: at.getTime() }));
      if (reply.kind !== 'rotation') throw new Error(`judge thread: answered ${reply.kind} to rotation`);
      return reply.rotation;
    },
    async close() {
      fail(new Error('judge thread closed'));
      await worker.terminate();
    },
  };
}
