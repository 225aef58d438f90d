/**
 * Signature check over the manifest bytes, restricted to the accepted
 * algorithms of bundle-v1 section 3. Pure; verification through node:crypto.
 *
 *   ECDSA P-256 + SHA-256, ECDSA P-384 + SHA-384: DER (r, s), as `openssl dgst` writes.
 *   RSA >= 3072, e = 65537, SHA-256: PKCS #1 v1.5 is tried first, then PSS
 *   with MGF1-SHA-256 and a salt of exactly 32 bytes (OpenSSL checks the
 *   recovered salt length against the one given, so PSS signatures made with
 *   any other salt length fail).
 */
import { constants, verify, type X509Certificate } from 'node:crypto';
import { acceptKey, describeKey, PSS_SALT_LENGTH, type SignatureAlgorithm } from './algorithms.js';

/** No accepted signature is larger than an RSA-8192 one; bigger input is refused before any math. */
export const SIGNATURE_MAX_BYTES = 1024;

export type SignatureResult = { readonly ok: true; readonly algorithm: SignatureAlgorithm } | { readonly ok: false; readonly reason: string };

export function verifySignature(leaf: X509Certificate, data: Buffer, sig: Buffer): SignatureResult {
  const key = leaf.publicKey;
  const accepted = acceptKey(key);
  if (!accepted.ok) return { ok: false, reason: `signer key: ${accepted.reason}` };
  if (sig.length === 0) return { ok: false, reason: 'signature is empty' };
  if (sig.length > SIGNATURE_MAX_BYTES) return { ok: false, reason: `signature is ${sig.length} bytes, over the ${SIGNATURE_MAX_BYTES}-byte limit` };

  const a = accepted.key;
  try {
    if (a.kind === 'ecdsa') {
      const ok = verify(a.hash, data, { key, dsaEncoding: 'der' }, sig);
      if (ok) return { ok: true, algorithm: a.curve === 'P-256' ? 'ecdsa-p256-sha256' : 'ecdsa-p384-sha384' };
      return { ok: false, reason: `ECDSA ${a.curve}/${a.hash.toUpperCase()} signature (DER) does not verify` };
    }
    if (verify('sha256', data, { key, padding: constants.RSA_PKCS1_PADDING }, sig)) return { ok: true, algorithm: 'rsa-pkcs1v15-sha256' };
    if (verify('sha256', data, { key, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: PSS_SALT_LENGTH }, sig)) {
      return { ok: true, algorithm: 'rsa-pss-sha256' };
    }
    return { ok: false, reason: `${describeKey(key)} signature does not verify as PKCS #1 v1.5/SHA-256 nor as PSS/SHA-256 with salt length ${PSS_SALT_LENGTH}` };
  } catch (err) {
    return { ok: false, reason: `signature could not be checked: ${err instanceof Error ? err.message : String(err)}` };
  }
}
