/**
 * The device state model and its transitions. Pure: every function takes the
 * current state plus facts (times, digests) and returns the next state; the
 * edge (state-store.ts) persists it. state.json is the single source of
 * truth; `generation` rises by one on every write.
 */

export const STATE_SCHEMA = 'glassbox.device-state/v1' as const;
export const SLOT_IDS = ['a', 'b'] as const;
export type SlotId = (typeof SLOT_IDS)[number];
export type SlotState = 'committed' | 'pending' | 'failed' | 'empty';

export const DEFAULT_MAX_BOOT_ATTEMPTS = 3;

export interface SlotFailure {
  /** Stable code: HEALTH_CHECK_FAILED, SLOT_REFUSED, ROLLED_BACK, or a bundle rejection code. */
  readonly code: string;
  readonly reason: string;
  readonly at: string;
}

export interface SlotRecord {
  readonly state: SlotState;
  /** Storage reference of the slot's content (a directory name under slots/); null when empty. */
  readonly ref: string | null;
  readonly product: string | null;
  readonly version: string | null;
  /** sha256 of the exact manifest.json bytes. */
  readonly manifestSha256: string | null;
  readonly securityVersion: number | null;
  /** Signed `released` time of the manifest. */
  readonly released: string | null;
  /** Clock reading when the install switched to this slot. */
  readonly installedAt: string | null;
  /** Verification time used at install; re-verification judges the slot as of this instant. */
  readonly verifiedAt: string | null;
  readonly committedAt: string | null;
  /** Starts counted while pending (incremented before the health checks run). */
  readonly bootAttempts: number;
  /** sha256 of a trust policy carried by this slot's bundle; takes effect when the slot commits. */
  readonly trustPolicy: string | null;
  /** Why the slot is `failed` (or, while pending, why the last start failed). */
  readonly failure: SlotFailure | null;
}

export interface BootRecord {
  readonly at: string;
  readonly slot: SlotId | null;
  readonly outcome: 'committed' | 'retry' | 'fell-back' | 'no-fallback' | 'nothing-pending' | 'rolled-back';
  readonly reason: string | null;
}

export interface DeviceState {
  readonly schema: typeof STATE_SCHEMA;
  readonly generation: number;
  readonly hardware: string;
  /** sha256 of the canonical trust policy in force; its bytes are trust/<sha256>.json. */
  readonly trustPolicy: string;
  /** Anti-rollback floor: highest committed securityVersion. */
  readonly securityFloor: number;
  /** Latest trustworthy time: verification never uses an earlier time. */
  readonly trustedTime: string;
  readonly maxBootAttempts: number;
  readonly active: SlotId | null;
  readonly slots: { readonly a: SlotRecord; readonly b: SlotRecord };
  readonly lastBoot: BootRecord | null;
}

export const EMPTY_SLOT: SlotRecord = Object.freeze({
  state: 'empty',
  ref: null,
  product: null,
  version: null,
  manifestSha256: null,
  securityVersion: null,
  released: null,
  installedAt: null,
  verifiedAt: null,
  committedAt: null,
  bootAttempts: 0,
  trustPolicy: null,
  failure: null,
});

export function otherSlot(id: SlotId): SlotId {
  return id === 'a' ? 'b' : 'a';
}

export function initialState(args: { hardware: string; trustPolicy: string; trustedTime: Date; maxBootAttempts: number; securityFloor?: number }): DeviceState {
  return {
    schema: STATE_SCHEMA,
    generation: 1,
    hardware: args.hardware,
    trustPolicy: args.trustPolicy,
    securityFloor: args.securityFloor ?? 0,
    trustedTime: args.trustedTime.toISOString(),
    maxBootAttempts: args.maxBootAttempts,
    active: null,
    slots: { a: EMPTY_SLOT, b: EMPTY_SLOT },
    lastBoot: null,
  };
}

