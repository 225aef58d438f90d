/**
 * Test PKI helpers for every engineer's tests. Everything is generated at
 * test time; nothing here is committed key material.
 *
 *   const pki = await makeTestPki();                 // root, release CA, 3 P-256 signers, device CA, threshold 2
 *   const sig = signWith(pki.signers[0], manifest);  // raw signature bytes
 *   entries = [signatureEntry(1, pki.signers[0], manifest), …]
 *   judgeSigners(manifest, entries, pki.anchors, pki.now)
 *   const bad = await hostileSigner(pki, 'expired'); // CertifiedKey + chainPem
 *   const dir = await writeTestPki();                // createDevPki into a fresh temp dir
 *
 * Keys are cached per test file (vitest isolates modules per file) by
 * (algorithm, slot): the same slot gives the same key. RSA-3072 keygen costs
 * a fraction of a second; ask for it only where the algorithm matters.
 */
import { constants, sign, type KeyObject } from 'node:crypto';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { canonicalBytes } from '../../src/manifest/canonical.js';
import {
  createDeviceCert,
  createIntermediateCa,
  createLeaf,
  createRootCa,
  type CertifiedKey,
  type CertOverrides,
} from '../../src/pki/certs.js';
import { createDevPki, type DevPki, type DevPkiOptions } from '../../src/pki/devpki.js';
import { generateKey, type KeyAlgorithm, type KeyPair } from '../../src/pki/keys.js';
import { loadTrustAnchors } from '../../src/trust/policy.js';
import type { SignatureEntry, TrustAnchors, TrustPolicy } from '../../src/trust/types.js';

const keyCache = new Map<string, Promise<KeyPair>>();

/** A key for (algorithm, slot), generated once per test file. */
export function testKey(algorithm: KeyAlgorithm, slot: number | string = 0): Promise<KeyPair> {
  const id = `${algorithm}/${slot}`;
  let p = keyCache.get(id);
  if (!p) {
    p = generateKey(algorithm);
    keyCache.set(id, p);
  }
  return p;
}

/** A fixed reference time well inside every default validity period. */
export const TEST_NOW = new Date('2026-06-01T12:00:00Z');

export const DAY = 24 * 3600_000;

export interface TestPki {
  readonly now: Date;
  readonly root: CertifiedKey;
  readonly releaseCa: CertifiedKey;
  readonly deviceCa: CertifiedKey;
  readonly signers: readonly CertifiedKey[];
  /** Leaf + release CA, per signer: what goes into signatures/<k>.pem. */
  readonly chains: readonly string[];
  readonly policy: TrustPolicy;
  readonly policyBytes: Buffer;
  readonly anchors: TrustAnchors;
}

export interface TestPkiOptions {
  readonly now?: Date;
  readonly signers?: number;
  /** Per signer; default ecdsa-p256. */
  readonly signerAlgorithms?: readonly KeyAlgorithm[];
  readonly threshold?: number;
  readonly revoked?: { readonly certificates?: readonly string[]; readonly keys?: readonly string[] };
  /** Key-cache namespace: two PKIs with different namespaces share no key. */
  readonly namespace?: string;
}

/** Canonical trust-policy bytes (bundle-v1 section 3). */
export function trustPolicyBytes(roots: readonly string[], threshold: number, revoked: TestPkiOptions['revoked'] = {}): Buffer {
  const policy: TrustPolicy = {
    schema: 'glassbox.trust/v1',
    roots: [...roots],
    threshold,
    revoked: { certificates: [...(revoked.certificates ?? [])], keys: [...(revoked.keys ?? [])] },
  };
  return canonicalBytes(policy);
}

/** TrustAnchors through the real loader. */
export function anchorsFor(roots: readonly string[], threshold = 1, revoked: TestPkiOptions['revoked'] = {}): TrustAnchors {
  return loadTrustAnchors(trustPolicyBytes(roots, threshold, revoked));
}

