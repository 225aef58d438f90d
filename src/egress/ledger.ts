/**
 * The egress ledger: counters, flow records, gaps and integrity events of
 * one observation window (one kernel boot). Pure: every mutation takes the
 * time as an argument; serialization is to and from plain JSON, and loading
 * checks shape and bounds. The store (ledger-store.ts) puts it on disk.
 */
import type { EgressRule } from '../manifest/types.js';
import type { ConntrackEvent } from './conntrack-parse.js';
import type { DeniedElement, KernelCounters } from './ruleset.js';
import type { DecodedMark } from './mark.js';
import type { CounterTotals, Direction, EgressSnapshot, FlowEntry, Gap, IntegrityEvent, PolicyInfo, ProcessInfo, Verdict } from './types.js';

export const LEDGER_SCHEMA = 'glassbox.egress-ledger/v1';
export const DEFAULT_FLOWS_CAP = 1000;
export const GAPS_CAP = 100;
export const INTEGRITY_EVENTS_CAP = 50;
export const UIDS_PER_FLOW = 16;
export const UID_MAP_CAP = 4096;

export interface LedgerData {
  readonly schema: typeof LEDGER_SCHEMA;
  bootId: string;
  table: string;
  windowStart: string;
  /** Latest instant the observer is known to have been running (persisted periodically). */
  heartbeat: string;
  /** sha256 of the policy (mode, rules, manifest) the table was built from. */
  policyKey: string;
  /** Digest of the table as the daemon installed it (ruleset.ts rulesetDigest). */
  installedDigest: string | null;
  rulesetIntact: boolean;
  integrityEvents: IntegrityEvent[];
  integrityOmitted: number;
  gaps: Gap[];
  gapsOmitted: number;
  /** Counts of earlier table generations in this window (the daemon reinstalled the table). */
  base: CounterTotals;
  /** Latest kernel counters of the current table generation. */
  lastKernel: CounterTotals;
  countersWentBackwards: boolean;
  /** Detail records of counted flows (conntrack events with glassbox's mark + denied-set increments). */
  recorded: number;
  readerOverruns: number;
  readerDroppedBytes: number;
  /** Spool rotations whose cut could not be placed exactly (conntrack-reader.ts); absent in older ledgers. */
  handoverFaults?: number;
  malformedLines: number;
  /** Last count seen per denied-set element (enforce mode), to turn set counters into increments. */
  denied: Record<string, number>;
  /** Most recently updated last; at most flowsCap entries. */
  flows: FlowEntry[];
  flowsCap: number;
  flowsOmitted: number;
  flowsOmittedCount: number;
  /** Undeclared local flows per uid (kernel set), base + current generation. */
  undeclaredByUidBase: Record<string, number>;
  undeclaredByUidLast: Record<string, number>;
}

export const ZERO_TOTALS: CounterTotals = Object.freeze({ localNew: 0, forwardNew: 0, localUndeclared: 0, forwardUndeclared: 0, rules: Object.freeze({}) });

export function addTotals(a: CounterTotals, b: CounterTotals): CounterTotals {
  const rules: Record<string, { local: number; forward: number }> = {};
  for (const src of [a.rules, b.rules]) {
    for (const [id, v] of Object.entries(src)) {
      const cur = rules[id] ?? { local: 0, forward: 0 };
      rules[id] = { local: cur.local + v.local, forward: cur.forward + v.forward };
    }
  }
  return {
    localNew: a.localNew + b.localNew,
    forwardNew: a.forwardNew + b.forwardNew,
    localUndeclared: a.localUndeclared + b.localUndeclared,
    forwardUndeclared: a.forwardUndeclared + b.forwardUndeclared,
    rules,
  };
}

/** Kernel counters (by rule index) as totals by rule id. */
export function totalsFromKernel(k: KernelCounters, rules: readonly EgressRule[] | null): CounterTotals {
  const byId: Record<string, { local: number; forward: number }> = {};
  for (const [idx, v] of k.rules) {
    const id = rules?.[idx]?.id ?? `#${idx}`;
    byId[id] = { local: v.local, forward: v.forward };
  }
  return { localNew: k.localNew, forwardNew: k.forwardNew, localUndeclared: k.localUndeclared, forwardUndeclared: k.forwardUndeclared, rules: byId };
}

