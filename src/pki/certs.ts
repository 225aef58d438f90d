/**
 * Building certificates and CSRs with @peculiar/x509, signed through
 * webcrypto (node:crypto underneath). Used by the development PKI, by
 * provisioning and by tests that need hostile certificates.
 *
 * Shapes produced by default (they pass `openssl verify -x509_strict`):
 *   CA:     basicConstraints CA:TRUE (critical, optional pathLen),
 *           keyUsage keyCertSign + cRLSign (critical), SKI, AKI (not on a root)
 *   leaf:   basicConstraints CA:FALSE (critical), keyUsage digitalSignature
 *           (critical), extendedKeyUsage codeSigning or clientAuth, SKI, AKI
 *
 * Device identity certificates name the device in the subject:
 *   CN=<deviceId>, OU=<hardwareModel> (when given), O=<organization>
 * with extendedKeyUsage clientAuth, issued by the device CA. The device id
 * is read back with deviceIdOf(cert) (the first CN).
 */
import { createPublicKey, randomBytes, X509Certificate, type KeyObject } from 'node:crypto';
import { GlassboxError } from '../errors.js';
import { generateKey, spkiDer, webSigningKey, type CertHash, type KeyPair } from './keys.js';
import { x509 } from './x509.js';
import { EKU_OID } from '../trust/chain.js';
import type { KeyPurpose } from '../trust/types.js';

/** EKU OIDs per purpose (the same table the chain rules use). */
export const EKU_OIDS: Readonly<Record<KeyPurpose, string>> = EKU_OID;

type KeyUsageFlagsEnum = typeof x509.KeyUsageFlags;

/**
 * The keyUsage bits as @peculiar/x509 numbers them (its KeyUsageFlags enum),
 * as a plain table: reading the enum itself would load the library (≈ 75 ms)
 * in every module that imports this one, certificates used or not. The
 * `satisfies` makes the compiler check every value against the library's.
 */
export const KeyUsage = {
  digitalSignature: 1,
  nonRepudiation: 2,
  keyEncipherment: 4,
  dataEncipherment: 8,
  keyAgreement: 16,
  keyCertSign: 32,
  cRLSign: 64,
  encipherOnly: 128,
  decipherOnly: 256,
} as const satisfies { readonly [K in keyof KeyUsageFlagsEnum]: KeyUsageFlagsEnum[K] };

/** A key with its certificate. `pem` is the certificate alone. */
export interface CertifiedKey {
  readonly key: KeyPair;
  readonly cert: X509Certificate;
  readonly pem: string;
}

/** A subject name: an RFC 4514-style string ("CN=a, O=b") or attribute list ([{CN: ['a']}, {O: ['b']}]). */
export type SubjectName = string | Array<Record<string, string[]>>;

/**
 * Everything about a certificate a test may want to bend. Unset fields take
 * the defaults of the certificate kind; `null` removes an extension.
 */
export interface CertOverrides {
  readonly notBefore?: Date;
  readonly notAfter?: Date;
  readonly serialNumber?: string;
  readonly basicConstraints?: { readonly ca: boolean; readonly pathLen?: number; readonly critical?: boolean } | null;
  /** Bitmask of x509.KeyUsageFlags. */
  readonly keyUsage?: number | null;
  /** EKU OIDs. */
  readonly extendedKeyUsage?: readonly string[] | null;
  readonly subjectKeyIdentifier?: boolean;
  readonly authorityKeyIdentifier?: boolean;
  /** Hash of the certificate signature (default: SHA-256, SHA-384 for a P-384 issuer). */
  readonly signatureHash?: CertHash;
  /** Extra extensions, e.g. an unknown critical one. */
  readonly extraExtensions?: readonly x509.Extension[];
}

export interface Validity {
  /** Reference time; defaults to now. notBefore = now − 1 h, notAfter = now + the kind's lifetime. */
  readonly now?: Date;
  readonly days?: number;
}

const HOUR_MS = 3600_000;
const DAY_MS = 24 * HOUR_MS;

function validity(v: Validity, defaultDays: number, o: CertOverrides): { notBefore: Date; notAfter: Date } {
  const now = v.now ?? new Date();
  return {
    notBefore: o.notBefore ?? new Date(now.getTime() - HOUR_MS),
    notAfter: o.notAfter ?? new Date(now.getTime() + (v.days ?? defaultDays) * DAY_MS),
  };
}