/** Verification time: the clock, never earlier than the latest trustworthy time. */
export function verificationTime(clock: Date, state: Pick<DeviceState, 'trustedTime'>): Date {
  const trusted = new Date(state.trustedTime);
  return clock.getTime() >= trusted.getTime() ? clock : trusted;
}

function laterIso(a: string, b: string | null): string {
  if (b === null) return a;
  return new Date(b).getTime() > new Date(a).getTime() ? b : a;
}

function withSlot(state: DeviceState, id: SlotId, record: SlotRecord): DeviceState['slots'] {
  return id === 'a' ? { a: record, b: state.slots.b } : { a: state.slots.a, b: record };
}

/**
 * Which slot an install writes. Normally the inactive one; when the active
 * slot is still `pending` (installed, not yet confirmed), the new install
 * replaces that pending slot, so the committed fallback is never touched.
 */
export function installTarget(state: DeviceState): SlotId {
  if (state.active === null) {
    // Factory state or nothing bootable: write a slot that is not committed, `a` first.
    return state.slots.a.state !== 'committed' ? 'a' : state.slots.b.state !== 'committed' ? 'b' : 'a';
  }
  if (state.slots[state.active].state === 'pending') return state.active;
  return otherSlot(state.active);
}

export interface InstalledFacts {
  readonly target: SlotId;
  readonly ref: string;
  readonly product: string;
  readonly version: string;
  readonly manifestSha256: string;
  readonly securityVersion: number;
  readonly released: string;
  readonly verifiedAt: Date;
  readonly installedAt: Date;
  readonly trustPolicy: string | null;
}

/** The switch: the freshly written slot becomes active and `pending`. Floor and trust are untouched. */
export function afterInstall(state: DeviceState, facts: InstalledFacts): DeviceState {
  const record: SlotRecord = {
    state: 'pending',
    ref: facts.ref,
    product: facts.product,
    version: facts.version,
    manifestSha256: facts.manifestSha256,
    securityVersion: facts.securityVersion,
    released: facts.released,
    installedAt: facts.installedAt.toISOString(),
    verifiedAt: facts.verifiedAt.toISOString(),
    committedAt: null,
    bootAttempts: 0,
    trustPolicy: facts.trustPolicy,
    failure: null,
  };
  return { ...state, generation: state.generation + 1, active: facts.target, slots: withSlot(state, facts.target, record) };
}

/** A start of a pending slot is counted before its checks run, so a crash during them counts too. */
export function afterBootStart(state: DeviceState): DeviceState {
  const id = state.active;
  if (id === null || state.slots[id].state !== 'pending') return state;
  const slot = state.slots[id];
  return { ...state, generation: state.generation + 1, slots: withSlot(state, id, { ...slot, bootAttempts: slot.bootAttempts + 1 }) };
}

/** True when a pending active slot has used up its starts (e.g. the previous starts crashed mid-check). */
export function bootAttemptsExhausted(state: DeviceState): boolean {
  const id = state.active;
  if (id === null) return false;
  const slot = state.slots[id];
  return slot.state === 'pending' && slot.bootAttempts >= state.maxBootAttempts;
}

/**
 * Boot confirmed: the slot is committed, the floor rises to its
 * securityVersion, the slot's trust policy (if any) takes effect, and the
 * latest trustworthy time moves up to the manifest's signed `released` time.
 */
export function afterBootSuccess(state: DeviceState, at: Date): DeviceState {
  const id = state.active;
  if (id === null) return state;
  const slot = state.slots[id];
  if (slot.state !== 'pending') return state;
  const committed: SlotRecord = { ...slot, state: 'committed', committedAt: at.toISOString(), failure: null };
  return {
    ...state,
    generation: state.generation + 1,
    securityFloor: Math.max(state.securityFloor, slot.securityVersion ?? 0),
    trustedTime: laterIso(state.trustedTime, slot.released),
    trustPolicy: slot.trustPolicy ?? state.trustPolicy,
    slots: withSlot(state, id, committed),
    lastBoot: { at: at.toISOString(), slot: id, outcome: 'committed', reason: null },
  };
}

