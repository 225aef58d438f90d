/**
 * Key generation, PEM export and the bridge from node KeyObjects to the
 * webcrypto CryptoKeys @peculiar/x509 signs with. All through node:crypto.
 *
 * Accepted signer algorithms (bundle-v1 section 3): ecdsa-p256, ecdsa-p384,
 * rsa-3072, rsa-4096. The others exist so tests can build what must be refused.
 */
import { createPrivateKey, createPublicKey, generateKeyPair as generateKeyPairCb, webcrypto, type KeyObject } from 'node:crypto';
import { promisify } from 'node:util';
import { GlassboxError } from '../errors.js';

export { certSha256, sha256Hex, spkiDer, spkiSha256 } from '../trust/fingerprint.js';

const generateKeyPairAsync = promisify(generateKeyPairCb);

export const ACCEPTED_KEY_ALGORITHMS = ['ecdsa-p256', 'ecdsa-p384', 'rsa-3072', 'rsa-4096'] as const;
/** Algorithms glassbox refuses; generated only to prove the refusal. rsa-3072-e3 is 3072 bits with e = 3. */
export const REFUSED_KEY_ALGORITHMS = ['rsa-2048', 'rsa-3072-e3', 'ecdsa-p521', 'ed25519'] as const;

export type AcceptedKeyAlgorithm = (typeof ACCEPTED_KEY_ALGORITHMS)[number];
export type KeyAlgorithm = AcceptedKeyAlgorithm | (typeof REFUSED_KEY_ALGORITHMS)[number];

export function isKeyAlgorithm(value: string): value is KeyAlgorithm {
  return (ACCEPTED_KEY_ALGORITHMS as readonly string[]).includes(value) || (REFUSED_KEY_ALGORITHMS as readonly string[]).includes(value);
}

export interface KeyPair {
  readonly algorithm: KeyAlgorithm;
  readonly privateKey: KeyObject;
  readonly publicKey: KeyObject;
}

/** Generates a key pair off the main thread (RSA-3072 takes a noticeable fraction of a second). */
export async function generateKey(algorithm: KeyAlgorithm): Promise<KeyPair> {
  let pair: { publicKey: KeyObject; privateKey: KeyObject };
  switch (algorithm) {
    case 'ecdsa-p256':
      pair = await generateKeyPairAsync('ec', { namedCurve: 'P-256' });
      break;
    case 'ecdsa-p384':
      pair = await generateKeyPairAsync('ec', { namedCurve: 'P-384' });
      break;
    case 'ecdsa-p521':
      pair = await generateKeyPairAsync('ec', { namedCurve: 'P-521' });
      break;
    case 'rsa-2048':
      pair = await generateKeyPairAsync('rsa', { modulusLength: 2048, publicExponent: 65537 });
      break;
    case 'rsa-3072':
      pair = await generateKeyPairAsync('rsa', { modulusLength: 3072, publicExponent: 65537 });
      break;
    case 'rsa-3072-e3':
      pair = await generateKeyPairAsync('rsa', { modulusLength: 3072, publicExponent: 3 });
      break;
    case 'rsa-4096':
      pair = await generateKeyPairAsync('rsa', { modulusLength: 4096, publicExponent: 65537 });
      break;
    case 'ed25519':
      pair = await generateKeyPairAsync('ed25519');
      break;
  }
  return { algorithm, privateKey: pair.privateKey, publicKey: pair.publicKey };
}

/** Names a node KeyObject in our vocabulary, or null when it is none of ours. */
export function keyAlgorithmOf(key: KeyObject): KeyAlgorithm | null {
  const d = key.asymmetricKeyDetails ?? {};
  switch (key.asymmetricKeyType) {
    case 'ec':
      return d.namedCurve === 'prime256v1' ? 'ecdsa-p256' : d.namedCurve === 'secp384r1' ? 'ecdsa-p384' : d.namedCurve === 'secp521r1' ? 'ecdsa-p521' : null;
    case 'rsa':
      if (d.publicExponent === 3n && d.modulusLength === 3072) return 'rsa-3072-e3';
      if (d.publicExponent !== 65537n) return null;
      return d.modulusLength === 2048 ? 'rsa-2048' : d.modulusLength === 3072 ? 'rsa-3072' : d.modulusLength === 4096 ? 'rsa-4096' : null;
    case 'ed25519':
      return 'ed25519';
    default:
      return null;
  }
}