/** A positive 128-bit serial number as hex (top bit clear, never zero). */
export function randomSerial(): string {
  const b = randomBytes(16);
  b[0] = ((b[0] ?? 0) & 0x7f) | 0x01;
  return b.toString('hex');
}

interface IssueParams {
  readonly subject: SubjectName;
  readonly subjectKey: KeyObject;
  /** The issuer; undefined = self-signed with `selfKey`. */
  readonly issuer?: CertifiedKey;
  readonly selfKey?: KeyPair;
  readonly notBefore: Date;
  readonly notAfter: Date;
  readonly basicConstraints: { readonly ca: boolean; readonly pathLen?: number; readonly critical?: boolean } | null;
  readonly keyUsage: number | null;
  readonly extendedKeyUsage: readonly string[] | null;
  readonly overrides: CertOverrides;
}

function toNodeCert(cert: x509.X509Certificate): CertifiedKeyCert {
  const der = Buffer.from(cert.rawData);
  return { cert: new X509Certificate(der), pem: cert.toString('pem') + '\n' };
}
type CertifiedKeyCert = { cert: X509Certificate; pem: string };
type CreateParams = x509.X509CertificateCreateWithKeyParams;
type CsrParams = x509.Pkcs10CertificateRequestCreateParams;

async function issue(p: IssueParams): Promise<CertifiedKeyCert> {
  const o = p.overrides;
  const signerPair = p.issuer?.key ?? p.selfKey;
  if (!signerPair) throw new Error('issue: neither issuer nor self key');
  const signing = await webSigningKey(signerPair, o.signatureHash);
  const subjectSpki = spkiDer(p.subjectKey);
  const issuerSpki = spkiDer(signerPair.publicKey);

  const bc = o.basicConstraints === undefined ? p.basicConstraints : o.basicConstraints;
  const ku = o.keyUsage === undefined ? p.keyUsage : o.keyUsage;
  const eku = o.extendedKeyUsage === undefined ? p.extendedKeyUsage : o.extendedKeyUsage;
  const extensions: x509.Extension[] = [];
  if (bc) extensions.push(new x509.BasicConstraintsExtension(bc.ca, bc.pathLen, bc.critical ?? true));
  if (ku !== null) extensions.push(new x509.KeyUsagesExtension(ku, true));
  if (eku !== null) extensions.push(new x509.ExtendedKeyUsageExtension([...eku], false));
  if (o.subjectKeyIdentifier ?? true) extensions.push(await x509.SubjectKeyIdentifierExtension.create(subjectSpki));
  if (o.authorityKeyIdentifier ?? p.issuer !== undefined) extensions.push(await x509.AuthorityKeyIdentifierExtension.create(issuerSpki));
  extensions.push(...(o.extraExtensions ?? []));

  const common = {
    serialNumber: o.serialNumber ?? randomSerial(),
    notBefore: p.notBefore,
    notAfter: p.notAfter,
    extensions,
    signingAlgorithm: signing.algorithm as CreateParams['signingAlgorithm'],
  };
  const cert = await x509.X509CertificateGenerator.create({
    ...common,
    subject: p.subject,
    issuer: p.issuer ? issuerName(p.issuer) : p.subject,
    publicKey: subjectSpki,
    signingKey: signing.key as CreateParams['signingKey'],
  });
  return toNodeCert(cert);
}

/** The issuer's subject Name, copied as encoded so name chaining matches byte for byte. */
function issuerName(issuer: CertifiedKey): x509.Name {
  return new x509.X509Certificate(issuer.cert.raw).subjectName;
}

export interface RootCaOptions extends Validity {
  readonly key: KeyPair;
  readonly subject?: SubjectName;
  readonly pathLen?: number;
}

/** A self-signed root CA (default 20 years). */
export async function createRootCa(opts: RootCaOptions, overrides: CertOverrides = {}): Promise<CertifiedKey> {
  const v = validity(opts, 20 * 365, overrides);
  const c = await issue({
    subject: opts.subject ?? 'CN=glassbox development root CA',
    subjectKey: opts.key.publicKey,
    selfKey: opts.key,
    ...v,
    basicConstraints: { ca: true, ...(opts.pathLen === undefined ? {} : { pathLen: opts.pathLen }) },
    keyUsage: KeyUsage.keyCertSign | KeyUsage.cRLSign,
    extendedKeyUsage: null,
    overrides,
  });
  return { key: opts.key, ...c };
}

