/**
 * Certificate chain rules of bundle-v1 section 3. Pure: the PEM, the trust
 * anchors and the verification time come in; nothing is read from outside.
 *
 * The PEM is leaf first, then intermediates, in issuing order, never the
 * root. A chain is accepted when ALL of these hold (every fault is reported,
 * not only the first):
 *
 *  - the PEM holds 1..8 CERTIFICATE blocks, at most 64 KiB, and nothing else
 *    but whitespace; every block is one DER certificate with no trailing bytes;
 *  - no certificate in the PEM is self-signed. A root in the PEM is REJECTED,
 *    not ignored: the format says "never the root", and a producer that ships
 *    one has a bug worth surfacing; ignoring it would also hide a self-signed
 *    leaf dressed up as a root;
 *  - each certificate is issued by the next one (name and key identifier
 *    linkage via X509Certificate.checkIssued, signature via verify), and the
 *    last one by a root of the policy;
 *  - every certificate in the path, root included, is within its validity
 *    period at `at` (notBefore <= at < notAfter, as OpenSSL judges it) and is
 *    not revoked by certificate sha256 nor by SPKI sha256;
 *  - every issuer (intermediates and root) has basicConstraints CA:TRUE
 *    (critical), a keyUsage with keyCertSign, a subjectKeyIdentifier, respects
 *    its pathLenConstraint (number of intermediates below it), has an accepted
 *    key (ECDSA P-256/P-384, RSA >= 3072 e=65537) and, when it carries an
 *    extendedKeyUsage, that EKU allows the purpose (or anyExtendedKeyUsage);
 *  - the leaf is not a CA, has no pathLenConstraint and no keyCertSign, has
 *    the purpose's EKU (codeSigning / clientAuth) and, when it carries a
 *    keyUsage, that includes digitalSignature;
 *  - every certificate below the root carries an authorityKeyIdentifier, is
 *    signed with SHA-256/384/512, and has a non-empty subject and issuer;
 *  - no critical extension other than basicConstraints, keyUsage,
 *    extendedKeyUsage and subjectAltName, and no duplicated extension.
 *
 * The structural rules (critical basicConstraints, keyUsage present on a CA,
 * key identifiers, non-empty names) are those of `openssl verify -x509_strict`,
 * the by-hand check of section 6: a chain the device accepts must also pass
 * the buyer's stock-tool check.
 */
import { X509Certificate } from 'node:crypto';
import { x509 } from '../pki/x509.js';
import { acceptKey, describeKey } from './algorithms.js';
import { certSha256, spkiSha256 } from './fingerprint.js';
import type { KeyPurpose, TrustAnchors } from './types.js';

export const EKU_OID: Readonly<Record<KeyPurpose, string>> = {
  codeSigning: '1.3.6.1.5.5.7.3.3',
  clientAuth: '1.3.6.1.5.5.7.3.2',
};
const ANY_EKU_OID = '2.5.29.37.0';

const OID = {
  basicConstraints: '2.5.29.19',
  keyUsage: '2.5.29.15',
  extKeyUsage: '2.5.29.37',
  subjectAltName: '2.5.29.17',
  subjectKeyIdentifier: '2.5.29.14',
  authorityKeyIdentifier: '2.5.29.35',
} as const;
const CRITICAL_ALLOWED = new Set<string>([OID.basicConstraints, OID.keyUsage, OID.extKeyUsage, OID.subjectAltName]);
const CERT_SIGNATURE_HASHES = new Set(['SHA-256', 'SHA-384', 'SHA-512']);

export interface ChainLimits {
  readonly maxCerts: number;
  readonly maxBytes: number;
}
export const DEFAULT_CHAIN_LIMITS: ChainLimits = { maxCerts: 8, maxBytes: 64 * 1024 };

export type ChainResult =
  | {
      readonly ok: true;
      readonly leaf: X509Certificate;
      /** Leaf, intermediates, then the policy root. */
      readonly path: readonly X509Certificate[];
      readonly spkiSha256: string;
      readonly subject: string;
    }
  | {
      readonly ok: false;
      /** Every fault, joined with "; ". */
      readonly reason: string;
      readonly reasons: readonly string[];
      /** Leaf subject and key fingerprint when the leaf could be parsed. */
      readonly subject?: string;
      readonly spkiSha256?: string;
    };

