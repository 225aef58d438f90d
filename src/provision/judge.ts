/**
 * Judging a device certificate brought to the recorder. Pure: the
 * certificate and chain bytes, the recorder's key fingerprint and device id,
 * the trust anchors and the time come in; a verdict (or a ProvisionError
 * naming the fix) comes out.
 *
 * The checks a technician is most likely to trip over are made first and
 * one at a time, so the error names the actual mistake: another key,
 * another device id, a clock off, an expired certificate, another CA. Then
 * the full chain rules (trust/chain.ts, purpose clientAuth) run, and any
 * remaining fault (EKU, CA flag, revocation …) is CERT_USAGE.
 */
import { X509Certificate } from 'node:crypto';
import { deviceIdOf } from '../pki/certs.js';
import { x509 } from '../pki/x509.js';
import { splitPemCertificates, validateChain } from '../trust/chain.js';
import { certSha256, spkiSha256 } from '../trust/fingerprint.js';
import type { TrustAnchors } from '../trust/types.js';
import { ProvisionError } from './errors.js';

export interface CertificateToJudge {
  /** The certificate file (the leaf; further certificates in it are treated as chain). */
  readonly certPem: Buffer;
  /** The device CA chain file: intermediates, leaf excluded. A policy root in it is dropped. */
  readonly chainPem: Buffer;
  readonly anchors: TrustAnchors;
  /** sha256 of the recorder's identity key SPKI. */
  readonly keySpkiSha256: string;
  readonly deviceId: string;
  readonly hardware: string;
  readonly now: Date;
  /** Names of the files, for messages. */
  readonly files: { readonly cert: string; readonly chain: string; readonly trust: string };
}

export interface JudgedCertificate {
  readonly leaf: X509Certificate;
  readonly leafPem: string;
  /** Intermediates above the leaf, PEM, issuing order, no root. */
  readonly chainPem: string;
  readonly sha256: string;
  readonly serial: string;
  readonly subject: string;
  readonly issuer: string;
  readonly notBefore: Date;
  readonly notAfter: Date;
  /** Subjects from the leaf to the root. */
  readonly path: readonly string[];
}

const HOUR = 3600_000;

/** "3 hours", "40 minutes", "12 days": how far apart two times are, for a person. */
export function describeGap(ms: number): string {
  const a = Math.abs(ms);
  if (a >= 72 * HOUR) return `${Math.round(a / (24 * HOUR))} days`;
  if (a >= 2 * HOUR) return `${Math.round(a / HOUR)} hours`;
  return `${Math.max(1, Math.round(a / 60_000))} minutes`;
}

/** notBefore / notAfter as Dates (read by the x509 library: node 20's strings are locale-shaped). */
export function validityOf(c: X509Certificate): { notBefore: Date; notAfter: Date } {
  const lib = new x509.X509Certificate(c.raw);
  return { notBefore: lib.notBefore, notAfter: lib.notAfter };
}

function oneLine(name: string): string {
  return name.replace(/\n/g, ', ');
}

function toPem(c: X509Certificate): string {
  return c.toString().trimEnd() + '\n';
}

function parseAll(bytes: Buffer, what: string, file: string, fix: string, allowEmpty = false): X509Certificate[] {
  if (allowEmpty && bytes.toString('latin1').trim() === '') return [];
  const { ders, faults } = splitPemCertificates(bytes.toString('latin1'));
  if (faults.length > 0) throw new ProvisionError('CERT_INVALID', `${what} ${file} is not PEM certificates: ${faults.join('; ')}`, fix);
  return ders.map((der, i) => {
    try {
      return new X509Certificate(der);
    } catch (err) {
      throw new ProvisionError('CERT_INVALID', `${what} ${file}: certificate #${i + 1} cannot be parsed`, fix, { cause: err });
    }
  });
}

function isSelfSigned(c: X509Certificate): boolean {
  try {
    return c.checkIssued(c) && c.verify(c.publicKey);
  } catch {
    return false;
  }
}

function issues(issuer: X509Certificate, child: X509Certificate): boolean {
  try {
    return child.checkIssued(issuer) && child.verify(issuer.publicKey);
  } catch {
    return false;
  }
}

