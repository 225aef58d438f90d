/**
 * Loading the device trust policy (bundle-v1 section 3). Pure: bytes in,
 * TrustAnchors out, or GlassboxError TRUST_POLICY_INVALID naming the problem.
 * There is no "no policy" mode: missing or empty trust material is an error,
 * never a skipped check.
 *
 * Beyond the canonical form and the schema, each root must be exactly one
 * self-signed CA certificate (basicConstraints CA:TRUE, self-signature
 * verifies) with an accepted key (ECDSA P-256/P-384, RSA >= 3072 e=65537).
 * Root validity periods are not judged here: they are judged against the
 * verification time with every chain.
 */
import { X509Certificate } from 'node:crypto';
import { GlassboxError } from '../errors.js';
import { checkCanonical } from '../manifest/canonical.js';
import { validateTrustPolicy } from '../manifest/schema.js';
import { x509 } from '../pki/x509.js';
import { acceptKey } from './algorithms.js';
import { sha256Hex } from './fingerprint.js';
import type { TrustAnchors, TrustPolicy } from './types.js';

/** A trust policy file is small: 16 roots of ≤ 16 KiB and 2 × 4096 hashes fit well under this. */
export const TRUST_POLICY_MAX_BYTES = 1024 * 1024;

export const TRUST_POLICY_INVALID = 'TRUST_POLICY_INVALID';

function invalid(message: string, cause?: unknown): GlassboxError {
  return new GlassboxError(TRUST_POLICY_INVALID, `trust policy invalid: ${message}`, cause === undefined ? {} : { cause });
}

/** Parses and checks one root entry; returns the certificate or a fault. */
function parseRoot(pem: string, n: number): X509Certificate | string {
  const where = `roots[${n}]`;
  const blocks = pem.match(/-----BEGIN CERTIFICATE-----/g)?.length ?? 0;
  if (blocks !== 1) return `${where} must hold exactly one certificate, found ${blocks}`;
  let cert: X509Certificate;
  let lib: x509.X509Certificate;
  try {
    cert = new X509Certificate(pem);
    lib = new x509.X509Certificate(cert.raw);
  } catch {
    return `${where} is not a parsable X.509 certificate`;
  }
  const name = `${where} "${lib.subject}"`;
  const faults: string[] = [];
  let selfSigned = false;
  try {
    selfSigned = cert.checkIssued(cert) && cert.verify(cert.publicKey);
  } catch {
    selfSigned = false;
  }
  if (!selfSigned) faults.push('is not self-signed (a root must be)');
  let isCa = false;
  try {
    isCa = lib.getExtension(x509.BasicConstraintsExtension)?.ca === true;
  } catch {
    isCa = false;
  }
  if (!isCa) faults.push('is not a CA (basicConstraints CA:TRUE missing)');
  const key = acceptKey(cert.publicKey);
  if (!key.ok) faults.push(`has a key that is not accepted: ${key.reason}`);
  return faults.length === 0 ? cert : `${name} ${faults.join(', ')}`;
}

/**
 * Reads a trust policy file: canonical JSON (RFC 8785), the trust-policy
 * JSON Schema, then the roots. `sha256` is the digest of the exact bytes.
 */
export function loadTrustAnchors(bytes: Buffer): TrustAnchors {
  if (bytes.length === 0) throw invalid('the file is empty');
  if (bytes.length > TRUST_POLICY_MAX_BYTES) throw invalid(`${bytes.length} bytes, over the ${TRUST_POLICY_MAX_BYTES}-byte limit`);
  const canonical = checkCanonical(bytes);
  if (!canonical.ok) throw invalid(`not canonical JSON: ${canonical.reason}`);
  const schema = validateTrustPolicy(canonical.value);
  if (!schema.ok) throw invalid(schema.errors.join('; '));
  const policy: TrustPolicy = schema.policy;

  const parsed: Array<{ n: number; cert: X509Certificate }> = [];
  const faults: string[] = [];
  policy.roots.forEach((pem, n) => {
    const r = parseRoot(pem, n);
    if (typeof r === 'string') faults.push(r);
    else parsed.push({ n, cert: r });
  });
  // Two PEM spellings of the same certificate would pass uniqueItems; compare DER.
  for (const [i, a] of parsed.entries()) {
    for (const b of parsed.slice(i + 1)) {
      if (a.cert.raw.equals(b.cert.raw)) faults.push(`roots[${a.n}] and roots[${b.n}] are the same certificate`);
    }
  }
  const roots = parsed.map((p) => p.cert);
  if (faults.length > 0) throw invalid(faults.join('; '));
  if (roots.length === 0) throw invalid('no root certificate');

  return Object.freeze({ policy: deepFreeze(policy), roots: Object.freeze(roots), sha256: sha256Hex(bytes) });
}

function deepFreeze<T>(value: T): T {
  if (value !== null && typeof value === 'object') {
    for (const v of Object.values(value)) deepFreeze(v);
    Object.freeze(value);
  }
  return value;
}