/** One parsed certificate: node's view (verification, fingerprints) and the library's (extension fields). */
interface Parsed {
  readonly node: X509Certificate;
  readonly lib: x509.X509Certificate;
  readonly label: string;
  readonly spkiSha256: string;
  readonly certSha256: string;
}

const BEGIN_LINE = /^-----BEGIN ([A-Z0-9 ]{1,40})-----$/;
const END_LINE = /^-----END ([A-Z0-9 ]{1,40})-----$/;
const BASE64_LINE = /^[A-Za-z0-9+/=]+$/;

/**
 * Splits a PEM text into DER certificates, strictly: only CERTIFICATE blocks
 * and blank lines; base64 bodies must be clean. One pass over the lines
 * (linear in the input, whatever it holds). Returns faults, never throws.
 */
export function splitPemCertificates(text: string, limits: ChainLimits = DEFAULT_CHAIN_LIMITS): { ders: Buffer[]; faults: string[] } {
  const ders: Buffer[] = [];
  const faults: string[] = [];
  let block: { type: string; body: string[]; clean: boolean } | null = null;
  let outside = false;
  for (const rawLine of text.split('\n')) {
    const line = rawLine.endsWith('\r') ? rawLine.slice(0, -1) : rawLine;
    if (block === null) {
      const begin = BEGIN_LINE.exec(line);
      if (begin) block = { type: begin[1] as string, body: [], clean: true };
      else if (line.trim() !== '') outside = true;
      continue;
    }
    const end = END_LINE.exec(line);
    if (end) {
      const n = ders.length + 1;
      const b64 = block.body.join('');
      if (end[1] !== block.type) faults.push(`PEM block #${n}: BEGIN ${block.type} does not match END ${end[1]}`);
      else if (block.type !== 'CERTIFICATE') faults.push(`PEM holds a ${block.type} block; only CERTIFICATE blocks are allowed`);
      else if (!block.clean || b64.length === 0 || b64.length % 4 !== 0 || !/^[A-Za-z0-9+/]+={0,2}$/.test(b64)) faults.push(`PEM block #${n} is not clean base64`);
      else ders.push(Buffer.from(b64, 'base64'));
      block = null;
      if (ders.length > limits.maxCerts) return { ders: [], faults: [`PEM holds more than ${limits.maxCerts} certificates`] };
      continue;
    }
    if (BEGIN_LINE.test(line)) {
      faults.push(`PEM block #${ders.length + 1}: BEGIN ${block.type} is not closed before the next BEGIN`);
      block = { type: (BEGIN_LINE.exec(line) as RegExpExecArray)[1] as string, body: [], clean: true };
      continue;
    }
    if (!BASE64_LINE.test(line)) block.clean = false;
    block.body.push(line);
  }
  if (block !== null) faults.push(`PEM block #${ders.length + 1}: BEGIN ${block.type} has no END line`);
  if (outside) faults.push('PEM holds text outside CERTIFICATE blocks');
  if (ders.length === 0 && faults.length === 0) faults.push('PEM holds no certificate');
  return { ders, faults };
}

function parseCert(der: Buffer, label: string): Parsed | string {
  let node: X509Certificate;
  try {
    node = new X509Certificate(der);
  } catch {
    return `${label} is not a parsable X.509 certificate`;
  }
  if (node.raw.length !== der.length) return `${label} has trailing bytes after the certificate`;
  let lib: x509.X509Certificate;
  try {
    lib = new x509.X509Certificate(der);
    // Touch the fields the rules read so that a library parse failure shows here.
    void lib.extensions;
    void lib.notBefore;
    void lib.notAfter;
  } catch {
    return `${label} is not a parsable X.509 certificate`;
  }
  const name = `${label} "${lib.subject}"`;
  let keyHash: string;
  try {
    keyHash = spkiSha256(node);
  } catch {
    return `${name} has a public key node:crypto cannot read`;
  }
  return { node, lib, label: name, spkiSha256: keyHash, certSha256: certSha256(node) };
}