/** An in-memory PKI shaped like createDevPki's. */
export async function makeTestPki(opts: TestPkiOptions = {}): Promise<TestPki> {
  const now = opts.now ?? TEST_NOW;
  const ns = opts.namespace ?? 'pki';
  const count = opts.signers ?? opts.signerAlgorithms?.length ?? 3;
  const root = await createRootCa({ key: await testKey('ecdsa-p384', `${ns}-root`), subject: `CN=${ns} test root, O=glassbox tests`, now });
  const releaseCa = await createIntermediateCa(root, { key: await testKey('ecdsa-p256', `${ns}-release`), subject: `CN=${ns} test release CA`, now });
  const deviceCa = await createIntermediateCa(root, { key: await testKey('ecdsa-p256', `${ns}-device`), subject: `CN=${ns} test device CA`, now });
  const signers: CertifiedKey[] = [];
  for (let i = 0; i < count; i++) {
    const alg = opts.signerAlgorithms?.[i] ?? 'ecdsa-p256';
    const key = await testKey(alg, `${ns}-signer-${i + 1}`);
    signers.push(await createLeaf(releaseCa, { key, subject: `CN=${ns} test signer ${i + 1}`, purpose: 'codeSigning', now }));
  }
  const threshold = opts.threshold ?? Math.min(2, Math.max(1, count));
  const policyBytes = trustPolicyBytes([root.pem], threshold, opts.revoked);
  const anchors = loadTrustAnchors(policyBytes);
  return {
    now,
    root,
    releaseCa,
    deviceCa,
    signers,
    chains: signers.map((s) => s.pem + releaseCa.pem),
    policy: anchors.policy,
    policyBytes,
    anchors,
  };
}

export type RsaPadding = 'pkcs1' | 'pss';

/** Signs like FileKeySigner does (synchronously, for fixtures): the curve's hash for ECDSA, SHA-256 for RSA. */
export function signWith(signer: CertifiedKey | KeyObject, data: Buffer, opts: { rsaPadding?: RsaPadding; pssSaltLength?: number } = {}): Buffer {
  const key = 'key' in signer ? signer.key.privateKey : signer;
  const curve = key.asymmetricKeyDetails?.namedCurve;
  if (key.asymmetricKeyType === 'ec') return sign(curve === 'secp384r1' ? 'sha384' : curve === 'secp521r1' ? 'sha512' : 'sha256', data, { key, dsaEncoding: 'der' });
  if (key.asymmetricKeyType === 'rsa') {
    if (opts.rsaPadding === 'pss') return sign('sha256', data, { key, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: opts.pssSaltLength ?? 32 });
    return sign('sha256', data, { key, padding: constants.RSA_PKCS1_PADDING });
  }
  return sign(null, data, key);
}

/** A bundle signature pair for judgeSigners. */
export function signatureEntry(index: number, signer: CertifiedKey, chainPem: string, data: Buffer, opts: Parameters<typeof signWith>[2] = {}): SignatureEntry {
  return { index, signature: signWith(signer, data, opts), chainPem: Buffer.from(chainPem) };
}

export type HostileKind =
  | 'expired'
  | 'not-yet-valid'
  | 'no-eku'
  | 'client-auth-eku'
  | 'ca-leaf'
  | 'no-digital-signature'
  | 'self-signed'
  | 'foreign-root'
  | 'intermediate-missing'
  | 'expired-intermediate'
  | 'pathlen-exceeded'
  | 'rsa-2048'
  | 'rsa-e3'
  | 'p521'
  | 'ed25519';

export interface HostileSigner {
  readonly signer: CertifiedKey;
  /** The PEM to put into signatures/<k>.pem. */
  readonly chainPem: string;
}

/**
 * A signer that a correct verifier must refuse, against `pki`'s policy.
 * Chain faults (SIGNER_UNTRUSTED): expired … pathlen-exceeded.
 * Algorithm faults (SIGNATURE_INVALID, valid chain): rsa-2048, rsa-e3, p521, ed25519.
 */