export interface IntermediateCaOptions extends Validity {
  readonly key: KeyPair;
  readonly subject: SubjectName;
  /** pathLenConstraint; default 0 (may issue leaves only). */
  readonly pathLen?: number | null;
}

/** An intermediate CA under `issuer` (default 10 years, pathLen 0). */
export async function createIntermediateCa(issuer: CertifiedKey, opts: IntermediateCaOptions, overrides: CertOverrides = {}): Promise<CertifiedKey> {
  const v = validity(opts, 10 * 365, overrides);
  const pathLen = opts.pathLen === undefined ? 0 : opts.pathLen;
  const c = await issue({
    subject: opts.subject,
    subjectKey: opts.key.publicKey,
    issuer,
    ...v,
    basicConstraints: { ca: true, ...(pathLen === null ? {} : { pathLen }) },
    keyUsage: KeyUsage.keyCertSign | KeyUsage.cRLSign,
    extendedKeyUsage: null,
    overrides,
  });
  return { key: opts.key, ...c };
}

export interface LeafOptions extends Validity {
  readonly key: KeyPair;
  readonly subject: SubjectName;
  readonly purpose: KeyPurpose;
}

/** An end-entity certificate for code signing (release signers) or client auth (default 3 years). */
export async function createLeaf(issuer: CertifiedKey, opts: LeafOptions, overrides: CertOverrides = {}): Promise<CertifiedKey> {
  const v = validity(opts, 3 * 365, overrides);
  const c = await issue({
    subject: opts.subject,
    subjectKey: opts.key.publicKey,
    issuer,
    ...v,
    basicConstraints: { ca: false },
    keyUsage: KeyUsage.digitalSignature,
    extendedKeyUsage: [EKU_OIDS[opts.purpose]],
    overrides,
  });
  return { key: opts.key, ...c };
}

/** TLS serverAuth (RFC 5280). */
const SERVER_AUTH_OID = '1.3.6.1.5.5.7.3.1';

/**
 * A CA and a TLS server certificate (serverAuth; names localhost and
 * 127.0.0.1) for a broker listening on loopback: the test and bench
 * brokers. Both keys ECDSA P-256.
 */
export async function createLoopbackServer(caSubject: string): Promise<{ ca: CertifiedKey; server: CertifiedKey }> {
  const ca = await createRootCa({ key: await generateKey('ecdsa-p256'), subject: caSubject });
  const server = await createLeaf(
    ca,
    { key: await generateKey('ecdsa-p256'), subject: 'CN=localhost', purpose: 'clientAuth' },
    {
      extendedKeyUsage: [SERVER_AUTH_OID],
      extraExtensions: [new x509.SubjectAlternativeNameExtension([{ type: 'dns', value: 'localhost' }, { type: 'ip', value: '127.0.0.1' }])],
    },
  );
  return { ca, server };
}

/** Device ids: what goes into CN. Kept to a plain alphabet so names never need escaping. */
export const DEVICE_ID_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;
const MODEL_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._ -]{0,63}$/;

export const DEFAULT_ORGANIZATION = 'Homeland Safety Systems';

/** Subject of a device identity certificate: CN=<deviceId>, OU=<hardwareModel>, O=<organization>. */
export function deviceSubject(deviceId: string, hardwareModel?: string, organization = DEFAULT_ORGANIZATION): SubjectName {
  if (!DEVICE_ID_PATTERN.test(deviceId)) throw new GlassboxError('DEVICE_ID_INVALID', `device id ${JSON.stringify(deviceId)} does not match ${DEVICE_ID_PATTERN.source}`);
  if (hardwareModel !== undefined && !MODEL_PATTERN.test(hardwareModel)) {
    throw new GlassboxError('DEVICE_ID_INVALID', `hardware model ${JSON.stringify(hardwareModel)} does not match ${MODEL_PATTERN.source}`);
  }
  const name: Array<Record<string, string[]>> = [{ CN: [deviceId] }];
  if (hardwareModel !== undefined) name.push({ OU: [hardwareModel] });
  name.push({ O: [organization] });
  return name;
}

/** The device id (first CN) of a device certificate, or null when the subject has no usable CN. */
export function deviceIdOf(cert: X509Certificate): string | null {
  const name = new x509.X509Certificate(cert.raw).subjectName;
  const cn = name.getField('CN')[0];
  return cn !== undefined && DEVICE_ID_PATTERN.test(cn) ? cn : null;
}