/** Roots are parsed once per certificate object (anchors are immutable). */
const rootCache = new WeakMap<X509Certificate, Parsed | null>();
function parsedRoot(r: X509Certificate): Parsed | undefined {
  let p = rootCache.get(r);
  if (p === undefined) {
    const parsed = parseCert(r.raw, 'root');
    p = typeof parsed === 'string' ? null : parsed;
    rootCache.set(r, p);
  }
  return p ?? undefined;
}

function isSelfSigned(c: X509Certificate): boolean {
  try {
    return c.checkIssued(c) && c.verify(c.publicKey);
  } catch {
    return false;
  }
}

function signedBy(child: X509Certificate, issuer: X509Certificate): 'ok' | 'link' | 'signature' {
  try {
    if (!child.checkIssued(issuer)) return 'link';
    return child.verify(issuer.publicKey) ? 'ok' : 'signature';
  } catch {
    return 'signature';
  }
}

interface Ext {
  readonly bc: x509.BasicConstraintsExtension | null;
  readonly ku: x509.KeyUsagesExtension | null;
  readonly eku: x509.ExtendedKeyUsageExtension | null;
  readonly ski: boolean;
  readonly aki: boolean;
}

/** Reads the extensions the rules need; pushes faults about their shape. */
function readExtensions(c: Parsed, faults: string[]): Ext {
  const seen = new Set<string>();
  let bc: x509.BasicConstraintsExtension | null = null;
  let ku: x509.KeyUsagesExtension | null = null;
  let eku: x509.ExtendedKeyUsageExtension | null = null;
  let ski = false;
  let aki = false;
  for (const ext of c.lib.extensions) {
    if (seen.has(ext.type)) faults.push(`${c.label} repeats extension ${ext.type}`);
    seen.add(ext.type);
    if (ext.critical && !CRITICAL_ALLOWED.has(ext.type)) faults.push(`${c.label} has critical extension ${ext.type}, which glassbox does not process`);
    // The library's extension factory already decoded the known types (a
    // malformed known extension makes the certificate unparsable in parseCert).
    if (ext instanceof x509.BasicConstraintsExtension) bc = ext;
    else if (ext instanceof x509.KeyUsagesExtension) ku = ext;
    else if (ext instanceof x509.ExtendedKeyUsageExtension) eku = ext;
    else if (ext instanceof x509.SubjectKeyIdentifierExtension) ski = true;
    else if (ext instanceof x509.AuthorityKeyIdentifierExtension) aki = ext.keyId !== undefined;
    else if ([OID.basicConstraints, OID.keyUsage, OID.extKeyUsage, OID.subjectKeyIdentifier, OID.authorityKeyIdentifier].includes(ext.type as never)) {
      faults.push(`${c.label} has a malformed extension ${ext.type}`);
    }
  }
  return { bc, ku, eku, ski, aki };
}

function ekuOids(eku: x509.ExtendedKeyUsageExtension): string[] {
  return eku.usages.map((u) => String(u));
}

function hasKeyUsage(ku: x509.KeyUsagesExtension, flag: x509.KeyUsageFlags): boolean {
  return (ku.usages & flag) !== 0;
}

/** Rules every certificate of the path obeys: time, revocation, names, extension shape. */
function checkCommon(c: Parsed, anchors: TrustAnchors, at: Date, faults: string[]): void {
  const notBefore = c.lib.notBefore;
  const notAfter = c.lib.notAfter;
  if (at.getTime() < notBefore.getTime()) faults.push(`${c.label} is not yet valid (notBefore ${notBefore.toISOString()})`);
  // Valid on [notBefore, notAfter): OpenSSL counts the notAfter second itself as expired
  // (RFC 5280 says inclusive). We follow the stock-tool check of section 6 so
  // that the device and a buyer's `openssl verify -attime` never disagree.
  if (at.getTime() >= notAfter.getTime()) faults.push(`${c.label} has expired (notAfter ${notAfter.toISOString()})`);
  if (anchors.policy.revoked.certificates.includes(c.certSha256)) faults.push(`${c.label} is revoked (certificate sha256 ${c.certSha256})`);
  if (anchors.policy.revoked.keys.includes(c.spkiSha256)) faults.push(`${c.label} is revoked (key SPKI sha256 ${c.spkiSha256})`);
  if (c.lib.subjectName.toJSON().length === 0) faults.push(`${c.label} has an empty subject`);
  if (c.lib.issuerName.toJSON().length === 0) faults.push(`${c.label} has an empty issuer`);
}

