/**
 * MQTT payload types and their pure builders. Every payload carries its
 * schema id (`schema`, versioned) and the device id; times are RFC 3339 UTC
 * strings made from a Date passed in.
 */
import type { EventType, EventTypes } from './topics.js';

export const SCHEMA_IDS = {
  status: 'glassbox.status/v1',
  health: 'glassbox.health/v1',
  provenance: 'glassbox.provenance/v1',
  event: 'glassbox.event/v1',
  cmdResponse: 'glassbox.cmd-response/v1',
} as const;

export interface StatusPayload {
  readonly schema: typeof SCHEMA_IDS.status;
  readonly deviceId: string;
  readonly state: 'online' | 'offline';
  /** online: connected; shutdown: the daemon stopped cleanly; connection-lost: the broker's last will. */
  readonly reason: 'connected' | 'shutdown' | 'connection-lost';
  /** When this document was composed (for the last will: when the session it guards began). */
  readonly at: string;
  readonly daemonVersion: string;
  readonly bootId: string | null;
  readonly hardware: string | null;
}

export interface DiskHealth {
  readonly path: string;
  readonly device: string | null;
  readonly totalBytes: number;
  readonly availableBytes: number;
  readonly usedPercent: number;
  readonly io: { readonly readsCompleted: number; readonly writesCompleted: number; readonly sectorsRead: number; readonly sectorsWritten: number; readonly ioMillis: number } | null;
  /** null: SMART not checked (smartctl absent, disabled, or not a SMART device). */
  readonly smart: { readonly health: 'passed' | 'failed' | 'unknown'; readonly checkedAt: string } | null;
  readonly error: string | null;
}

export interface NetHealth {
  readonly name: string;
  readonly operstate: string;
  readonly speedMbps: number | null;
  readonly rxBytes: number;
  readonly txBytes: number;
  readonly rxErrors: number;
  readonly txErrors: number;
  readonly rxDropped: number;
  readonly txDropped: number;
}

export interface DaemonHealth {
  readonly rssBytes: number;
  readonly heapUsedBytes: number;
  readonly uptimeSeconds: number;
  readonly eventLoop: { readonly utilization: number; readonly delayP50Ms: number | null; readonly delayP99Ms: number | null; readonly delayMaxMs: number | null };
  readonly queue: { readonly depth: number; readonly bytes: number; readonly maxBytes: number; readonly droppedEvents: number; readonly droppedHealth: number };
}

export interface HealthPayload {
  readonly schema: typeof SCHEMA_IDS.health;
  readonly deviceId: string;
  readonly at: string;
  readonly bootId: string | null;
  readonly uptimeSeconds: number | null;
  readonly cpu: { readonly load1: number; readonly load5: number; readonly load15: number; readonly cores: number } | null;
  readonly memory: { readonly totalBytes: number; readonly availableBytes: number; readonly usedPercent: number; readonly swapTotalBytes: number; readonly swapFreeBytes: number } | null;
  readonly temperatures: ReadonlyArray<{ readonly sensor: string; readonly celsius: number }>;
  readonly disks: readonly DiskHealth[];
  readonly network: readonly NetHealth[];
  readonly clock: { readonly sync: 'synchronized' | 'unsynchronized' | 'unknown'; readonly source: string };
  readonly daemon: DaemonHealth;
  /** Collector faults of this sample (a file that could not be read), so gaps are visible. */
  readonly errors: readonly string[];
}

export interface SignerSummary {
  readonly subject: string | null;
  readonly spkiSha256: string | null;
}

export interface InstalledFirmware {
  readonly product: string | null;
  readonly version: string;
  readonly manifestSha256: string;
  readonly securityVersion: number;
  readonly released: string | null;
  readonly expires: string | null;
  readonly signers: readonly SignerSummary[];
  readonly sbomSha256: string | null;
  readonly provenanceSha256: string | null;
  readonly sourceRepository: string | null;
  readonly sourceCommit: string | null;
  readonly builder: string | null;
}

export interface SlotSummary {
  readonly name: string;
  /** e.g. empty | installed | pending | committed | failed (as the install module names them). */
  readonly state: string;
  readonly version: string | null;
  readonly manifestSha256: string | null;
}

/** What a ProvenanceSource reports: the data of the provenance topic without envelope fields. */
export interface ProvenanceSnapshot {
  readonly installed: InstalledFirmware | null;
  readonly activeSlot: string | null;
  readonly slots: readonly SlotSummary[];
  readonly securityFloor: number | null;
  readonly trustPolicySha256: string | null;
}

export interface ProvenancePayload extends ProvenanceSnapshot {
  readonly schema: typeof SCHEMA_IDS.provenance;
  readonly deviceId: string;
  readonly at: string;
}

export interface EventPayload<T extends EventType = EventType> {
  readonly schema: typeof SCHEMA_IDS.event;
  readonly deviceId: string;
  /** Unique id (UUID): ops de-duplicate redeliveries by it. */
  readonly id: string;
  /** Per-device sequence number, increasing in publish order across restarts. */
  readonly seq: number;
  readonly type: T;
  readonly at: string;
  readonly data: EventTypes[T];
}

export interface CmdResponsePayload {
  readonly schema: typeof SCHEMA_IDS.cmdResponse;
  readonly deviceId: string;
  readonly command: string;
  readonly at: string;
  readonly ok: boolean;
  readonly result?: unknown;
  readonly error?: { readonly code: string; readonly message: string };
  /** Echo of the request's correlation (MQTT 5 correlation data as base64, or the 3.1.1 `correlationId` field). */
  readonly correlation: string | null;
}

export interface StatusInput {
  readonly deviceId: string;
  readonly state: 'online' | 'offline';
  readonly reason: StatusPayload['reason'];
  readonly at: Date;
  readonly daemonVersion: string;
  readonly bootId: string | null;
  readonly hardware: string | null;
}

export function statusPayload(i: StatusInput): StatusPayload {
  return {
    schema: SCHEMA_IDS.status,
    deviceId: i.deviceId,
    state: i.state,
    reason: i.reason,
    at: i.at.toISOString(),
    daemonVersion: i.daemonVersion,
    bootId: i.bootId,
    hardware: i.hardware,
  };
}

export function provenancePayload(deviceId: string, snapshot: ProvenanceSnapshot, at: Date): ProvenancePayload {
  return { schema: SCHEMA_IDS.provenance, deviceId, at: at.toISOString(), ...snapshot };
}

export function eventPayload<T extends EventType>(deviceId: string, id: string, seq: number, type: T, data: EventTypes[T], at: Date): EventPayload<T> {
  return { schema: SCHEMA_IDS.event, deviceId, id, seq, type, at: at.toISOString(), data };
}

export function cmdResponse(
  deviceId: string,
  command: string,
  at: Date,
  correlation: string | null,
  outcome: { ok: true; result: unknown } | { ok: false; code: string; message: string },
): CmdResponsePayload {
  const base = { schema: SCHEMA_IDS.cmdResponse, deviceId, command, at: at.toISOString(), correlation } as const;
  return outcome.ok ? { ...base, ok: true, result: outcome.result } : { ...base, ok: false, error: { code: outcome.code, message: outcome.message } };
}

/** Serialises a payload for the wire (UTF-8 JSON). */
export function encode(payload: unknown): Buffer {
  return Buffer.from(JSON.stringify(payload), 'utf8');
}