/** Parses a PEM private key (PKCS #8, SEC1 or PKCS #1) into a KeyPair. Throws GlassboxError KEY_INVALID. */
export function keyPairFromPem(pem: string | Buffer): KeyPair {
  let privateKey: KeyObject;
  try {
    privateKey = createPrivateKey({ key: pem, format: 'pem' });
  } catch (err) {
    throw new GlassboxError('KEY_INVALID', 'not a PEM private key', { cause: err });
  }
  const algorithm = keyAlgorithmOf(privateKey);
  if (algorithm === null) throw new GlassboxError('KEY_INVALID', `unsupported private key type ${String(privateKey.asymmetricKeyType)}`);
  return { algorithm, privateKey, publicKey: createPublicKey(privateKey) };
}

/** PKCS #8 PEM of the private key (unencrypted: protect the file, mode 0600). */
export function privateKeyPem(key: KeyPair | KeyObject): string {
  const k = 'privateKey' in key ? key.privateKey : key;
  return k.export({ type: 'pkcs8', format: 'pem' }).toString();
}

/** SubjectPublicKeyInfo PEM of the public key. */
export function publicKeyPem(key: KeyPair | KeyObject): string {
  const k = 'publicKey' in key ? key.publicKey : key.type === 'private' ? createPublicKey(key) : key;
  return k.export({ type: 'spki', format: 'pem' }).toString();
}

export type CertHash = 'SHA-256' | 'SHA-384' | 'SHA-512';

/** The webcrypto signing key and X.509 signature algorithm for an issuer key. */
export interface WebSigningKey {
  readonly key: webcrypto.CryptoKey;
  readonly algorithm: { name: string; hash?: string };
}

/**
 * Imports an issuer's private key into webcrypto so @peculiar/x509 can sign
 * certificates and CSRs with it. ECDSA uses the curve's own hash unless
 * `hash` says otherwise; RSA signs PKCS #1 v1.5 with SHA-256 by default.
 */
export async function webSigningKey(pair: KeyPair, hash?: CertHash): Promise<WebSigningKey> {
  const pkcs8 = pair.privateKey.export({ type: 'pkcs8', format: 'der' });
  const subtle = webcrypto.subtle;
  switch (pair.algorithm) {
    case 'ecdsa-p256':
    case 'ecdsa-p384':
    case 'ecdsa-p521': {
      const namedCurve = pair.algorithm === 'ecdsa-p256' ? 'P-256' : pair.algorithm === 'ecdsa-p384' ? 'P-384' : 'P-521';
      const h = hash ?? (namedCurve === 'P-256' ? 'SHA-256' : namedCurve === 'P-384' ? 'SHA-384' : 'SHA-512');
      const key = await subtle.importKey('pkcs8', pkcs8, { name: 'ECDSA', namedCurve }, false, ['sign']);
      return { key, algorithm: { name: 'ECDSA', hash: h } };
    }
    case 'rsa-2048':
    case 'rsa-3072':
    case 'rsa-3072-e3':
    case 'rsa-4096': {
      const h = hash ?? 'SHA-256';
      const key = await subtle.importKey('pkcs8', pkcs8, { name: 'RSASSA-PKCS1-v1_5', hash: h }, false, ['sign']);
      return { key, algorithm: { name: 'RSASSA-PKCS1-v1_5', hash: h } };
    }
    case 'ed25519': {
      const key = await subtle.importKey('pkcs8', pkcs8, { name: 'Ed25519' }, false, ['sign']);
      return { key, algorithm: { name: 'Ed25519' } };
    }
  }
}