function decreased(prev: CounterTotals, next: CounterTotals): string | null {
  for (const f of ['localNew', 'forwardNew', 'localUndeclared', 'forwardUndeclared'] as const) {
    if (next[f] < prev[f]) return `${f} went from ${prev[f]} to ${next[f]}`;
  }
  for (const [id, v] of Object.entries(prev.rules)) {
    const n = next.rules[id];
    if (n !== undefined && (n.local < v.local || n.forward < v.forward)) return `counter of rule ${id} went backwards`;
  }
  return null;
}

export function newLedger(args: { bootId: string; table: string; now: Date; policyKey: string; flowsCap?: number }): LedgerData {
  const t = args.now.toISOString();
  return {
    schema: LEDGER_SCHEMA,
    bootId: args.bootId,
    table: args.table,
    windowStart: t,
    heartbeat: t,
    policyKey: args.policyKey,
    installedDigest: null,
    rulesetIntact: true,
    integrityEvents: [],
    integrityOmitted: 0,
    gaps: [],
    gapsOmitted: 0,
    base: ZERO_TOTALS,
    lastKernel: ZERO_TOTALS,
    countersWentBackwards: false,
    recorded: 0,
    readerOverruns: 0,
    readerDroppedBytes: 0,
    handoverFaults: 0,
    malformedLines: 0,
    denied: {},
    flows: [],
    flowsCap: args.flowsCap ?? DEFAULT_FLOWS_CAP,
    flowsOmitted: 0,
    flowsOmittedCount: 0,
    undeclaredByUidBase: {},
    undeclaredByUidLast: {},
  };
}

/**
 * The ledger's mutable model. Flows live in a Map in least-recently-updated
 * order so the cap evicts the oldest distinct flow.
 */
export class Ledger {
  private readonly flowIndex = new Map<string, FlowEntry>();

  constructor(readonly data: LedgerData) {
    for (const f of data.flows) this.flowIndex.set(flowKey(f.direction, f.proto, f.src, f.dst, f.dport, f.rule), f);
  }

  /** The daemon (re)installed its table: fold the current generation's counters into the base. */
  tableInstalled(digest: string | null, policyKey: string): void {
    const d = this.data;
    d.base = addTotals(d.base, d.lastKernel);
    d.lastKernel = ZERO_TOTALS;
    d.undeclaredByUidBase = addCounts(d.undeclaredByUidBase, d.undeclaredByUidLast);
    d.undeclaredByUidLast = {};
    d.denied = {};
    d.installedDigest = digest;
    d.policyKey = policyKey;
  }

  integrityLost(what: string, now: Date): void {
    const d = this.data;
    d.rulesetIntact = false;
    if (d.integrityEvents.length >= INTEGRITY_EVENTS_CAP) d.integrityOmitted++;
    else d.integrityEvents.push({ at: now.toISOString(), what });
  }

  addGap(start: Date, end: Date, reason: string): void {
    if (end.getTime() <= start.getTime()) return;
    const d = this.data;
    if (d.gaps.length >= GAPS_CAP) d.gapsOmitted++;
    else d.gaps.push({ start: start.toISOString(), end: end.toISOString(), reason });
  }

  heartbeat(now: Date): void {
    this.data.heartbeat = now.toISOString();
  }

  /** New kernel counters of the current generation. Returns a description when they went backwards. */
  kernelCounters(next: CounterTotals, uids: ReadonlyMap<number, number>, now: Date): string | null {
    const d = this.data;
    const why = decreased(d.lastKernel, next);
    if (why !== null) {
      // Someone reset the counters: keep what was counted before, flag the window.
      d.base = addTotals(d.base, d.lastKernel);
      d.countersWentBackwards = true;
      this.integrityLost(`kernel counters went backwards (${why})`, now);
    }
    d.lastKernel = next;
    const last: Record<string, number> = {};
    for (const [uid, n] of uids) if (Object.keys(last).length < UID_MAP_CAP) last[String(uid)] = n;
    d.undeclaredByUidLast = last;
    return why;
  }

