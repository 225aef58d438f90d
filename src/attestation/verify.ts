/**
 * Offline verification of an attestation envelope (attestation-v1 §3). Pure:
 * the envelope bytes, the trust anchors, the expected nonce, the time and
 * the freshness limit come in; a report with every fault comes out.
 *
 *   1. envelope shape (payloadType, one signature, strict base64, certificates)
 *   2. document: canonical JSON, in-toto Statement v1, our predicate type
 *   3. chain: device certificate chain to a policy root, for clientAuth, at `now`
 *   4. the leaf names the document's device (CN = predicate.device.id) and is the
 *      certificate the document names (certificateSha256); keyid = leaf SPKI sha256
 *   5. signature over PAE(payloadType, payload) with the leaf key
 *   6. nonce equal; issuedAt within maxAge and not in the future beyond the skew
 */
import { X509Certificate } from 'node:crypto';
import { checkCanonical } from '../manifest/canonical.js';
import { validateChain, splitPemCertificates } from '../trust/chain.js';
import { verifySignature } from '../trust/signature.js';
import { certSha256, spkiSha256 } from '../trust/fingerprint.js';
import { deviceIdOf } from '../pki/certs.js';
import type { TrustAnchors } from '../trust/types.js';
import type { Verdict } from '../egress/types.js';
import { pae, parseEnvelope, PAYLOAD_TYPE } from './dsse.js';
import { PREDICATE_TYPE, STATEMENT_TYPE, SUBJECT_NAME, type Statement, type StatementFlow } from './statement.js';

export type AttestationFailureCode =
  | 'ENVELOPE_MALFORMED'
  | 'DOCUMENT_MALFORMED'
  | 'CHAIN_UNTRUSTED'
  | 'CERTIFICATE_EXPIRED'
  | 'DEVICE_MISMATCH'
  | 'CERTIFICATE_MISMATCH'
  | 'KEYID_MISMATCH'
  | 'SIGNATURE_INVALID'
  | 'NONCE_MISMATCH'
  | 'STALE'
  | 'NOT_YET_ISSUED';

export interface AttestationFailure {
  readonly code: AttestationFailureCode;
  readonly reason: string;
}

export interface VerifyOptions {
  readonly nonce: string;
  readonly now: Date;
  /** Largest accepted age of issuedAt, in seconds. */
  readonly maxAgeSeconds: number;
  /** How far issuedAt may be ahead of `now` (clock skew), in seconds. Default 60. */
  readonly maxFutureSkewSeconds?: number;
}

export interface AttestationReport {
  /** Authentic (chain, device, signature) and fresh (nonce, issuedAt). Says nothing of the verdict. */
  readonly ok: boolean;
  /** First failure's code, or null. */
  readonly code: AttestationFailureCode | null;
  readonly reason: string;
  readonly failures: readonly AttestationFailure[];
  readonly deviceId: string | null;
  readonly issuedAt: string | null;
  /** The document's verdict (trust it only when ok). */
  readonly verdict: Verdict | null;
  readonly undeclared: number | null;
  readonly undeclaredFlows: readonly StatementFlow[];
  readonly observation: Statement['predicate']['observation'] | null;
  readonly signer: { readonly subject: string; readonly spkiSha256: string; readonly certificateSha256: string } | null;
  readonly statement: Statement | null;
}

const RFC3339 = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?Z$/;
const VERDICTS: readonly string[] = ['clean', 'undeclared-egress', 'incomplete'];

function documentFaults(v: unknown): string[] {
  const f: string[] = [];
  if (typeof v !== 'object' || v === null) return ['document is not a JSON object'];
  const s = v as Record<string, unknown>;
  if (s['_type'] !== STATEMENT_TYPE) f.push(`_type is not ${STATEMENT_TYPE}`);
  if (s['predicateType'] !== PREDICATE_TYPE) f.push(`predicateType is not ${PREDICATE_TYPE}`);
  const subj = s['subject'];
  const first = Array.isArray(subj) && subj.length === 1 ? (subj[0] as Record<string, unknown>) : null;
  const digest = first?.['digest'] as Record<string, unknown> | undefined;
  if (!first || first['name'] !== SUBJECT_NAME || typeof digest?.['sha256'] !== 'string' || !/^[0-9a-f]{64}$/.test(digest['sha256'] as string)) {
    f.push(`subject must be one {"name": "${SUBJECT_NAME}", "digest": {"sha256": <hex>}}`);
  }
  const p = s['predicate'] as Record<string, unknown> | undefined;
  if (typeof p !== 'object' || p === null) return [...f, 'predicate is missing'];
  if (typeof p['nonce'] !== 'string') f.push('predicate.nonce is not a string');
  if (typeof p['issuedAt'] !== 'string' || !RFC3339.test(p['issuedAt'] as string) || Number.isNaN(Date.parse(p['issuedAt'] as string))) f.push('predicate.issuedAt is not an RFC 3339 UTC time');
  const dev = p['device'] as Record<string, unknown> | undefined;
  if (typeof dev?.['id'] !== 'string' || typeof dev['certificateSha256'] !== 'string') f.push('predicate.device needs id and certificateSha256');
  if (!VERDICTS.includes(p['verdict'] as string)) f.push('predicate.verdict is not clean, undeclared-egress or incomplete');
  if (!Array.isArray(p['flows'])) f.push('predicate.flows is not an array');
  if (typeof p['undeclared'] !== 'number') f.push('predicate.undeclared is not a number');
  const obs = p['observation'] as Record<string, unknown> | undefined;
  if (typeof obs !== 'object' || obs === null || typeof obs['flowsCounted'] !== 'number' || typeof obs['eventsLost'] !== 'number' || typeof obs['rulesetIntact'] !== 'boolean') {
    f.push('predicate.observation needs flowsCounted, eventsLost and rulesetIntact');
  }
  return f;
}

