/**
 * Gathering the technician's view (edge): the recorder's files (identity,
 * device state, installed firmware) plus what only the running daemon
 * knows (broker session, queue, last health sample, egress verdict).
 * Used in the daemon for `/` and `/v1/status`, and by `glassbox status`
 * when the daemon does not answer.
 */
import type { DaemonStatus } from '../daemon/status-file.js';
import type { EgressSnapshot } from '../egress/types.js';
import type { HealthPayload } from '../telemetry/payloads.js';
import { clockSync } from './clock.js';
import { readDeviceFacts, readIdentityFacts } from './device.js';
import type { BrokerFacts, EgressFacts, EgressFlowFacts, StatusFacts } from './types.js';

/** Undeclared flows listed on the page (all are counted). */
export const UNDECLARED_FLOWS_SHOWN = 200;

/** What the running daemon adds to the files. */
export interface LiveFacts {
  readonly broker: BrokerFacts | null;
  readonly health: HealthPayload | null;
  readonly egress: EgressFacts | null;
  readonly running: boolean;
  readonly detail: string | null;
}

/** The daemon's own status (status-file.ts shape) as broker facts (pure). */
export function brokerFromDaemonStatus(s: DaemonStatus, configuredUrl: string | null): BrokerFacts {
  const t = s.telemetry;
  const q = t.queue;
  const queue = { depth: q.depth, bytes: q.bytes, maxBytes: q.maxBytes, droppedEvents: q.drops.droppedEvents, droppedHealth: q.drops.droppedHealth };
  const b = t.broker;
  if (b === null) return { url: configuredUrl, connected: false, source: 'daemon', since: null, lastError: 'no broker configured', queue, detail: null };
  return {
    url: b.url,
    connected: s.running ? b.state === 'connected' : null,
    source: 'daemon',
    since: b.connectedSince,
    lastError: b.lastError ? `${b.lastError.message}${b.lastError.code === null ? '' : ` (${String(b.lastError.code)})`}` : null,
    queue,
    detail: b.protocolVersion === null ? null : `MQTT ${b.protocolVersion === 5 ? '5' : '3.1.1'}`,
  };
}

/** The egress snapshot as the page shows it (pure): verdict, counts, undeclared flows newest first. */
export function egressFromSnapshot(s: EgressSnapshot): EgressFacts {
  const undeclared: EgressFlowFacts[] = s.flows
    .filter((f) => f.rule === null)
    .sort((a, b) => (a.lastSeen < b.lastSeen ? 1 : a.lastSeen > b.lastSeen ? -1 : 0))
    .slice(0, UNDECLARED_FLOWS_SHOWN)
    .map((f): EgressFlowFacts => ({
      direction: f.direction,
      proto: f.proto,
      src: f.src,
      dst: f.dst,
      dport: f.dport,
      count: f.count,
      firstSeen: f.firstSeen,
      lastSeen: f.lastSeen,
      rule: f.rule,
      process: f.process ? `${f.process.exe ?? '?'} (pid ${f.process.pid})` : f.srcMac ? `device ${f.srcMac}` : null,
    }));
  return {
    verdict: s.verdict,
    mode: s.policy.mode,
    windowStart: s.windowStart,
    windowEnd: s.windowEnd,
    flowsCounted: s.observation.flowsCounted,
    undeclared: s.undeclared,
    eventsLost: s.observation.eventsLost,
    reasons: s.reasons,
    undeclaredFlows: undeclared,
  };
}

export interface GatherOptions {
  readonly stateDir: string;
  readonly daemonVersion: string;
  readonly now: Date;
  /** Re-verify the installed firmware (reads all of it). */
  readonly verify: boolean;
  readonly live: LiveFacts | null;
  /** The daemon's account (owner the key must have), when known. */
  readonly expectedOwner?: { uid: number; gid: number } | null;
  /** Broker URL from the configuration, shown when the daemon cannot say more. */
  readonly configuredBroker?: string | null;
}

export async function gatherStatusFacts(o: GatherOptions): Promise<StatusFacts> {
  const { identity, error } = await readIdentityFacts(o.stateDir, o.expectedOwner ?? null);
  const device = await readDeviceFacts(o.stateDir, { verify: o.verify, now: o.now });
  const broker: BrokerFacts | null =
    o.live?.broker ?? (o.configuredBroker ? { url: o.configuredBroker, connected: null, source: 'config', since: null, lastError: null, queue: null, detail: null } : null);
  return {
    generatedAt: o.now.toISOString(),
    stateDir: o.stateDir,
    daemonVersion: o.daemonVersion,
    identity,
    identityError: error,
    trust: device.trust,
    broker,
    clock: { now: o.now.toISOString(), trustedTime: device.state?.trustedTime ?? null, sync: o.live?.health?.clock.sync ?? (await clockSync()) },
    firmware: device.firmware,
    health: o.live?.health ?? null,
    egress: o.live?.egress ?? null,
    daemon: { running: o.live?.running ?? false, detail: o.live?.detail ?? null },
  };
}
