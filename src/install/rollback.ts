/**
 * `glassbox rollback`: a technician returns the recorder to the other,
 * committed slot. Refused (exit 1) when that slot is not committed
 * (NO_FALLBACK), below the security floor (ROLLBACK), or no longer verifies
 * against its manifest (SLOT_REFUSED or the bundle code). Nothing changes
 * when refused.
 */
import { loadTrustAnchors } from '../trust/policy.js';
import { BundleRejected } from '../bundle/codes.js';
import { InstallError } from './errors.js';
import { appendJournal } from './journal.js';
import { acquireLock } from './lock.js';
import { reverifySlot } from './reverify.js';
import type { SlotStore } from './slot.js';
import { DirectorySlotStore } from './slot-dir.js';
import { afterRollback, type DeviceState, type SlotId } from './state.js';
import { StateDir } from './state-store.js';
import { GlassboxError, describeError } from '../errors.js';

export interface RollbackOptions {
  readonly stateDir: string;
  readonly clock: Date;
  readonly store?: SlotStore;
}

export interface RollbackResult {
  readonly from: SlotId | null;
  readonly to: SlotId;
  readonly version: string | null;
  readonly state: DeviceState;
}

export async function rollback(opts: RollbackOptions): Promise<RollbackResult> {
  const dir = new StateDir(opts.stateDir);
  if (!(await dir.isInitialised())) await dir.read();
  const lock = await acquireLock(opts.stateDir, 'rollback', opts.clock);
  const at = opts.clock.toISOString();
  let generation: number | null = null;
  try {
    const { state } = await dir.read();
    generation = state.generation;
    const decided = afterRollback(state, opts.clock);
    if ('refusal' in decided) {
      const { code, reason } = decided.refusal;
      throw code === 'ROLLBACK' ? new BundleRejected('ROLLBACK', `rollback refused: ${reason}`) : new InstallError('NO_FALLBACK', `rollback refused: ${reason}`);
    }
    const target = decided.state.slots[decided.to];
    const store = opts.store ?? new DirectorySlotStore(opts.stateDir);
    const trust = loadTrustAnchors(await dir.readTrust(state.trustPolicy));
    const check = await reverifySlot(store.open(target.ref as string), target, state, trust);
    if (!check.ok) throw new InstallError('SLOT_REFUSED', `rollback refused: slot ${decided.to} does not verify: ${check.reason}${check.code ? ` (${check.code})` : ''}`);
    await dir.write(decided.state, lock.assertHeld);
    await appendJournal(opts.stateDir, {
      at,
      command: 'rollback',
      outcome: 'ok',
      code: null,
      reason: `rolled back from slot ${decided.from ?? 'none'} to slot ${decided.to}`,
      slot: decided.to,
      version: target.version,
      securityVersion: target.securityVersion,
      manifestSha256: target.manifestSha256,
      generation: decided.state.generation,
      source: null,
    }).catch(() => undefined);
    return { from: decided.from, to: decided.to, version: target.version, state: decided.state };
  } catch (err) {
    const rejected = err instanceof GlassboxError && err.exitCode === 1;
    await appendJournal(opts.stateDir, {
      at,
      command: 'rollback',
      outcome: rejected ? 'rejected' : 'failed',
      code: err instanceof GlassboxError ? err.code : 'INTERNAL',
      reason: describeError(err),
      slot: null,
      version: null,
      securityVersion: null,
      manifestSha256: null,
      generation,
      source: null,
    }).catch(() => undefined);
    throw err;
  } finally {
    await lock.release();
  }
}