export function judgeCertificate(input: CertificateToJudge): JudgedCertificate {
  const { files, now, anchors } = input;
  const certFix = 'bring the certificate file written by `glassbox ca issue-device --out` for this recorder';
  const certs = parseAll(input.certPem, 'certificate file', files.cert, certFix);
  const leaf = certs[0];
  if (leaf === undefined) throw new ProvisionError('CERT_INVALID', `certificate file ${files.cert} holds no certificate`, certFix);
  const chainFix = "bring the device CA's certificate (device-ca.pem from ops), leaf excluded";
  const isRoot = (c: X509Certificate) => anchors.roots.some((r) => r.raw.equals(c.raw));
  // Extra certificates in the certificate file, then the chain file; policy roots and repeats dropped.
  const chain: X509Certificate[] = [];
  for (const c of [...certs.slice(1), ...parseAll(input.chainPem, 'device CA chain', files.chain, chainFix, certs.length > 1)]) {
    if (isRoot(c) || c.raw.equals(leaf.raw) || chain.some((x) => x.raw.equals(c.raw))) continue;
    chain.push(c);
  }

  // 1. The key: a certificate for another key is useless here, whatever else it says.
  const certKey = spkiSha256(leaf);
  const certId = deviceIdOf(leaf);
  if (certKey !== input.keySpkiSha256) {
    throw new ProvisionError(
      'CERT_KEY_MISMATCH',
      `the certificate is for another key (sha256 ${certKey.slice(0, 16)}…${certId !== null && certId !== input.deviceId ? `, device ${certId}` : ''}), not this recorder's key (${input.keySpkiSha256.slice(0, 16)}…)`,
      "issue a certificate from THIS recorder's CSR (identity/device.csr; `glassbox provision init` writes it again) — was the CSR from another recorder or an older init?",
    );
  }

  // 2. The name.
  const lib = new x509.X509Certificate(leaf.raw);
  if (certId !== input.deviceId) {
    throw new ProvisionError(
      'CERT_DEVICE_ID',
      `the certificate names device ${certId === null ? `"${lib.subject}" (no usable CN)` : certId}, but this recorder is ${input.deviceId}`,
      `ask ops to issue the certificate from this recorder's CSR without changing its subject (CN=${input.deviceId}), or re-run \`provision init --force --device-id\` if the recorder's id is the wrong one`,
    );
  }
  const ou = lib.subjectName.getField('OU')[0];
  if (ou !== undefined && ou !== input.hardware) {
    throw new ProvisionError(
      'CERT_DEVICE_ID',
      `the certificate names hardware model ${ou}, but this recorder is a ${input.hardware}`,
      "ask ops to issue the certificate from this recorder's CSR without changing its subject",
    );
  }

  // 3. Time, leaf first and then every CA we were given.
  for (const [i, c] of [leaf, ...chain].entries()) {
    const what = i === 0 ? 'the certificate' : `the device CA certificate "${oneLine(c.subject)}"`;
    const { notBefore: from, notAfter: to } = validityOf(c);
    if (now < from) {
      throw new ProvisionError(
        'CLOCK_SKEW',
        `this recorder's clock reads ${now.toISOString()}, ${describeGap(from.getTime() - now.getTime())} before ${what} becomes valid (${from.toISOString()}): the clock is behind`,
        'set the clock (enable NTP, or `timedatectl set-time "YYYY-MM-DD HH:MM:SS"` in UTC), then run import again',
      );
    }
    if (now > to) {
      throw new ProvisionError(
        'CERT_EXPIRED',
        `${what} expired on ${to.toISOString()} (${describeGap(now.getTime() - to.getTime())} ago by this recorder's clock, ${now.toISOString()})`,
        i === 0
          ? "ask ops for a new certificate from this recorder's CSR (`ca issue-device --allow-reissue`); if it should still be valid, this recorder's clock is ahead: fix the clock"
          : 'ask ops for the current device CA chain; if it should still be valid, fix this recorder\'s clock',
      );
    }
  }

  // 4. Who issued it: the leaf by the first CA of the chain, the chain up to a policy root.
  const first = chain[0];
  if (first === undefined || !issues(first, leaf)) {
    const named = chain.find((c) => issues(c, leaf));
    if (named === undefined) {
      throw new ProvisionError(
        'CERT_WRONG_CA',
        `the certificate was issued by "${oneLine(leaf.issuer)}", not by the device CA in ${files.chain}${first ? ` ("${oneLine(first.subject)}")` : ' (no CA certificate in it)'}`,
        'ask ops to issue it with the device CA of this fleet (the one in the trust material), or bring the matching device CA chain',
      );
    }
    // The right CA is there, only out of order: put it first.
    chain.splice(chain.indexOf(named), 1);
    chain.unshift(named);
  }
  const top = chain[chain.length - 1] as X509Certificate;
  if (!anchors.roots.some((r) => issues(r, top)) && !isSelfSigned(top)) {
    throw new ProvisionError(
      'CERT_WRONG_CA',
      `the device CA "${oneLine(top.subject)}" does not chain to any root of the trust policy ${files.trust} (sha256 ${anchors.sha256.slice(0, 16)}…; it was issued by "${oneLine(top.issuer)}")`,
      'bring the device CA chain and the trust policy from the same ops PKI (they come as a pair)',
    );
  }

  // 5. Every rule of the chain for client authentication.
  const chainPem = chain.map(toPem).join('');
  const verdict = validateChain(toPem(leaf) + chainPem, anchors, now, 'clientAuth');
  if (!verdict.ok) {
    const wrongCa = verdict.reasons.some((r) => /not issued by|does not build|does not verify|self-signed|policy root/.test(r));
    throw new ProvisionError(
      wrongCa ? 'CERT_WRONG_CA' : 'CERT_USAGE',
      `the certificate is not accepted for client authentication: ${verdict.reason}`,
      wrongCa
        ? 'bring the device CA chain and the trust policy from the same ops PKI, and a certificate issued by that device CA'
        : 'ask ops to issue it with `glassbox ca issue-device` (client authentication, not a CA, not revoked)',
    );
  }
  return {
    leaf,
    leafPem: toPem(leaf),
    chainPem,
    sha256: certSha256(leaf),
    serial: leaf.serialNumber.toLowerCase(),
    subject: oneLine(leaf.subject),
    issuer: oneLine(leaf.issuer),
    ...validityOf(leaf),
    path: verdict.path.map((c) => oneLine(c.subject)),
  };
}
