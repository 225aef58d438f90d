/** Values shared by the egress observer, the ledger, the attestation and the API. */
import type { EgressRule } from '../manifest/types.js';
import type { EgressMode } from './ruleset.js';

export type { EgressMode };
export type Direction = 'local' | 'forwarded';

/** What is known of the local process that opened a flow (best effort; see docs/egress.md). */
export interface ProcessInfo {
  readonly pid: number;
  /** Executable path (readlink /proc/<pid>/exe), or null when it could not be read. */
  readonly exe: string | null;
  /** sha256 of the executable's bytes, or null. */
  readonly sha256: string | null;
}

/** One distinct (direction, proto, src, dst, dport), as the attestation lists it. */
export interface FlowEntry {
  readonly direction: Direction;
  readonly proto: string;
  readonly src: string;
  readonly dst: string;
  /** null for protocols without ports (icmp, …). */
  readonly dport: number | null;
  readonly count: number;
  readonly firstSeen: string;
  readonly lastSeen: string;
  /** id of the egress rule the kernel matched, or null (undeclared). */
  readonly rule: string | null;
  /** Socket owners seen for this flow (local only; at most 16). */
  readonly uids: readonly number[];
  /** Latest process known to have opened it, or null. */
  readonly process: ProcessInfo | null;
  /** Forwarded flows: MAC address of the sending device, when the kernel saw one. */
  readonly srcMac: string | null;
  /** Where the record came from: conntrack events or, for flows rejected in enforce mode, the kernel's denied sets. */
  readonly source: 'conntrack' | 'denied-set';
}

export interface CounterTotals {
  readonly localNew: number;
  readonly forwardNew: number;
  readonly localUndeclared: number;
  readonly forwardUndeclared: number;
  /** By rule id. */
  readonly rules: Readonly<Record<string, { readonly local: number; readonly forward: number }>>;
}

export interface Gap {
  readonly start: string;
  readonly end: string;
  readonly reason: string;
}

export interface IntegrityEvent {
  readonly at: string;
  readonly what: string;
}

export interface PolicyInfo {
  readonly mode: EgressMode;
  /** The manifest's egress rules verbatim, or null when no manifest is installed. */
  readonly rules: readonly EgressRule[] | null;
  /** sha256 of the installed manifest.json, or null. */
  readonly manifestSha256: string | null;
  readonly firmwareVersion: string | null;
  readonly securityVersion: number | null;
}

/** Everything an attestation or GET /v1/egress needs, at one instant. */
export interface EgressSnapshot {
  readonly bootId: string;
  readonly windowStart: string;
  readonly windowEnd: string;
  readonly policy: PolicyInfo;
  readonly observation: {
    readonly flowsCounted: number;
    readonly flowsRecorded: number;
    readonly eventsLost: number;
    readonly rulesetSha256: string | null;
    readonly rulesetIntact: boolean;
    readonly gaps: readonly Gap[];
    readonly gapsOmitted: number;
    readonly integrityEvents: readonly IntegrityEvent[];
    readonly countersWentBackwards: boolean;
    readonly readerOverruns: number;
    readonly readerDroppedBytes: number;
    readonly counters: CounterTotals;
    readonly undeclaredByUid: Readonly<Record<string, number>>;
  };
  readonly flows: readonly FlowEntry[];
  readonly flowsCap: number;
  /** Distinct flows left out of `flows` because of the cap, and the flows they counted. */
  readonly flowsOmitted: number;
  readonly flowsOmittedCount: number;
  readonly undeclared: number;
  readonly verdict: Verdict;
  readonly reasons: readonly string[];
}

export type Verdict = 'clean' | 'undeclared-egress' | 'incomplete';