/** Rules for a certificate that issues the one below it (intermediate or root). */
function checkIssuer(c: Parsed, ext: Ext, below: number, purpose: KeyPurpose, faults: string[]): void {
  if (!ext.bc || !ext.bc.ca) {
    faults.push(`${c.label} issues a certificate but is not a CA (basicConstraints CA:TRUE missing)`);
  } else {
    if (!ext.bc.critical) faults.push(`${c.label} is a CA whose basicConstraints is not critical`);
    if (ext.bc.pathLength !== undefined && below > ext.bc.pathLength) {
      faults.push(`${c.label} has pathLenConstraint ${ext.bc.pathLength} but ${below} intermediate CA(s) below it`);
    }
  }
  if (!ext.ku) faults.push(`${c.label} is a CA without keyUsage`);
  else if (!hasKeyUsage(ext.ku, x509.KeyUsageFlags.keyCertSign)) faults.push(`${c.label} is a CA whose keyUsage lacks keyCertSign`);
  if (!ext.ski) faults.push(`${c.label} is a CA without subjectKeyIdentifier`);
  if (ext.eku) {
    const oids = ekuOids(ext.eku);
    if (!oids.includes(EKU_OID[purpose]) && !oids.includes(ANY_EKU_OID)) {
      faults.push(`${c.label} restricts extendedKeyUsage to ${oids.join(', ')}, which excludes ${purpose}`);
    }
  }
  const publicKey = c.node.publicKey;
  if (!acceptKey(publicKey).ok) faults.push(`${c.label} has a ${describeKey(publicKey)} key, not accepted for a CA`);
}

/** Rules for the leaf. */
function checkLeaf(c: Parsed, ext: Ext, purpose: KeyPurpose, faults: string[]): void {
  if (ext.bc?.ca) faults.push(`${c.label} is a CA (basicConstraints CA:TRUE) used as a leaf`);
  else if (ext.bc?.pathLength !== undefined) faults.push(`${c.label} is not a CA but has a pathLenConstraint`);
  if (!ext.eku) faults.push(`${c.label} has no extendedKeyUsage (needs ${purpose} ${EKU_OID[purpose]})`);
  else if (!ekuOids(ext.eku).includes(EKU_OID[purpose])) faults.push(`${c.label} extendedKeyUsage lacks ${purpose} (${EKU_OID[purpose]})`);
  if (ext.ku) {
    if (!hasKeyUsage(ext.ku, x509.KeyUsageFlags.digitalSignature)) faults.push(`${c.label} keyUsage lacks digitalSignature`);
    if (!ext.bc?.ca && hasKeyUsage(ext.ku, x509.KeyUsageFlags.keyCertSign)) faults.push(`${c.label} is not a CA but its keyUsage has keyCertSign`);
  }
}

/** Rules for every certificate below the root: it was signed by someone, with an accepted hash. */
function checkIssued(c: Parsed, ext: Ext, faults: string[]): void {
  if (!ext.aki) faults.push(`${c.label} has no authorityKeyIdentifier key id`);
  let hash: string | undefined;
  let name = 'unknown';
  try {
    // HashedAlgorithm's base type is the DOM Algorithm, absent from our lib set.
    const alg = c.lib.signatureAlgorithm as unknown as { name?: string; hash?: { name?: string } };
    name = alg.name ?? 'unknown';
    hash = alg.hash?.name;
  } catch {
    // unknown algorithm identifier: hash stays undefined
  }
  if (hash === undefined || !CERT_SIGNATURE_HASHES.has(hash)) {
    faults.push(`${c.label} is signed with ${name}${hash ? `/${hash}` : ''}, not SHA-256/384/512`);
  }
}

function label(i: number, n: number): string {
  if (i === 0) return 'leaf';
  return `certificate #${i + 1} (intermediate${i === n - 1 ? ', last in PEM' : ''})`;
}

/**
 * Judges a signer's chain against the trust anchors at time `at` for a
 * purpose. Never throws on hostile input; every fault is in `reasons`.
 */
