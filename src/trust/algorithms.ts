/**
 * The accepted key and signature algorithms of bundle-v1 section 3. Pure.
 *
 *   ECDSA P-256 with SHA-256, ECDSA P-384 with SHA-384 (DER signatures);
 *   RSA >= 3072 bits, e = 65537, PKCS #1 v1.5 or PSS (MGF1-SHA-256, salt 32) with SHA-256.
 *
 * Everything else is refused with a reason naming the algorithm.
 */
import type { KeyObject } from 'node:crypto';

export const RSA_MIN_BITS = 3072;
export const RSA_EXPONENT = 65537n;
/** PSS salt length: the digest length of SHA-256. */
export const PSS_SALT_LENGTH = 32;

export type SignatureAlgorithm = 'ecdsa-p256-sha256' | 'ecdsa-p384-sha384' | 'rsa-pkcs1v15-sha256' | 'rsa-pss-sha256';

/** An accepted public key, with the hash its signatures use. */
export type AcceptedKey =
  | { readonly kind: 'ecdsa'; readonly curve: 'P-256'; readonly hash: 'sha256' }
  | { readonly kind: 'ecdsa'; readonly curve: 'P-384'; readonly hash: 'sha384' }
  | { readonly kind: 'rsa'; readonly bits: number; readonly hash: 'sha256' };

const CURVE_NAMES: Record<string, string> = {
  prime256v1: 'P-256',
  secp384r1: 'P-384',
  secp521r1: 'P-521',
  secp256k1: 'secp256k1',
};

/** Human name of a key's algorithm: "ECDSA P-256", "RSA-2048 (e=3)", "Ed25519", … */
export function describeKey(key: KeyObject): string {
  const type = key.asymmetricKeyType;
  const details = key.asymmetricKeyDetails ?? {};
  switch (type) {
    case 'ec': {
      const curve = details.namedCurve ?? 'unknown curve';
      return `ECDSA ${CURVE_NAMES[curve] ?? curve}`;
    }
    case 'rsa':
    case 'rsa-pss': {
      const label = type === 'rsa' ? 'RSA' : 'RSA-PSS-only';
      const e = details.publicExponent;
      return `${label}-${details.modulusLength ?? '?'} (e=${e === undefined ? '?' : e.toString()})`;
    }
    case 'ed25519':
      return 'Ed25519';
    case 'ed448':
      return 'Ed448';
    case 'dsa':
      return `DSA-${details.modulusLength ?? '?'}`;
    default:
      return String(type ?? 'unknown key type');
  }
}

/**
 * Whether a public key may make signatures glassbox accepts, and with
 * which hash. RSA keys of type id-RSASSA-PSS (PSS-only SPKI) are refused:
 * the format names plain rsaEncryption keys used with either padding.
 */
export function acceptKey(key: KeyObject): { ok: true; key: AcceptedKey } | { ok: false; reason: string } {
  const type = key.asymmetricKeyType;
  const details = key.asymmetricKeyDetails ?? {};
  if (type === 'ec') {
    if (details.namedCurve === 'prime256v1') return { ok: true, key: { kind: 'ecdsa', curve: 'P-256', hash: 'sha256' } };
    if (details.namedCurve === 'secp384r1') return { ok: true, key: { kind: 'ecdsa', curve: 'P-384', hash: 'sha384' } };
    return { ok: false, reason: `${describeKey(key)} is not an accepted algorithm (ECDSA P-256 or P-384 only)` };
  }
  if (type === 'rsa') {
    const bits = details.modulusLength ?? 0;
    const e = details.publicExponent;
    const faults: string[] = [];
    if (bits < RSA_MIN_BITS) faults.push(`fewer than ${RSA_MIN_BITS} bits`);
    if (e !== RSA_EXPONENT) faults.push('public exponent is not 65537');
    if (faults.length > 0) return { ok: false, reason: `${describeKey(key)} is not an accepted algorithm (${faults.join(', ')})` };
    return { ok: true, key: { kind: 'rsa', bits, hash: 'sha256' } };
  }
  return {
    ok: false,
    reason: `${describeKey(key)} is not an accepted algorithm (accepted: ECDSA P-256/SHA-256, ECDSA P-384/SHA-384, RSA >= ${RSA_MIN_BITS} e=65537 with SHA-256)`,
  };
}