export function verifyAttestation(envelopeBytes: Buffer, anchors: TrustAnchors, opts: VerifyOptions): AttestationReport {
  const failures: AttestationFailure[] = [];
  const fail = (code: AttestationFailureCode, reason: string) => failures.push({ code, reason });
  const report = (statement: Statement | null, signer: AttestationReport['signer']): AttestationReport => {
    const p = statement?.predicate;
    const first = failures[0];
    return {
      ok: failures.length === 0,
      code: first?.code ?? null,
      reason: failures.length === 0 ? 'authentic and fresh' : failures.map((x) => x.reason).join('; '),
      failures,
      deviceId: p?.device.id ?? null,
      issuedAt: p?.issuedAt ?? null,
      verdict: p?.verdict ?? null,
      undeclared: p?.undeclared ?? null,
      undeclaredFlows: (p?.flows ?? []).filter((fl) => fl.rule === null),
      observation: p?.observation ?? null,
      signer,
      statement,
    };
  };

  const env = parseEnvelope(envelopeBytes);
  if (!env.ok) {
    for (const r of env.reasons) fail('ENVELOPE_MALFORMED', r);
    return report(null, null);
  }

  // 2. the document
  let statement: Statement | null = null;
  const canon = checkCanonical(env.payload);
  if (!canon.ok) fail('DOCUMENT_MALFORMED', `payload: ${canon.reason}`);
  else {
    const faults = documentFaults(canon.value);
    for (const r of faults) fail('DOCUMENT_MALFORMED', r);
    if (faults.length === 0) statement = canon.value as Statement;
  }

  // 3. the chain
  let leaf: X509Certificate | null = null;
  const chain = validateChain(env.envelope.certificates, anchors, opts.now, 'clientAuth');
  if (chain.ok) leaf = chain.leaf;
  else {
    const first = splitPemCertificates(env.envelope.certificates).ders[0];
    let parsed: X509Certificate | null = null;
    try {
      parsed = first ? new X509Certificate(first) : null;
    } catch {
      parsed = null;
    }
    const expired = parsed !== null && (Date.parse(parsed.validTo) < opts.now.getTime() || Date.parse(parsed.validFrom) > opts.now.getTime());
    if (expired && parsed) fail('CERTIFICATE_EXPIRED', `device certificate is not valid at ${opts.now.toISOString()} (valid ${parsed.validFrom} to ${parsed.validTo})`);
    fail('CHAIN_UNTRUSTED', `device certificate chain: ${chain.reason}`);
  }
  const signer = leaf ? { subject: leaf.subject.replace(/\n/g, ', '), spkiSha256: spkiSha256(leaf), certificateSha256: certSha256(leaf) } : null;

  // 4. leaf ↔ document, keyid
  if (leaf && statement) {
    const cn = deviceIdOf(leaf);
    if (cn !== statement.predicate.device.id) fail('DEVICE_MISMATCH', `the signing certificate names device ${JSON.stringify(cn)}, the document device ${JSON.stringify(statement.predicate.device.id)}`);
    if (signer && statement.predicate.device.certificateSha256 !== signer.certificateSha256) fail('CERTIFICATE_MISMATCH', 'the document names another signing certificate (device.certificateSha256)');
  }
  if (leaf && signer && env.envelope.signatures[0]?.keyid !== signer.spkiSha256) fail('KEYID_MISMATCH', 'signature keyid is not the sha256 of the leaf certificate\'s public key');

  // 5. the signature
  if (leaf) {
    const sig = verifySignature(leaf, pae(PAYLOAD_TYPE, env.payload), env.signature);
    if (!sig.ok) fail('SIGNATURE_INVALID', `signature over the DSSE pre-authentication encoding: ${sig.reason}`);
  }

  // 6. freshness
  if (statement) {
    const p = statement.predicate;
    if (p.nonce !== opts.nonce) fail('NONCE_MISMATCH', 'the document\'s nonce is not the one sent');
    const issued = Date.parse(p.issuedAt);
    const age = (opts.now.getTime() - issued) / 1000;
    if (age > opts.maxAgeSeconds) fail('STALE', `issued ${Math.round(age)} s ago, over the ${opts.maxAgeSeconds} s limit`);
    const skew = opts.maxFutureSkewSeconds ?? 60;
    if (-age > skew) fail('NOT_YET_ISSUED', `issuedAt is ${Math.round(-age)} s in the future (more than the ${skew} s allowed for clock skew)`);
  }
  return report(failures.length === 0 || statement ? statement : null, signer);
}