/** Can `id` be booted as a fallback / rollback target? Returns null when yes, otherwise why not. */
export function fallbackRefusal(state: DeviceState, id: SlotId): { code: 'NO_FALLBACK' | 'ROLLBACK'; reason: string } | null {
  const slot = state.slots[id];
  if (slot.state !== 'committed') return { code: 'NO_FALLBACK', reason: `slot ${id} is ${slot.state}, not a committed firmware` };
  if ((slot.securityVersion ?? 0) < state.securityFloor) {
    return { code: 'ROLLBACK', reason: `slot ${id} has securityVersion ${slot.securityVersion ?? 0}, below the device floor ${state.securityFloor}` };
  }
  return null;
}

/**
 * A start of the pending slot failed. With starts left (and a retryable
 * failure) the slot stays pending; otherwise it is marked `failed` and the
 * device falls back to the other slot if that one is committed and at or
 * above the floor. With no fallback the failed slot stays active, so the
 * recorder keeps the only firmware it has and `status` says so.
 */
export function afterBootFailure(state: DeviceState, failure: SlotFailure, opts: { retryable: boolean }): DeviceState {
  const id = state.active;
  if (id === null) return state;
  const slot = state.slots[id];
  if (slot.state !== 'pending') return state;
  const base = { ...state, generation: state.generation + 1 };
  if (opts.retryable && slot.bootAttempts < state.maxBootAttempts) {
    return {
      ...base,
      slots: withSlot(state, id, { ...slot, failure }),
      lastBoot: { at: failure.at, slot: id, outcome: 'retry', reason: `start ${slot.bootAttempts} of ${state.maxBootAttempts} failed: ${failure.reason}` },
    };
  }
  const failed: SlotRecord = { ...slot, state: 'failed', failure };
  const other = otherSlot(id);
  const refusal = fallbackRefusal(state, other);
  const slots = withSlot(state, id, failed);
  if (refusal === null) {
    return { ...base, active: other, slots, lastBoot: { at: failure.at, slot: other, outcome: 'fell-back', reason: `slot ${id} failed: ${failure.reason}` } };
  }
  return { ...base, slots, lastBoot: { at: failure.at, slot: id, outcome: 'no-fallback', reason: `slot ${id} failed: ${failure.reason}; no fallback: ${refusal.reason}` } };
}

/**
 * Technician rollback to the other slot. Returns the next state, or the
 * refusal (caller turns it into an error). A pending slot left behind is
 * marked failed; a committed one stays committed.
 */
export function afterRollback(state: DeviceState, at: Date): { state: DeviceState; from: SlotId | null; to: SlotId } | { refusal: { code: 'NO_FALLBACK' | 'ROLLBACK'; reason: string } } {
  const from = state.active;
  const to = from === null ? (state.slots.a.state === 'committed' ? 'a' : 'b') : otherSlot(from);
  const refusal = fallbackRefusal(state, to);
  if (refusal) return { refusal };
  let slots = state.slots;
  if (from !== null && state.slots[from].state === 'pending') {
    slots = withSlot(state, from, { ...state.slots[from], state: 'failed', failure: { code: 'ROLLED_BACK', reason: 'rolled back by a technician before boot confirmation', at: at.toISOString() } });
  }
  return {
    state: {
      ...state,
      generation: state.generation + 1,
      active: to,
      slots,
      lastBoot: { at: at.toISOString(), slot: to, outcome: 'rolled-back', reason: from === null ? 'rollback' : `rollback from slot ${from}` },
    },
    from,
    to,
  };
}

/** Directory names under slots/ that the state references (everything else is garbage). */
export function referencedRefs(state: DeviceState): string[] {
  return SLOT_IDS.map((id) => state.slots[id].ref).filter((r): r is string => r !== null);
}
