/**
 * Fingerprints used by the trust policy (bundle-v1 section 3). Pure.
 *
 *   certificate: sha256 of the certificate's DER
 *                (`openssl x509 -in c.pem -outform DER | sha256sum`)
 *   key:         sha256 of the SubjectPublicKeyInfo DER
 *                (`openssl x509 -in c.pem -pubkey -noout | openssl pkey -pubin -outform DER | sha256sum`)
 *
 * All lowercase hex, as the policy file stores them.
 */
import { createHash, createPublicKey, X509Certificate, type KeyObject } from 'node:crypto';

export function sha256Hex(data: Uint8Array): string {
  return createHash('sha256').update(data).digest('hex');
}

/** sha256 of a certificate's DER encoding. */
export function certSha256(cert: X509Certificate): string {
  return sha256Hex(cert.raw);
}

/** SubjectPublicKeyInfo DER of a key (a private key yields its public half) or of a certificate's key. */
export function spkiDer(subject: KeyObject | X509Certificate): Buffer {
  const key = subject instanceof X509Certificate ? subject.publicKey : subject.type === 'private' ? createPublicKey(subject) : subject;
  return key.export({ type: 'spki', format: 'der' });
}

/** sha256 of the SubjectPublicKeyInfo DER: the key fingerprint that makes signers distinct. */
export function spkiSha256(subject: KeyObject | X509Certificate): string {
  return sha256Hex(spkiDer(subject));
}