  /** One conntrack NEW event carrying glassbox's mark. */
  recordEvent(ev: ConntrackEvent, mark: DecodedMark, rules: readonly EgressRule[] | null, extra: { srcMac?: string | null; process?: ProcessInfo | null } = {}): FlowEntry {
    this.data.recorded++;
    const rule = mark.ruleIndex === null ? null : (rules?.[mark.ruleIndex]?.id ?? `#${mark.ruleIndex}`);
    return this.upsert(mark.direction, ev.proto, ev.src, ev.dst, ev.dport, rule, 1, new Date(ev.at), mark.uid, extra.process ?? null, extra.srcMac ?? null, 'conntrack');
  }

  /** Harvest of the kernel's denied sets (enforce mode). Returns the flows that grew. */
  recordDenied(elements: readonly DeniedElement[], now: Date, macs: ReadonlyMap<string, string>): FlowEntry[] {
    const d = this.data;
    const seen: Record<string, number> = {};
    const grown: FlowEntry[] = [];
    for (const e of elements) {
      const prev = d.denied[e.key] ?? 0;
      const delta = e.count >= prev ? e.count - prev : e.count;
      seen[e.key] = e.count;
      if (delta === 0) continue;
      d.recorded += delta;
      const mac = e.direction === 'forwarded' ? (macs.get(e.src) ?? null) : null;
      grown.push(this.upsert(e.direction, e.proto, e.src, e.dst, e.dport, null, delta, now, e.uid, null, mac, 'denied-set'));
    }
    d.denied = seen;
    return grown;
  }

  /** Attaches a process found after the fact to the flow, if it is still listed. */
  attachProcess(f: Pick<FlowEntry, 'direction' | 'proto' | 'src' | 'dst' | 'dport' | 'rule'>, process: ProcessInfo): void {
    const key = flowKey(f.direction, f.proto, f.src, f.dst, f.dport, f.rule);
    const cur = this.flowIndex.get(key);
    if (cur === undefined) return;
    const next = { ...cur, process };
    this.flowIndex.set(key, next);
  }

  setMac(f: Pick<FlowEntry, 'direction' | 'proto' | 'src' | 'dst' | 'dport' | 'rule'>, mac: string): void {
    const key = flowKey(f.direction, f.proto, f.src, f.dst, f.dport, f.rule);
    const cur = this.flowIndex.get(key);
    if (cur !== undefined) this.flowIndex.set(key, { ...cur, srcMac: mac });
  }

  private upsert(direction: Direction, proto: string, src: string, dst: string, dport: number | null, rule: string | null, count: number, at: Date, uid: number | null, process: ProcessInfo | null, srcMac: string | null, source: FlowEntry['source']): FlowEntry {
    const key = flowKey(direction, proto, src, dst, dport, rule);
    const iso = at.toISOString();
    const cur = this.flowIndex.get(key);
    let next: FlowEntry;
    if (cur === undefined) {
      next = { direction, proto, src, dst, dport, count, firstSeen: iso, lastSeen: iso, rule, uids: uid === null ? [] : [uid], process, srcMac, source };
    } else {
      const uids = uid === null || cur.uids.includes(uid) || cur.uids.length >= UIDS_PER_FLOW ? cur.uids : [...cur.uids, uid].sort((a, b) => a - b);
      next = {
        ...cur,
        count: cur.count + count,
        firstSeen: iso < cur.firstSeen ? iso : cur.firstSeen,
        lastSeen: iso > cur.lastSeen ? iso : cur.lastSeen,
        uids,
        process: process ?? cur.process,
        srcMac: srcMac ?? cur.srcMac,
      };
      this.flowIndex.delete(key);
    }
    this.flowIndex.set(key, next);
    while (this.flowIndex.size > this.data.flowsCap) {
      const oldest = this.flowIndex.keys().next().value as string;
      const gone = this.flowIndex.get(oldest) as FlowEntry;
      this.flowIndex.delete(oldest);
      this.data.flowsOmitted++;
      this.data.flowsOmittedCount += gone.count;
    }
    return next;
  }