export function validateChain(
  chainPem: Buffer | string,
  anchors: TrustAnchors,
  at: Date,
  purpose: KeyPurpose,
  limits: ChainLimits = DEFAULT_CHAIN_LIMITS,
): ChainResult {
  try {
    return judgeChain(chainPem, anchors, at, purpose, limits);
  } catch (err) {
    // Last line of defence: hostile input must end as a refusal, never as an exception.
    const why = `chain could not be judged: ${err instanceof Error ? err.message : String(err)}`;
    return { ok: false, reason: why, reasons: [why] };
  }
}

function judgeChain(chainPem: Buffer | string, anchors: TrustAnchors, at: Date, purpose: KeyPurpose, limits: ChainLimits): ChainResult {
  const fail = (reasons: string[], leaf?: Parsed): ChainResult => ({
    ok: false,
    reason: reasons.join('; '),
    reasons,
    ...(leaf ? { subject: leaf.lib.subject, spkiSha256: leaf.spkiSha256 } : {}),
  });
  if (Number.isNaN(at.getTime())) return fail(['verification time is not a valid date']);
  const size = typeof chainPem === 'string' ? Buffer.byteLength(chainPem, 'utf8') : chainPem.length;
  if (size > limits.maxBytes) return fail([`chain PEM is ${size} bytes, over the ${limits.maxBytes}-byte limit`]);
  const text = typeof chainPem === 'string' ? chainPem : chainPem.toString('latin1');
  if (/[^\x09\x0a\x0d\x20-\x7e]/.test(text)) return fail(['chain PEM holds bytes that are not printable ASCII']);

  const split = splitPemCertificates(text, limits);
  const faults: string[] = [...split.faults];
  const certs: Parsed[] = [];
  let parsedLeaf: Parsed | undefined;
  split.ders.forEach((der, i) => {
    const p = parseCert(der, label(i, split.ders.length));
    if (typeof p === 'string') faults.push(p);
    else certs.push(p);
    if (i === 0 && typeof p !== 'string') parsedLeaf = p;
  });
  if (certs.length !== split.ders.length || !parsedLeaf) return fail(faults, parsedLeaf);
  const leaf: Parsed = parsedLeaf;

  // Roots, and self-signed certificates of any kind, do not belong in the PEM.
  for (const c of certs) {
    if (anchors.roots.some((r) => r.raw.equals(c.node.raw))) faults.push(`${c.label} is a policy root: the chain must not include the root`);
    else if (isSelfSigned(c.node)) faults.push(`${c.label} is self-signed: the chain must not include a root`);
  }

  // Linkage inside the PEM, then to a policy root.
  for (let i = 0; i + 1 < certs.length; i++) {
    const child = certs[i] as Parsed;
    const parent = certs[i + 1] as Parsed;
    const link = signedBy(child.node, parent.node);
    if (link === 'link') faults.push(`${child.label} was not issued by ${parent.label} (names, key identifiers or issuer keyUsage do not match)`);
    if (link === 'signature') faults.push(`${child.label}: signature by ${parent.label} does not verify`);
  }
  const last = certs[certs.length - 1] as Parsed;
  let root: Parsed | undefined;
  const links = anchors.roots.map((r) => ({ r, link: signedBy(last.node, r) }));
  const linked = links.filter((l) => l.link !== 'link').map((l) => l.r);
  const issuing = links.find((l) => l.link === 'ok');
  if (issuing) root = parsedRoot(issuing.r);
  if (!root) {
    faults.push(
      linked.length > 0
        ? `${last.label}: signature by the policy root "${linked[0]?.subject.replace(/\n/g, ', ')}" does not verify`
        : `${last.label} was not issued by any policy root (issuer "${last.lib.issuer}"): chain does not build to a trusted root`,
    );
  }

  // Per-certificate rules over the whole path, root included when found.
  const path = root ? [...certs, root] : certs;
  path.forEach((c, i) => {
    checkCommon(c, anchors, at, faults);
    const ext = readExtensions(c, faults);
    if (i === 0) checkLeaf(c, ext, purpose, faults);
    else checkIssuer(c, ext, i - 1, purpose, faults);
    if (c !== root) checkIssued(c, ext, faults);
  });

  if (faults.length > 0 || !root) return fail(faults, leaf);
  return {
    ok: true,
    leaf: leaf.node,
    path: path.map((c) => c.node),
    spkiSha256: leaf.spkiSha256,
    subject: leaf.lib.subject,
  };
}
