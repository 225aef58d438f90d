/**
 * The attestation document of attestation-v1 §2: an in-toto Statement v1
 * built from an egress snapshot. Pure: time, nonce and device come in.
 */
import { createHash } from 'node:crypto';
import { canonicalBytes } from '../manifest/canonical.js';
import type { EgressRule } from '../manifest/types.js';
import type { EgressSnapshot, FlowEntry, Gap, Verdict } from '../egress/types.js';

export const STATEMENT_TYPE = 'https://in-toto.io/Statement/v1';
export const PREDICATE_TYPE = 'urn:glassbox:attestation:egress:v1';
export const SUBJECT_NAME = 'firmware-manifest';
/** sha256 of zero bytes: the subject digest when no manifest is installed (the policy then says rules: null). */
export const NO_MANIFEST_SHA256 = createHash('sha256').update(Buffer.alloc(0)).digest('hex');

/** 16–128 characters of [A-Za-z0-9_-] (§4). */
export const NONCE_PATTERN = /^[A-Za-z0-9_-]{16,128}$/;

export function isValidNonce(nonce: unknown): nonce is string {
  return typeof nonce === 'string' && NONCE_PATTERN.test(nonce);
}

export interface DeviceIdentity {
  readonly id: string;
  readonly hardware: string | null;
  /** sha256 of the signing certificate's DER. */
  readonly certificateSha256: string;
}

/** A flow as the statement lists it: the FlowEntry fields, named one by one so a new FlowEntry field is not signed unnoticed. */
export type StatementFlow = Pick<
  FlowEntry,
  'direction' | 'proto' | 'src' | 'dst' | 'dport' | 'count' | 'firstSeen' | 'lastSeen' | 'rule' | 'process' | 'uids' | 'srcMac' | 'source'
>;

export interface EgressPredicate {
  readonly nonce: string;
  readonly issuedAt: string;
  readonly device: { readonly id: string; readonly hardware: string | null; readonly certificateSha256: string };
  readonly boot: { readonly bootId: string; readonly windowStart: string; readonly windowEnd: string };
  readonly firmware: { readonly version: string | null; readonly securityVersion: number | null };
  readonly policy: { readonly mode: 'observe' | 'enforce'; readonly rules: readonly EgressRule[] | null; readonly manifestInstalled: boolean };
  readonly observation: {
    readonly flowsCounted: number;
    readonly flowsRecorded: number;
    readonly eventsLost: number;
    readonly rulesetSha256: string | null;
    readonly rulesetIntact: boolean;
    readonly gaps: readonly Gap[];
    readonly gapsOmitted: number;
    readonly countersWentBackwards: boolean;
    readonly integrityEvents: readonly { readonly at: string; readonly what: string }[];
    readonly readerOverruns: number;
    readonly counters: EgressSnapshot['observation']['counters'];
    readonly undeclaredByUid: Readonly<Record<string, number>>;
  };
  readonly flows: readonly StatementFlow[];
  readonly flowsListed: { readonly cap: number; readonly omitted: number; readonly omittedFlowCount: number };
  readonly undeclared: number;
  readonly verdict: Verdict;
  readonly reasons: readonly string[];
}

export interface Statement {
  readonly _type: typeof STATEMENT_TYPE;
  readonly subject: readonly [{ readonly name: typeof SUBJECT_NAME; readonly digest: { readonly sha256: string } }];
  readonly predicateType: typeof PREDICATE_TYPE;
  readonly predicate: EgressPredicate;
}

/** The statement for a snapshot. Throws a TypeError on a bad nonce (callers check first). */
export function buildStatement(args: { snapshot: EgressSnapshot; nonce: string; issuedAt: Date; device: DeviceIdentity }): Statement {
  const { snapshot: s, nonce, device } = args;
  if (!isValidNonce(nonce)) throw new TypeError('nonce must be 16–128 characters of [A-Za-z0-9_-]');
  const o = s.observation;
  return {
    _type: STATEMENT_TYPE,
    subject: [{ name: SUBJECT_NAME, digest: { sha256: s.policy.manifestSha256 ?? NO_MANIFEST_SHA256 } }],
    predicateType: PREDICATE_TYPE,
    predicate: {
      nonce,
      issuedAt: rfc3339(args.issuedAt),
      device: { id: device.id, hardware: device.hardware, certificateSha256: device.certificateSha256 },
      boot: { bootId: s.bootId, windowStart: s.windowStart, windowEnd: s.windowEnd },
      firmware: { version: s.policy.firmwareVersion, securityVersion: s.policy.securityVersion },
      policy: { mode: s.policy.mode, rules: s.policy.rules, manifestInstalled: s.policy.rules !== null },
      observation: {
        flowsCounted: o.flowsCounted,
        flowsRecorded: o.flowsRecorded,
        eventsLost: o.eventsLost,
        rulesetSha256: o.rulesetSha256,
        rulesetIntact: o.rulesetIntact,
        gaps: o.gaps,
        gapsOmitted: o.gapsOmitted,
        countersWentBackwards: o.countersWentBackwards,
        integrityEvents: o.integrityEvents,
        readerOverruns: o.readerOverruns,
        counters: o.counters,
        undeclaredByUid: o.undeclaredByUid,
      },
      // Explicit field-by-field copy: this is the allowlist of signed flow fields.
      flows: s.flows.map((f): StatementFlow => ({
        direction: f.direction,
        proto: f.proto,
        src: f.src,
        dst: f.dst,
        dport: f.dport,
        count: f.count,
        firstSeen: f.firstSeen,
        lastSeen: f.lastSeen,
        rule: f.rule,
        process: f.process === null ? null : { pid: f.process.pid, exe: f.process.exe, sha256: f.process.sha256 },
        uids: f.uids,
        srcMac: f.srcMac,
        source: f.source,
      })),
      flowsListed: { cap: s.flowsCap, omitted: s.flowsOmitted, omittedFlowCount: s.flowsOmittedCount },
      undeclared: s.undeclared,
      verdict: s.verdict,
      reasons: s.reasons,
    },
  };
}

/** The document's bytes: canonical JSON (RFC 8785). */
export function statementBytes(statement: Statement): Buffer {
  return canonicalBytes(statement);
}

/** RFC 3339 UTC with whole seconds ("2026-06-01T12:00:00Z"). */
export function rfc3339(d: Date): string {
  return d.toISOString().replace(/\.\d{3}Z$/, 'Z');
}
