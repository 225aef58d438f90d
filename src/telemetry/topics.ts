/**
 * The typed MQTT topic map of glassbox v1. Every device publishes under
 * `glassbox/v1/<deviceId>/`, the only subtree its broker ACL allows
 * (`pattern readwrite glassbox/v1/%u/#` with the certificate CN as username).
 *
 * To add a topic: add its payload type to TopicPayloads and its delivery
 * options to TOPICS (both here), a JSON Schema in schemas.ts, and a row in
 * docs/mqtt.md. To add an event type: add it to EventTypes. To add a
 * command: register a handler with CommandRegistry (commands.ts) and add its
 * result type to CommandResults.
 */
import type { CmdResponsePayload, EventPayload, HealthPayload, ProvenancePayload, StatusPayload } from './payloads.js';

export const TOPIC_ROOT = 'glassbox/v1';

/** Payload type of each device topic. */
export interface TopicPayloads {
  status: StatusPayload;
  health: HealthPayload;
  provenance: ProvenancePayload;
  events: EventPayload;
}
export type TopicName = keyof TopicPayloads;

export interface TopicOptions {
  readonly qos: 0 | 1;
  readonly retain: boolean;
  /** true: goes through the persistent offline queue (never lost); false: latest state, republished on connect. */
  readonly queued: boolean;
}

export const TOPICS: { readonly [K in TopicName]: TopicOptions } = {
  status: { qos: 1, retain: true, queued: false },
  health: { qos: 1, retain: false, queued: true },
  provenance: { qos: 1, retain: true, queued: false },
  events: { qos: 1, retain: false, queued: true },
};

/** Data carried by each event type (payload field `data`). */
export interface EventTypes {
  /** From the install journal: an install was done (`installed`), refused (`rejected`) or broke (`failed`); a boot check `committed` the slot. */
  'install.outcome': { readonly outcome: 'installed' | 'committed' | 'rejected' | 'failed'; readonly slot: string | null; readonly version: string | null; readonly manifestSha256: string | null; readonly code: string | null; readonly reason: string | null; readonly journalAt: string };
  /** From the install journal: a boot check failed; `bootOutcome` says whether the device fell back to the other slot (fell-back), will retry (retry) or had none (no-fallback). */
  'boot.fallback': { readonly slot: string | null; readonly bootOutcome: string | null; readonly version: string | null; readonly code: string | null; readonly reason: string | null; readonly journalAt: string };
  /** From the install journal: an operator rolled back (or tried to). */
  'install.rollback': { readonly outcome: 'ok' | 'rejected' | 'failed'; readonly slot: string | null; readonly version: string | null; readonly code: string | null; readonly reason: string | null; readonly journalAt: string };
  /** The trust policy in force changed (a bundle's trust artifact took effect). */
  'trust.rotation': { readonly previousPolicySha256: string | null; readonly policySha256: string };
  /** Egress observer: a flow not declared by the installed manifest (egress issue). */
  'egress.alert': { readonly [key: string]: unknown };
  /** The offline queue had to drop messages (reported after reconnect). */
  'queue.dropped': { readonly droppedEvents: number; readonly droppedHealth: number; readonly corrupt: number; readonly firstDroppedSeq: number | null; readonly lastDroppedSeq: number | null; readonly since: string };
  /** The daemon started (boot id and version), so ops see restarts. */
  'daemon.started': { readonly version: string; readonly bootId: string | null; readonly queuedAtStart: number };
}
export type EventType = keyof EventTypes;

export const EVENT_TYPE_PATTERN = /^[a-z][a-z0-9-]{0,31}(\.[a-z][a-z0-9-]{0,31}){1,3}$/;

/** Read-only commands answered over MQTT and what their `result` is. Nothing here changes the recorder. */
export interface CommandResults {
  health: HealthPayload;
  provenance: ProvenancePayload;
}

export const COMMAND_NAME_PATTERN = /^[a-z][a-z0-9-]{0,31}$/;

export function deviceRoot(deviceId: string): string {
  return `${TOPIC_ROOT}/${deviceId}`;
}

export function topicOf(deviceId: string, name: TopicName): string {
  return `${deviceRoot(deviceId)}/${name}`;
}

/** Subscription filter for commands addressed to this device. */
export function commandFilter(deviceId: string): string {
  return `${deviceRoot(deviceId)}/cmd/+`;
}

/** The 3.1.1 fallback (and MQTT 5 default) response topic of a command. */
export function defaultResponseTopic(deviceId: string, command: string): string {
  return `${deviceRoot(deviceId)}/cmd/${command}/response`;
}

/** Command name of a request topic, or null when the topic is not `<root>/cmd/<name>`. */
export function commandNameOf(deviceId: string, topic: string): string | null {
  const prefix = `${deviceRoot(deviceId)}/cmd/`;
  if (!topic.startsWith(prefix)) return null;
  const name = topic.slice(prefix.length);
  return name.length > 0 && !name.includes('/') ? name : null;
}

/** true when `topic` lies in the device's own subtree and has no wildcard (a topic we may publish to). */
export function isOwnTopic(deviceId: string, topic: string): boolean {
  return topic.startsWith(`${deviceRoot(deviceId)}/`) && !/[+#\u0000]/.test(topic) && topic.length <= 1024;
}

export type { CmdResponsePayload };
