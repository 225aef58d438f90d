/**
 * The technician's view of a recorder: plain data gathered at the edges
 * (identity files, device state, the daemon's live session, the egress
 * observer) and judged by pure functions into checks. The same view feeds
 * `glassbox status`, `provision import`'s checklist, `/v1/status` and the
 * status page.
 */
import type { FlowEntry } from '../egress/types.js';
import type { EgressRule } from '../manifest/types.js';
import type { HealthPayload, InstalledFirmware, SlotSummary } from '../telemetry/payloads.js';

export type CheckState = 'ok' | 'warn' | 'fail';

export type CheckId = 'identity' | 'trust' | 'broker' | 'clock' | 'firmware' | 'egress-policy' | 'health' | 'egress';

export interface StatusCheck {
  readonly id: CheckId;
  readonly label: string;
  readonly state: CheckState;
  /** One line: what was found. */
  readonly detail: string;
  /** One line: what to do, when not ok. */
  readonly fix: string | null;
}

export interface IdentityFacts {
  readonly deviceId: string;
  readonly hardware: string;
  readonly keyAlgorithm: string;
  readonly spkiSha256: string;
  readonly certificate: {
    readonly sha256: string;
    readonly serial: string;
    readonly subject: string;
    readonly issuer: string;
    readonly notBefore: string;
    readonly notAfter: string;
  } | null;
  /** The key file as found on disk (never its content). null = missing. */
  readonly keyFile: { readonly path: string; readonly mode: number; readonly uid: number; readonly gid: number } | null;
  /** The account the daemon runs as, when known: the key must belong to it. */
  readonly expectedOwner: { readonly uid: number; readonly gid: number } | null;
}

export interface TrustFacts {
  readonly sha256: string;
  readonly roots: readonly string[];
  readonly threshold: number;
}

export interface QueueFacts {
  readonly depth: number;
  readonly bytes: number;
  readonly maxBytes: number;
  readonly droppedEvents: number;
  readonly droppedHealth: number;
}

export interface BrokerFacts {
  readonly url: string | null;
  /** true/false as the daemon (or the provisioning check) saw it; null when nobody could say (daemon not running). */
  readonly connected: boolean | null;
  /** Who observed it. */
  readonly source: 'daemon' | 'provision-check' | 'config';
  readonly since: string | null;
  readonly lastError: string | null;
  readonly queue: QueueFacts | null;
  /** Provisioning check only: protocol, TLS version, round trip of the retained status. */
  readonly detail: string | null;
}

export interface ClockFacts {
  readonly now: string;
  /** Latest trustworthy time recorded by the install module; the clock must not be before it. */
  readonly trustedTime: string | null;
  readonly sync: 'synchronized' | 'unsynchronized' | 'unknown';
}

export interface FirmwareFacts {
  readonly activeSlot: string | null;
  readonly securityFloor: number | null;
  readonly installed: InstalledFirmware | null;
  readonly slots: readonly SlotSummary[];
  /** Re-verification of the active slot against the trust policy; null = not checked. */
  readonly verification: {
    readonly ok: boolean;
    readonly code: string | null;
    readonly reason: string;
    readonly at: string;
    /** true: signatures and every artifact digest re-checked now; false: the record of the install-time check. */
    readonly deep: boolean;
  } | null;
  /** The active manifest's egress rules; null when no manifest is installed or it could not be read. */
  readonly egressRules: readonly EgressRule[] | null;
  readonly lastBoot: { readonly at: string; readonly outcome: string; readonly reason: string | null } | null;
  /** Why the device state could not be read, if it could not. */
  readonly error: string | null;
}

/** An undeclared flow as the page shows it: FlowEntry's fields, with the process in words. */
export type EgressFlowFacts = Pick<FlowEntry, 'direction' | 'proto' | 'src' | 'dst' | 'dport' | 'count' | 'firstSeen' | 'lastSeen' | 'rule'> & {
  /** "<exe> (pid N)", "device <mac>", or null. */
  readonly process: string | null;
};

export interface EgressFacts {
  readonly verdict: 'clean' | 'incomplete' | 'undeclared-egress';
  readonly mode: 'observe' | 'enforce' | null;
  readonly windowStart: string | null;
  readonly windowEnd: string | null;
  readonly flowsCounted: number | null;
  readonly undeclared: number;
  readonly eventsLost: number | null;
  /** Why the verdict is not clean, in words (gaps, lost events, ruleset changed). */
  readonly reasons: readonly string[];
  /** Undeclared flows, most recent first (bounded by the producer). */
  readonly undeclaredFlows: readonly EgressFlowFacts[];
}

export interface StatusFacts {
  readonly generatedAt: string;
  /** The device state directory these facts describe. */
  readonly stateDir: string;
  readonly daemonVersion: string;
  readonly identity: IdentityFacts | null;
  /** Why the identity could not be read (e.g. corrupt record), when identity is null for that reason. */
  readonly identityError: string | null;
  readonly trust: TrustFacts | null;
  readonly broker: BrokerFacts | null;
  readonly clock: ClockFacts;
  readonly firmware: FirmwareFacts | null;
  readonly health: HealthPayload | null;
  readonly egress: EgressFacts | null;
  /** Was the daemon reachable (its local API answered)? */
  readonly daemon: { readonly running: boolean; readonly detail: string | null };
}

export interface StatusView extends StatusFacts {
  readonly checks: readonly StatusCheck[];
  /** Worst state over the checks. */
  readonly overall: CheckState;
}