  /** Plain data for the store (flows in least-recently-updated order). */
  toJSON(): LedgerData {
    return { ...this.data, flows: [...this.flowIndex.values()] };
  }

  flows(): FlowEntry[] {
    return [...this.flowIndex.values()];
  }
}

function addCounts(a: Record<string, number>, b: Record<string, number>): Record<string, number> {
  const out: Record<string, number> = { ...a };
  for (const [k, v] of Object.entries(b)) if (k in out || Object.keys(out).length < UID_MAP_CAP) out[k] = (out[k] ?? 0) + v;
  return out;
}

export function flowKey(direction: Direction, proto: string, src: string, dst: string, dport: number | null, rule: string | null): string {
  return `${direction}|${proto}|${src}|${dst}|${dport ?? '-'}|${rule ?? '-'}`;
}

// ---------------------------------------------------------------- judging

export interface JudgeInput {
  readonly ledger: LedgerData;
  readonly flows: readonly FlowEntry[];
  readonly policy: PolicyInfo;
  readonly now: Date;
  /** Result of the integrity check made for this snapshot (the ledger's flag is sticky). */
  readonly rulesetSha256: string | null;
  /** Gap still open at snapshot time (e.g. detail reader down now). */
  readonly openGap?: Gap | null;
}

/** Section 2's verdict with every reason that keeps a window from being clean. Pure. */
export function judge(input: JudgeInput): EgressSnapshot {
  const d = input.ledger;
  const totals = addTotals(d.base, d.lastKernel);
  const counted = totals.localNew + totals.forwardNew;
  const undeclared = totals.localUndeclared + totals.forwardUndeclared;
  const eventsLost = Math.max(0, counted - d.recorded);
  const gaps = input.openGap ? [...d.gaps, input.openGap] : d.gaps;
  const reasons: string[] = [];
  if (undeclared > 0) reasons.push(`${undeclared} flow(s) matched no egress rule`);
  if (input.policy.rules === null) reasons.push('no installed manifest: there is no egress policy to judge flows against');
  if (!d.rulesetIntact) reasons.push(`the glassbox nftables table was changed by someone other than the daemon (${d.integrityEvents.length + d.integrityOmitted} event(s))`);
  if (d.countersWentBackwards) reasons.push('kernel counters went backwards');
  if (gaps.length + d.gapsOmitted > 0) reasons.push(`${gaps.length + d.gapsOmitted} gap(s) in the observation window`);
  if (eventsLost > 0) reasons.push(`${eventsLost} counted flow(s) have no detail record (events lost)`);
  if ((d.handoverFaults ?? 0) > 0) reasons.push(`the detail reader could not cut its spool exactly at ${d.handoverFaults} rotation(s): records cannot be vouched for`);
  if (d.recorded > counted) reasons.push(`more detail records (${d.recorded}) than counted flows (${counted}): counters cannot be trusted`);
  const verdict: Verdict = undeclared > 0 ? 'undeclared-egress' : reasons.length > 0 ? 'incomplete' : 'clean';
  const undeclaredByUid = addCounts(d.undeclaredByUidBase, d.undeclaredByUidLast);
  return {
    bootId: d.bootId,
    windowStart: d.windowStart,
    windowEnd: input.now.toISOString(),
    policy: input.policy,
    observation: {
      flowsCounted: counted,
      flowsRecorded: d.recorded,
      eventsLost,
      rulesetSha256: input.rulesetSha256,
      rulesetIntact: d.rulesetIntact,
      gaps,
      gapsOmitted: d.gapsOmitted,
      integrityEvents: d.integrityEvents,
      countersWentBackwards: d.countersWentBackwards,
      readerOverruns: d.readerOverruns,
      readerDroppedBytes: d.readerDroppedBytes,
      counters: totals,
      undeclaredByUid,
    },
    flows: [...input.flows].reverse(),
    flowsCap: d.flowsCap,
    flowsOmitted: d.flowsOmitted,
    flowsOmittedCount: d.flowsOmittedCount,
    undeclared,
    verdict,
    reasons,
  };
}

