import type { X509Certificate } from 'node:crypto';
import type { RejectionCode } from '../bundle/codes.js';

/** The device's trust policy file (bundle-v1 section 3), canonical JSON. */
export interface TrustPolicy {
  readonly schema: 'glassbox.trust/v1';
  readonly roots: readonly string[];
  readonly threshold: number;
  readonly revoked: { readonly certificates: readonly string[]; readonly keys: readonly string[] };
}

/** A parsed, checked policy, ready for chain building. */
export interface TrustAnchors {
  readonly policy: TrustPolicy;
  readonly roots: readonly X509Certificate[];
  /** sha256 hex of the canonical policy bytes: what `status` shows as the policy fingerprint. */
  readonly sha256: string;
}

/** What a chain is checked for: firmware signers need codeSigning, device identities clientAuth. */
export type KeyPurpose = 'codeSigning' | 'clientAuth';

/** One signature pair as found in the bundle (signatures/<k>.sig + .pem). */
export interface SignatureEntry {
  readonly index: number;
  readonly signature: Buffer;
  readonly chainPem: Buffer;
}

export type SignerOutcome = 'valid' | 'SIGNATURE_INVALID' | 'SIGNER_UNTRUSTED' | 'DUPLICATE_KEY';

export interface SignerReport {
  readonly index: number;
  /** Leaf subject as a string, or null when the PEM could not be parsed. */
  readonly subject: string | null;
  /** sha256 hex of the leaf's SubjectPublicKeyInfo DER, or null when unparsable. */
  readonly spkiSha256: string | null;
  readonly outcome: SignerOutcome;
  /** Why, for anything but `valid`: names the certificate and the rule. */
  readonly reason: string | null;
}

export interface SignersJudgement {
  readonly signers: readonly SignerReport[];
  /** Number of distinct valid signer keys. */
  readonly distinctValid: number;
  readonly threshold: number;
  /** null when the threshold is met; otherwise the section 5 code. */
  readonly code: RejectionCode | null;
  readonly reason: string | null;
}
