/**
 * Boot confirmation (`glassbox boot-check`, and the daemon at start).
 *
 * With a pending active slot: the start is counted in state.json FIRST
 * (so a start that crashes or hangs during the checks still counts), then
 * the checks run in order. All pass: commit (floor rises, trust rotation
 * takes effect, trustworthy time moves up). An integrity failure refuses the
 * slot at once; a health failure counts one failed start, and after
 * maxBootAttempts failed starts the device falls back to the other slot when
 * that one is committed and not below the floor. Every outcome is recorded
 * in state.json (lastBoot, the slot's failure) and in the journal.
 */
import { loadTrustAnchors } from '../trust/policy.js';
import { GlassboxError, describeError } from '../errors.js';
import { defaultBootChecks, type BootHealthCheck } from './health.js';
import { appendJournal } from './journal.js';
import { acquireLock } from './lock.js';
import type { SlotStore } from './slot.js';
import { DirectorySlotStore } from './slot-dir.js';
import { afterBootFailure, afterBootStart, afterBootSuccess, bootAttemptsExhausted, referencedRefs, type BootRecord, type DeviceState, type SlotFailure } from './state.js';
import { StateDir } from './state-store.js';

export interface BootCheckOptions {
  readonly stateDir: string;
  readonly clock: Date;
  /** Defaults: slot verification, then the executables in <stateDir>/health.d. */
  readonly checks?: readonly BootHealthCheck[];
  readonly store?: SlotStore;
  readonly hookTimeoutMs?: number;
}

export interface CheckRun {
  readonly name: string;
  readonly ok: boolean;
  readonly code: string | null;
  readonly detail: string;
}

export interface BootCheckResult {
  /** committed: confirmed now; nothing-pending: active slot already committed (or none); retry / fell-back / no-fallback: a failed start. */
  readonly outcome: BootRecord['outcome'];
  readonly ok: boolean;
  readonly slot: string | null;
  readonly attempt: number | null;
  readonly maxAttempts: number;
  readonly checks: readonly CheckRun[];
  readonly reason: string;
  readonly state: DeviceState;
}

export async function bootCheck(opts: BootCheckOptions): Promise<BootCheckResult> {
  const dir = new StateDir(opts.stateDir);
  if (!(await dir.isInitialised())) await dir.read();
  const lock = await acquireLock(opts.stateDir, 'boot-check', opts.clock);
  const at = opts.clock.toISOString();
  try {
    let { state } = await dir.read();
    const id = state.active;
    if (id === null || state.slots[id].state !== 'pending') {
      const reason = id === null ? 'no firmware installed: nothing to confirm' : `slot ${id} is ${state.slots[id].state}: nothing to confirm`;
      return { outcome: 'nothing-pending', ok: true, slot: id, attempt: null, maxAttempts: state.maxBootAttempts, checks: [], reason, state };
    }
    const store = opts.store ?? new DirectorySlotStore(opts.stateDir);
    const checks = opts.checks ?? defaultBootChecks(dir.healthDir, opts.hookTimeoutMs);

    let failure: SlotFailure | null = null;
    let retryable = true;
    const runs: CheckRun[] = [];
    if (bootAttemptsExhausted(state)) {
      failure = { code: 'BOOT_ATTEMPTS_EXHAUSTED', reason: `${state.slots[id].bootAttempts} starts did not confirm the slot (crash or power loss during the checks)`, at };
      retryable = false;
    } else {
      state = afterBootStart(state);
      await dir.write(state, lock.assertHeld);
      const record = state.slots[id];
      const trust = loadTrustAnchors(await dir.readTrust(state.trustPolicy));
      const content = store.open(record.ref as string);
      for (const check of checks) {
        let r;
        try {
          r = await check.run({ stateDir: opts.stateDir, state, slot: id, record, content, trust });
        } catch (err) {
          r = { ok: false as const, code: err instanceof GlassboxError ? err.code : 'HEALTH_CHECK_FAILED', reason: `check ${check.name} failed: ${describeError(err)}` };
        }
        runs.push({ name: check.name, ok: r.ok, code: r.ok ? null : r.code, detail: r.ok ? r.detail : r.reason });
        if (!r.ok) {
          failure = { code: r.code, reason: r.reason, at };
          retryable = check.kind === 'health';
          break;
        }
      }
    }
    const attempt = state.slots[id].bootAttempts;
    const next = failure === null ? afterBootSuccess(state, opts.clock) : afterBootFailure(state, failure, { retryable });
    await dir.write(next, lock.assertHeld);
    if (failure === null) await dir.sweep(next).catch(() => undefined); // an old trust policy is no longer referenced
    await store.sweep(referencedRefs(next)).catch(() => undefined);
    const last = next.lastBoot as BootRecord;
    const slotRecord = next.slots[id];
    await appendJournal(opts.stateDir, {
      at,
      command: 'boot-check',
      outcome: failure === null ? 'ok' : 'failed',
      code: failure?.code ?? null,
      reason: last.reason ?? `slot ${id} committed`,
      slot: id,
      version: slotRecord.version,
      securityVersion: slotRecord.securityVersion,
      manifestSha256: slotRecord.manifestSha256,
      generation: next.generation,
      source: null,
    }).catch(() => undefined);
    const reason =
      failure === null
        ? `slot ${id} (${slotRecord.version ?? '?'}) confirmed and committed; security floor now ${next.securityFloor}`
        : last.outcome === 'retry'
          ? `start ${attempt} of ${next.maxBootAttempts} of slot ${id} failed: ${failure.reason}`
          : (last.reason ?? failure.reason);
    return { outcome: last.outcome, ok: failure === null, slot: next.active, attempt, maxAttempts: next.maxBootAttempts, checks: runs, reason, state: next };
  } finally {
    await lock.release();
  }
}