/**
 * The snapshot when the observer cannot run at all (no privilege, no nft or
 * conntrack, its start failed): nothing observed, so `incomplete` with the
 * reason, and the whole time since `since` as a gap. Pure.
 */
export function unavailableSnapshot(args: { bootId: string; since: Date; now: Date; policy: PolicyInfo; reason: string; flowsCap?: number }): EgressSnapshot {
  const gap: Gap = { start: args.since.toISOString(), end: args.now.toISOString(), reason: `egress observer not running: ${args.reason}` };
  const reasons = [`the egress observer is not running (${args.reason}): nothing was observed`];
  if (args.policy.rules === null) reasons.push('no installed manifest: there is no egress policy to judge flows against');
  return {
    bootId: args.bootId,
    windowStart: args.since.toISOString(),
    windowEnd: args.now.toISOString(),
    policy: args.policy,
    observation: {
      flowsCounted: 0,
      flowsRecorded: 0,
      eventsLost: 0,
      rulesetSha256: null,
      rulesetIntact: false,
      gaps: [gap],
      gapsOmitted: 0,
      integrityEvents: [],
      countersWentBackwards: false,
      readerOverruns: 0,
      readerDroppedBytes: 0,
      counters: ZERO_TOTALS,
      undeclaredByUid: {},
    },
    flows: [],
    flowsCap: args.flowsCap ?? DEFAULT_FLOWS_CAP,
    flowsOmitted: 0,
    flowsOmittedCount: 0,
    undeclared: 0,
    verdict: 'incomplete',
    reasons,
  };
}

// ---------------------------------------------------------------- loading

export const LEDGER_MAX_BYTES = 8 * 1024 * 1024;

/** Checks a parsed ledger file's shape; returns null with a reason when it cannot be used. */
export function checkLedger(value: unknown): { ok: true; data: LedgerData } | { ok: false; reason: string } {
  if (typeof value !== 'object' || value === null) return { ok: false, reason: 'not an object' };
  const v = value as Partial<LedgerData>;
  if (v.schema !== LEDGER_SCHEMA) return { ok: false, reason: `schema is not ${LEDGER_SCHEMA}` };
  const strings = ['bootId', 'table', 'windowStart', 'heartbeat', 'policyKey'] as const;
  for (const k of strings) if (typeof v[k] !== 'string') return { ok: false, reason: `${k} is not a string` };
  const numbers = ['recorded', 'readerOverruns', 'readerDroppedBytes', 'malformedLines', 'flowsCap', 'flowsOmitted', 'flowsOmittedCount', 'gapsOmitted', 'integrityOmitted'] as const;
  for (const k of numbers) if (typeof v[k] !== 'number' || !Number.isFinite(v[k]) || (v[k] as number) < 0) return { ok: false, reason: `${k} is not a count` };
  if (!Array.isArray(v.flows) || v.flows.length > (v.flowsCap as number)) return { ok: false, reason: 'flows missing or over the cap' };
  if (!Array.isArray(v.gaps) || v.gaps.length > GAPS_CAP) return { ok: false, reason: 'gaps missing or over the cap' };
  if (!Array.isArray(v.integrityEvents) || v.integrityEvents.length > INTEGRITY_EVENTS_CAP) return { ok: false, reason: 'integrityEvents missing or over the cap' };
  for (const k of ['base', 'lastKernel'] as const) {
    const t = v[k];
    if (typeof t !== 'object' || t === null || typeof t.localNew !== 'number' || typeof t.rules !== 'object') return { ok: false, reason: `${k} is not a counter total` };
  }
  if (typeof v.rulesetIntact !== 'boolean' || typeof v.countersWentBackwards !== 'boolean') return { ok: false, reason: 'flags missing' };
  if (typeof v.denied !== 'object' || v.denied === null) return { ok: false, reason: 'denied missing' };
  if (typeof v.undeclaredByUidBase !== 'object' || typeof v.undeclaredByUidLast !== 'object') return { ok: false, reason: 'uid counts missing' };
  return { ok: true, data: value as LedgerData };
}
