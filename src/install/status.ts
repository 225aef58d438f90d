/**
 * `glassbox status`: what a technician (or ops, with --json) needs to know
 * about the recorder's firmware. Pure: state, journal and lock info in, a
 * report and its text out. The JSON shape is documented in docs/status.md.
 */
import type { JournalEntry } from './journal.js';
import type { LockHolder } from './lock.js';
import { SLOT_IDS, type BootRecord, type DeviceState, type SlotFailure, type SlotId, type SlotState } from './state.js';

export const STATUS_SCHEMA = 'glassbox.status/v1' as const;

export interface SlotStatus {
  readonly id: SlotId;
  readonly active: boolean;
  readonly state: SlotState;
  readonly product: string | null;
  readonly version: string | null;
  readonly manifestSha256: string | null;
  readonly securityVersion: number | null;
  readonly installedAt: string | null;
  readonly committedAt: string | null;
  readonly bootAttempts: number;
  /** True when a committed slot sits below the floor (cannot be booted again). */
  readonly belowFloor: boolean;
  /** Digest of a trust policy this slot carries, effective at its commit (null when none). */
  readonly trustRotation: string | null;
  readonly failure: SlotFailure | null;
}

/** The journal's last `install` entry, as status reports it. */
export type LastInstall = Pick<JournalEntry, 'at' | 'outcome' | 'code' | 'reason' | 'slot' | 'version' | 'securityVersion' | 'source'>;

export interface StatusReport {
  readonly schema: typeof STATUS_SCHEMA;
  readonly stateDir: string;
  readonly generation: number;
  readonly hardware: string;
  readonly active: SlotId | null;
  readonly securityFloor: number;
  readonly trustedTime: string;
  readonly trustPolicy: string;
  readonly maxBootAttempts: number;
  readonly slots: readonly SlotStatus[];
  readonly lastInstall: LastInstall | null;
  readonly lastBoot: BootRecord | null;
  readonly lock: { readonly pid: number | null; readonly command: string | null; readonly since: string | null; readonly stale: string | null } | null;
  /** One sentence: what to do next. */
  readonly next: string;
}

const INSTALL_HINTS: Record<string, string> = {
  ROLLBACK: 'the bundle is older than the security level this recorder has reached; get the current release',
  MANIFEST_EXPIRED: 'the bundle has expired; get a fresh release (and check the recorder clock)',
  HARDWARE_MISMATCH: 'the bundle is built for another hardware model; get the release for this model',
  SIGNATURE_INVALID: 'the bundle is not correctly signed; do not use it and report it',
  SIGNER_UNTRUSTED: 'the bundle is not signed by keys this recorder trusts; do not use it and report it',
  THRESHOLD_NOT_MET: 'the bundle lacks the required signatures; do not use it and report it',
  BUNDLE_FORMAT: 'the bundle file is damaged or incomplete; copy it again',
  MANIFEST_INVALID: 'the bundle file is damaged or not a glassbox bundle; copy it again',
  ARTIFACT_MISSING: 'the bundle file is damaged or incomplete; copy it again',
  ARTIFACT_UNEXPECTED: 'the bundle file is damaged or was altered; copy it again',
  ARTIFACT_SIZE: 'the bundle file is damaged or was altered; copy it again',
  ARTIFACT_DIGEST: 'the bundle file is damaged or was altered; copy it again',
  DISK_FULL: 'the recorder ran out of space during the install; free space, then install again',
  READ_ONLY: 'the state directory could not be written; check the disk, then install again',
  BUNDLE_UNREADABLE: 'the bundle could not be read to its end (stick removed?); copy it again and retry',
  LOCKED: 'another install was running; wait for it and retry',
};

function lastInstallOf(journal: readonly JournalEntry[]): LastInstall | null {
  for (let i = journal.length - 1; i >= 0; i--) {
    const e = journal[i] as JournalEntry;
    if (e.command !== 'install') continue;
    return { at: e.at, outcome: e.outcome, code: e.code, reason: e.reason, slot: e.slot, version: e.version, securityVersion: e.securityVersion, source: e.source };
  }
  return null;
}