export async function hostileSigner(pki: TestPki, kind: HostileKind): Promise<HostileSigner> {
  const now = pki.now;
  const subject = `CN=hostile ${kind}`;
  const leafUnder = async (issuer: CertifiedKey, alg: KeyAlgorithm, o: CertOverrides = {}): Promise<CertifiedKey> =>
    createLeaf(issuer, { key: await testKey(alg, `hostile-${kind}`), subject, purpose: 'codeSigning', now }, o);
  const withRelease = (leaf: CertifiedKey): HostileSigner => ({ signer: leaf, chainPem: leaf.pem + pki.releaseCa.pem });
  switch (kind) {
    case 'expired':
      return withRelease(await leafUnder(pki.releaseCa, 'ecdsa-p256', { notBefore: new Date(now.getTime() - 400 * DAY), notAfter: new Date(now.getTime() - DAY) }));
    case 'not-yet-valid':
      return withRelease(await leafUnder(pki.releaseCa, 'ecdsa-p256', { notBefore: new Date(now.getTime() + DAY) }));
    case 'no-eku':
      return withRelease(await leafUnder(pki.releaseCa, 'ecdsa-p256', { extendedKeyUsage: null }));
    case 'client-auth-eku':
      return withRelease(await leafUnder(pki.releaseCa, 'ecdsa-p256', { extendedKeyUsage: ['1.3.6.1.5.5.7.3.2'] }));
    case 'ca-leaf':
      return withRelease(await leafUnder(pki.releaseCa, 'ecdsa-p256', { basicConstraints: { ca: true }, keyUsage: 0x21 /* digitalSignature | keyCertSign */ }));
    case 'no-digital-signature':
      return withRelease(await leafUnder(pki.releaseCa, 'ecdsa-p256', { keyUsage: 0x02 /* nonRepudiation */ }));
    case 'self-signed': {
      const key = await testKey('ecdsa-p256', `hostile-${kind}`);
      const self = await createRootCa({ key, subject, now }, { basicConstraints: { ca: false }, keyUsage: 0x01, extendedKeyUsage: ['1.3.6.1.5.5.7.3.3'] });
      return { signer: self, chainPem: self.pem };
    }
    case 'foreign-root': {
      const root = await createRootCa({ key: await testKey('ecdsa-p256', 'foreign-root'), subject: 'CN=foreign root', now });
      const inter = await createIntermediateCa(root, { key: await testKey('ecdsa-p256', 'foreign-inter'), subject: pki.releaseCa.cert.subject.split('\n').join(', '), now });
      const leaf = await leafUnder(inter, 'ecdsa-p256');
      return { signer: leaf, chainPem: leaf.pem + inter.pem };
    }
    case 'intermediate-missing': {
      const leaf = await leafUnder(pki.releaseCa, 'ecdsa-p256');
      return { signer: leaf, chainPem: leaf.pem };
    }
    case 'expired-intermediate': {
      const inter = await createIntermediateCa(
        pki.root,
        { key: await testKey('ecdsa-p256', 'expired-inter'), subject: 'CN=expired release CA', now },
        { notBefore: new Date(now.getTime() - 400 * DAY), notAfter: new Date(now.getTime() - DAY) },
      );
      const leaf = await leafUnder(inter, 'ecdsa-p256', { notBefore: new Date(now.getTime() - 10 * DAY) });
      return { signer: leaf, chainPem: leaf.pem + inter.pem };
    }
    case 'pathlen-exceeded': {
      // release CA has pathLen 0; a sub-CA under it then issues the leaf.
      const sub = await createIntermediateCa(pki.releaseCa, { key: await testKey('ecdsa-p256', 'sub-ca'), subject: 'CN=sub CA under pathLen 0', now, pathLen: null });
      const leaf = await leafUnder(sub, 'ecdsa-p256');
      return { signer: leaf, chainPem: leaf.pem + sub.pem + pki.releaseCa.pem };
    }
    case 'rsa-2048':
      return withRelease(await leafUnder(pki.releaseCa, 'rsa-2048'));
    case 'rsa-e3':
      return withRelease(await leafUnder(pki.releaseCa, 'rsa-3072-e3'));
    case 'p521':
      return withRelease(await leafUnder(pki.releaseCa, 'ecdsa-p521'));
    case 'ed25519':
      return withRelease(await leafUnder(pki.releaseCa, 'ed25519'));
  }
}

/** A device identity certificate (clientAuth, CN=<deviceId>) under the PKI's device CA. */
export async function testDeviceCert(pki: TestPki, deviceId: string, hardwareModel?: string): Promise<{ key: KeyPair; pem: string; chainPem: string }> {
  const key = await testKey('ecdsa-p256', `device-${deviceId}`);
  const cert = await createDeviceCert(pki.deviceCa, { deviceId, ...(hardwareModel === undefined ? {} : { hardwareModel }), publicKey: key.publicKey, now: pki.now });
  return { key, pem: cert.pem, chainPem: cert.pem + pki.deviceCa.pem };
}

/** A fresh temp directory (unique per call). */
export function tempDir(prefix = 'glassbox-pki-'): Promise<string> {
  return mkdtemp(join(tmpdir(), prefix));
}

/** createDevPki into a fresh temp directory. */
export async function writeTestPki(opts: DevPkiOptions = {}): Promise<DevPki> {
  return createDevPki(join(await tempDir(), 'pki'), opts);
}
