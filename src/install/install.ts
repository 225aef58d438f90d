/**
 * `glassbox install`: verify a bundle while writing it into a slot, in one
 * read, then switch to it atomically (pending boot confirmation).
 *
 * Order (what a power cut at any instant leaves):
 *   1. lock; read state.json; sweep leftovers of interrupted runs.
 *   2. stage a NEW slot directory (nothing references it yet).
 *   3. verifyBundle streams the bundle: manifest and signatures are judged
 *      before the first artifact byte; each artifact is hashed as it is
 *      written and fsynced when its digest matched.
 *   4. write manifest.json and the signature pairs; fsync every file and
 *      directory of the staged slot; store a carried trust policy by digest.
 *   5. the switch: state.json (generation + 1, slot pending and active) is
 *      written to a temp file, fsynced, renamed over state.json, directory
 *      fsynced. Before the rename: the lock and the generation are re-checked.
 *   6. sweep the slot content that is no longer referenced.
 * A crash before 5's rename leaves the old state.json: the device boots what
 * it booted before and the staged directory is garbage, removed next time.
 * A crash after it leaves the new state. There is no third outcome.
 *
 * Refused or failed installs change no device state (state.json, trust/,
 * slots/ byte for byte); the outcome is appended to the journal.
 */
import { verifyBundle } from '../bundle/verify.js';
import type { VerifyReport } from '../bundle/types.js';
import { loadTrustAnchors } from '../trust/policy.js';
import { GlassboxError, describeError } from '../errors.js';
import { InstallError } from './errors.js';
import { appendJournal, type JournalEntry } from './journal.js';
import { acquireLock, sweepLockLeftovers } from './lock.js';
import { SlotSink } from './sink.js';
import type { SlotStore, SlotStaging } from './slot.js';
import { DirectorySlotStore } from './slot-dir.js';
import { afterInstall, installTarget, referencedRefs, verificationTime, type DeviceState, type SlotId } from './state.js';
import { StateDir, sha256Hex } from './state-store.js';

export interface InstallOptions {
  readonly stateDir: string;
  readonly source: AsyncIterable<Buffer | Uint8Array>;
  /** Path of the bundle, or '-' for standard input (journal and messages). */
  readonly sourceName: string;
  /** Device clock, read at the CLI edge. */
  readonly clock: Date;
  readonly store?: SlotStore;
}

export interface InstallResult {
  readonly ok: boolean;
  /** Bundle rejection code when refused, else null. */
  readonly code: string | null;
  readonly reason: string;
  readonly slot: SlotId;
  readonly verification: VerifyReport;
  /** State after the command (unchanged when refused). */
  readonly state: DeviceState;
  readonly bytesWritten: number;
  readonly trustPolicyStaged: string | null;
}

function journalEntry(base: Partial<JournalEntry> & Pick<JournalEntry, 'at' | 'outcome'>): JournalEntry {
  return {
    command: 'install',
    code: null,
    reason: null,
    slot: null,
    version: null,
    securityVersion: null,
    manifestSha256: null,
    generation: null,
    source: null,
    ...base,
  };
}

async function journalQuietly(stateDir: string, entry: JournalEntry): Promise<void> {
  await appendJournal(stateDir, entry).catch(() => undefined);
}

export async function installBundle(opts: InstallOptions): Promise<InstallResult> {
  const dir = new StateDir(opts.stateDir);
  const at = opts.clock.toISOString();
  if (!(await dir.isInitialised())) await dir.read(); // throws NOT_INITIALISED with the message
  const lock = await acquireLock(opts.stateDir, 'install', opts.clock);
  let staging: SlotStaging | null = null;
  let state: DeviceState | null = null;
  try {
    ({ state } = await dir.read());
    const trust = loadTrustAnchors(await dir.readTrust(state.trustPolicy));
    const store = opts.store ?? new DirectorySlotStore(opts.stateDir);
    await store.sweep(referencedRefs(state));
    await dir.sweep(state);
    await sweepLockLeftovers(opts.stateDir, opts.clock);

    const target = installTarget(state);
    const when = verificationTime(opts.clock, state);
    staging = await store.stage(target);
    const sink = new SlotSink(staging);

    let report: VerifyReport;
    try {
      report = await verifyBundle(opts.source, { trust, at: when, hardware: state.hardware, securityFloor: state.securityFloor }, sink);
    } catch (err) {
      if (sink.failure) throw sink.failure;
      if (err instanceof InstallError) throw err;
      throw new InstallError('BUNDLE_UNREADABLE', `reading bundle ${opts.sourceName} failed: ${describeError(err)}`, { cause: err });
    }
    if (sink.failure) throw sink.failure;
    if (!report.ok) {
      await staging.discard();
      staging = null;
      await journalQuietly(
        opts.stateDir,
        journalEntry({
          at,
          outcome: 'rejected',
          code: report.code,
          reason: report.reason,
          slot: target,
          version: report.manifest?.version ?? null,
          securityVersion: report.manifest?.securityVersion ?? null,
          manifestSha256: report.manifest?.sha256 ?? null,
          generation: state.generation,
          source: opts.sourceName,
        }),
      );
      return { ok: false, code: report.code, reason: report.reason, slot: target, verification: report, state, bytesWritten: sink.bytesWritten, trustPolicyStaged: null };
    }

    const manifestBytes = report.manifestBytes;
    const manifest = report.manifestObject;
    const signatures = report.signatures;
    if (!manifestBytes || !manifest || !report.manifest || !signatures) {
      throw new InstallError('STATE_IO', 'the verifier accepted the bundle but returned no manifest bytes or signatures');
    }
    await staging.writeManifest(manifestBytes);
    await staging.writeSignatures(signatures);
    await staging.seal();

    let trustPolicy: string | null = null;
    if (report.newTrustPolicy) {
      // The verifier judged both thresholds; the policy must also load as one (fail closed).
      loadTrustAnchors(report.newTrustPolicy);
      trustPolicy = await dir.storeTrust(report.newTrustPolicy);
    }

    const next = afterInstall(state, {
      target,
      ref: staging.ref,
      product: manifest.product,
      version: manifest.version,
      manifestSha256: sha256Hex(manifestBytes),
      securityVersion: manifest.securityVersion,
      released: new Date(manifest.released).toISOString(),
      verifiedAt: when,
      installedAt: opts.clock,
      trustPolicy,
    });
    await dir.write(next, lock.assertHeld);
    staging = null;
    // Old content of the target slot is no longer referenced.
    await store.sweep(referencedRefs(next)).catch(() => undefined);
    await journalQuietly(
      opts.stateDir,
      journalEntry({
        at,
        outcome: 'ok',
        slot: target,
        reason: `installed into slot ${target}, pending boot confirmation`,
        version: manifest.version,
        securityVersion: manifest.securityVersion,
        manifestSha256: report.manifest.sha256,
        generation: next.generation,
        source: opts.sourceName,
      }),
    );
    return { ok: true, code: null, reason: `installed ${manifest.version} into slot ${target}; pending boot confirmation`, slot: target, verification: report, state: next, bytesWritten: sink.bytesWritten, trustPolicyStaged: trustPolicy };
  } catch (err) {
    if (staging) await staging.discard().catch(() => undefined);
    const code = err instanceof GlassboxError ? err.code : 'INTERNAL';
    await journalQuietly(opts.stateDir, journalEntry({ at, outcome: 'failed', code, reason: describeError(err), generation: state?.generation ?? null, source: opts.sourceName }));
    throw err;
  } finally {
    await lock.release();
  }
}