export interface DeviceCertOptions extends Validity {
  readonly deviceId: string;
  readonly hardwareModel?: string;
  readonly organization?: string;
  /** The device's public key (from its CSR or its key pair). */
  readonly publicKey: KeyObject;
}

/** A device identity certificate (clientAuth) under the device CA (default 10 years). */
export async function createDeviceCert(deviceCa: CertifiedKey, opts: DeviceCertOptions, overrides: CertOverrides = {}): Promise<{ cert: X509Certificate; pem: string }> {
  const v = validity(opts, 10 * 365, overrides);
  return issue({
    subject: deviceSubject(opts.deviceId, opts.hardwareModel, opts.organization),
    subjectKey: opts.publicKey,
    issuer: deviceCa,
    ...v,
    basicConstraints: { ca: false },
    keyUsage: KeyUsage.digitalSignature,
    extendedKeyUsage: [EKU_OIDS.clientAuth],
    overrides,
  });
}

/** A PKCS #10 request signed by `key` (PEM). */
export async function createCsr(key: KeyPair, subject: SubjectName): Promise<string> {
  const signing = await webSigningKey(key);
  const publicKey = await x509.PublicKey.create(spkiDer(key.publicKey));
  const csr = await x509.Pkcs10CertificateRequestGenerator.create({
    name: subject,
    signingAlgorithm: signing.algorithm as CsrParams['signingAlgorithm'],
    keys: { privateKey: signing.key as CsrParams['keys']['privateKey'], publicKey: await publicKey.export() },
  });
  return csr.toString('pem') + '\n';
}

/** Upper bound on a CSR we agree to parse. */
export const CSR_MAX_BYTES = 16 * 1024;

/** Parses a PEM or DER CSR. Throws GlassboxError CSR_INVALID naming the problem. */
export function parseCsr(input: string | Buffer): x509.Pkcs10CertificateRequest {
  const bytes = typeof input === 'string' ? Buffer.from(input, 'utf8') : input;
  if (bytes.length > CSR_MAX_BYTES) throw new GlassboxError('CSR_INVALID', `CSR is ${bytes.length} bytes, over the ${CSR_MAX_BYTES}-byte limit`);
  const text = bytes.toString('latin1');
  try {
    if (text.includes('-----BEGIN')) {
      const m = /^\s*-----BEGIN CERTIFICATE REQUEST-----\r?\n([A-Za-z0-9+/=\r\n]+)-----END CERTIFICATE REQUEST-----\s*$/.exec(text);
      if (!m || m[1] === undefined) throw new Error('expected exactly one "CERTIFICATE REQUEST" PEM block');
      return new x509.Pkcs10CertificateRequest(Buffer.from(m[1].replace(/\s+/g, ''), 'base64'));
    }
    return new x509.Pkcs10CertificateRequest(bytes);
  } catch (err) {
    throw new GlassboxError('CSR_INVALID', `not a PKCS #10 certificate request: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
  }
}

/** Checks the CSR's self-signature (proof of possession) through webcrypto. */
export async function verifyCsr(csr: x509.Pkcs10CertificateRequest): Promise<boolean> {
  try {
    return await csr.verify();
  } catch {
    return false;
  }
}

/** The CSR's public key as a node KeyObject. */
export function csrPublicKey(csr: x509.Pkcs10CertificateRequest): KeyObject {
  return createPublicKeyFromSpki(Buffer.from(csr.publicKey.rawData));
}

function createPublicKeyFromSpki(der: Buffer): KeyObject {
  return createPublicKey({ key: der, format: 'der', type: 'spki' });
}

/**
 * Issues a device identity certificate for a CSR after checking its
 * signature. The device id comes from the caller (who authenticated the
 * device), not from the CSR's subject.
 */
export async function issueDeviceCertFromCsr(
  deviceCa: CertifiedKey,
  csrInput: string | Buffer,
  opts: Omit<DeviceCertOptions, 'publicKey'>,
  overrides: CertOverrides = {},
): Promise<{ cert: X509Certificate; pem: string }> {
  const csr = parseCsr(csrInput);
  if (!(await verifyCsr(csr))) throw new GlassboxError('CSR_INVALID', 'CSR signature does not verify (no proof of possession of the key)');
  return createDeviceCert(deviceCa, { ...opts, publicKey: csrPublicKey(csr) }, overrides);
}
