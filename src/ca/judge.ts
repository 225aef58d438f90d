/**
 * Ops-side judgement of a device's CSR and of the CA about to sign it. Pure:
 * bytes, keys and the time come in as arguments; signatures are checked
 * through webcrypto (node:crypto underneath).
 */
import { X509Certificate, createPublicKey, type KeyObject } from 'node:crypto';
import { GlassboxError } from '../errors.js';
import { csrPublicKey, DEVICE_ID_PATTERN, parseCsr, verifyCsr } from '../pki/certs.js';
import { keyPairFromPem, type KeyPair } from '../pki/keys.js';
import { x509 } from '../pki/x509.js';
import { acceptKey, describeKey } from '../trust/algorithms.js';
import { spkiSha256 } from '../trust/fingerprint.js';
import { ProvisionError } from '../provision/errors.js';
import { validityOf } from '../provision/judge.js';

const MODEL_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._ -]{0,63}$/;
const DAY_MS = 86_400_000;

export interface JudgedCsr {
  readonly deviceId: string;
  readonly hardware: string;
  readonly publicKey: KeyObject;
  readonly spkiSha256: string;
  /** "ECDSA P-256", … */
  readonly keyDescription: string;
}

const RE_INIT = 'ask the technician for the device.csr written by `glassbox provision init` on the recorder';

/**
 * A device CSR is accepted when it parses, its self-signature verifies (the
 * requester holds the key), its subject is exactly one CN (the device id)
 * and one OU (the hardware model) plus optional O, and its key is of an
 * accepted algorithm.
 */
export async function judgeDeviceCsr(bytes: Buffer): Promise<JudgedCsr> {
  let csr: x509.Pkcs10CertificateRequest;
  try {
    csr = parseCsr(bytes);
  } catch (err) {
    const detail = err instanceof GlassboxError ? err.message : String(err);
    throw new ProvisionError('CSR_INVALID', `the file is not a certificate request: ${detail}`, RE_INIT, { cause: err });
  }
  let publicKey: KeyObject;
  try {
    publicKey = csrPublicKey(csr);
  } catch (err) {
    throw new ProvisionError('CSR_INVALID', `the request's public key cannot be read (${(err as Error).message})`, RE_INIT, { cause: err });
  }
  if (!(await verifyCsr(csr))) {
    throw new ProvisionError(
      'CSR_SIGNATURE',
      "the request's signature does not verify: it was altered after the recorder signed it, or was not signed with its key",
      'do not issue; get a fresh device.csr straight from the recorder (`glassbox provision init` re-emits it) and check how this copy was changed',
    );
  }
  const accepted = acceptKey(publicKey);
  if (!accepted.ok) {
    throw new ProvisionError('CSR_KEY_ALGORITHM', `the request's key is refused: ${accepted.reason}`, 'make the key on the recorder with `glassbox provision init --key-algorithm ecdsa-p256` (the default)');
  }
  const name = csr.subjectName;
  const cns = name.getField('CN');
  const ous = name.getField('OU');
  const allowed = new Set(['CN', 'OU', 'O']);
  const others = name
    .toJSON()
    .flatMap((rdn) => Object.keys(rdn))
    .filter((t) => !allowed.has(t));
  const subject = name.toString();
  if (cns.length !== 1 || !DEVICE_ID_PATTERN.test(cns[0] ?? '')) {
    throw new ProvisionError('CSR_SUBJECT', `the request's subject "${subject}" does not name exactly one device id (CN of 1-64 letters, digits, ".", "_", "-")`, RE_INIT);
  }
  if (ous.length !== 1 || !MODEL_PATTERN.test(ous[0] ?? '')) {
    throw new ProvisionError('CSR_SUBJECT', `the request's subject "${subject}" does not name exactly one hardware model (OU)`, RE_INIT);
  }
  if (others.length > 0) {
    throw new ProvisionError('CSR_SUBJECT', `the request's subject "${subject}" carries fields a device certificate does not take (${others.join(', ')})`, RE_INIT);
  }
  return { deviceId: cns[0]!, hardware: ous[0]!, publicKey, spkiSha256: spkiSha256(publicKey), keyDescription: describeKey(publicKey) };
}

export interface JudgedCa {
  readonly cert: X509Certificate;
  readonly pem: string;
  readonly key: KeyPair;
  readonly subject: string;
  /** Validity of the certificate to issue (notAfter clamped nowhere: refused instead). */
  readonly notBefore: Date;
  readonly notAfter: Date;
}

const CA_FIX = 'pass the device CA: --ca-cert device-ca.pem --ca-key device-ca.key (the pair ops keeps offline)';

/**
 * Checks the issuing CA: a CA certificate with keyCertSign, the key is its
 * key, it is valid now, and it outlives the certificate to be issued.
 */
export function judgeIssuingCa(certPem: Buffer, keyPem: Buffer, now: Date, days: number): JudgedCa {
  let cert: X509Certificate;
  try {
    cert = new X509Certificate(certPem);
  } catch (err) {
    throw new ProvisionError('CA_UNUSABLE', `the CA certificate is not a PEM certificate (${(err as Error).message})`, CA_FIX, { cause: err });
  }
  let key: KeyPair;
  try {
    key = keyPairFromPem(keyPem);
  } catch (err) {
    throw new ProvisionError('CA_UNUSABLE', 'the CA key is not a readable private key', CA_FIX, { cause: err });
  }
  if (!cert.ca) throw new ProvisionError('CA_UNUSABLE', `${cert.subject} is not a CA certificate (basicConstraints CA:FALSE)`, CA_FIX);
  const ku = new x509.X509Certificate(cert.raw).getExtension(x509.KeyUsagesExtension);
  if (ku && (ku.usages & x509.KeyUsageFlags.keyCertSign) === 0) {
    throw new ProvisionError('CA_UNUSABLE', `${cert.subject} may not sign certificates (keyUsage lacks keyCertSign)`, CA_FIX);
  }
  if (spkiSha256(createPublicKey(key.privateKey)) !== spkiSha256(cert)) {
    throw new ProvisionError('CA_UNUSABLE', `the CA key is not the key of ${cert.subject}`, 'pass the key that belongs to the CA certificate');
  }
  const { notBefore: caFrom, notAfter: caTo } = validityOf(cert);
  if (now < caFrom || now > caTo) {
    throw new ProvisionError('CA_UNUSABLE', `the CA certificate is not valid now (${now.toISOString()}; valid ${caFrom.toISOString()} to ${caTo.toISOString()})`, 'renew the device CA, or check this computer\'s clock');
  }
  // Backdated one hour, like every certificate the project issues: tolerates small clock drift on the recorder.
  const notBefore = new Date(Math.max(now.getTime() - 3600_000, caFrom.getTime()));
  const notAfter = new Date(now.getTime() + days * DAY_MS);
  if (notAfter > caTo) {
    const maxDays = Math.floor((caTo.getTime() - now.getTime()) / DAY_MS);
    throw new ProvisionError('CA_UNUSABLE', `a ${days}-day certificate would outlive the device CA (valid until ${caTo.toISOString()})`, `issue with --days ${maxDays} or less, or renew the device CA`);
  }
  return { cert, pem: cert.toString(), key, subject: cert.subject, notBefore, notAfter };
}