function adviceFor(state: DeviceState, last: LastInstall | null): string {
  if (state.active === null) return 'No firmware is installed: install a bundle with "glassbox install FILE".';
  const active = state.slots[state.active];
  if (active.state === 'pending') {
    return `Restart the recorder (or run "glassbox boot-check") to confirm ${active.version ?? 'the new firmware'}; after ${state.maxBootAttempts} failed starts it returns to the previous firmware.`;
  }
  if (active.state === 'failed') return 'The running slot failed its checks and there is no committed firmware to return to: install a good bundle from USB.';
  const lb = state.lastBoot;
  const lastIsNewer = last !== null && lb !== null ? new Date(last.at).getTime() >= new Date(lb.at).getTime() : last !== null;
  if (lb && (lb.outcome === 'fell-back' || lb.outcome === 'no-fallback') && !lastIsNewer) {
    return `The last update did not pass its start checks, so the recorder returned to slot ${state.active}: fix the cause shown above, then install again.`;
  }
  if (last && last.outcome !== 'ok') {
    const hint = (last.code && INSTALL_HINTS[last.code]) ?? 'see the reason above';
    return `The last install was refused (${last.code ?? 'error'}): ${hint}. The recorder still runs ${active.version ?? 'its firmware'}.`;
  }
  return `Nothing to do: the recorder runs committed firmware ${active.version ?? ''}.`.replace(' .', '.');
}

export function buildStatus(stateDir: string, state: DeviceState, journal: readonly JournalEntry[], lock: { holder: LockHolder | null; stale: string | null } | null): StatusReport {
  const last = lastInstallOf(journal);
  return {
    schema: STATUS_SCHEMA,
    stateDir,
    generation: state.generation,
    hardware: state.hardware,
    active: state.active,
    securityFloor: state.securityFloor,
    trustedTime: state.trustedTime,
    trustPolicy: state.trustPolicy,
    maxBootAttempts: state.maxBootAttempts,
    slots: SLOT_IDS.map((id) => {
      const s = state.slots[id];
      return {
        id,
        active: state.active === id,
        state: s.state,
        product: s.product,
        version: s.version,
        manifestSha256: s.manifestSha256,
        securityVersion: s.securityVersion,
        installedAt: s.installedAt,
        committedAt: s.committedAt,
        bootAttempts: s.bootAttempts,
        belowFloor: s.state === 'committed' && (s.securityVersion ?? 0) < state.securityFloor,
        trustRotation: s.trustPolicy,
        failure: s.failure,
      };
    }),
    lastInstall: last,
    lastBoot: state.lastBoot,
    lock: lock === null ? null : { pid: lock.holder?.pid ?? null, command: lock.holder?.command ?? null, since: lock.holder?.since ?? null, stale: lock.stale },
    next: adviceFor(state, last),
  };
}

function slotLine(s: SlotStatus, maxAttempts: number): string {
  if (s.state === 'empty') return `  slot ${s.id}: empty${s.active ? '   <- active' : ''}`;
  const parts = [`  slot ${s.id}: ${s.state.padEnd(9)}`, `${s.version ?? '?'}`, `security ${s.securityVersion ?? '?'}`, `manifest ${(s.manifestSha256 ?? '').slice(0, 12)}`];
  if (s.state === 'pending') parts.push(`starts ${s.bootAttempts}/${maxAttempts}`);
  if (s.belowFloor) parts.push('below floor: cannot be booted again');
  if (s.trustRotation) parts.push(`carries trust policy ${s.trustRotation.slice(0, 12)}`);
  let line = parts.join('  ');
  if (s.active) line += '   <- active';
  if (s.failure) line += `\n      why: ${s.failure.reason} (${s.failure.code}, ${s.failure.at})`;
  return line;
}

/** The technician's view: short, and ends with what to do next. */
export function renderStatus(r: StatusReport): string {
  const lines: string[] = [];
  const active = r.slots.find((s) => s.active);
  lines.push(active ? `Running slot ${active.id}: ${active.version ?? '?'} (${active.state})` : 'Running: no firmware installed');
  for (const s of r.slots) lines.push(slotLine(s, r.maxBootAttempts));
  lines.push(`Security floor: ${r.securityFloor}   hardware: ${r.hardware}   trusted time: ${r.trustedTime}`);
  if (r.lastInstall) {
    const li = r.lastInstall;
    const what = li.outcome === 'ok' ? `installed ${li.version ?? ''} into slot ${li.slot ?? '?'}` : `${li.outcome} ${li.code ?? ''}: ${li.reason ?? ''}`;
    lines.push(`Last install: ${li.at} ${what}${li.source ? ` (from ${li.source})` : ''}`);
  } else {
    lines.push('Last install: none');
  }
  if (r.lastBoot) lines.push(`Last boot check: ${r.lastBoot.at} ${r.lastBoot.outcome}${r.lastBoot.reason ? `: ${r.lastBoot.reason}` : ''}`);
  if (r.lock && r.lock.pid !== null) lines.push(r.lock.stale ? `Lock: stale (${r.lock.stale}); the next install takes it over` : `Lock: ${r.lock.command ?? '?'} running (pid ${r.lock.pid}, since ${r.lock.since ?? '?'})`);
  lines.push(`Next: ${r.next}`);
  return lines.join('\n');
}
