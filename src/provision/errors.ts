import { GlassboxError } from '../errors.js';

/**
 * Failure classes of provisioning (on the recorder) and device issuance (on
 * the ops side). Each failure carries the problem and its fix, one line
 * each; the code is the contract, the words may change.
 *
 * Exit 1: the input was judged and refused (a certificate, a CSR, a broker's
 * answer). Exit 2: usage, I/O, or a device in a state the command must not
 * touch.
 */
export const PROVISION_ERROR_CODES = {
  // recorder: identity
  /** `provision init` or `import` would replace an identity; --force keeps the old one aside. */
  ALREADY_PROVISIONED: 2,
  /** `provision import` before `provision init`: no key on this recorder. */
  NOT_INITIALISED: 2,
  /** The identity directory holds something we did not write (bad meta, unreadable key, wrong mode). */
  IDENTITY_CORRUPT: 2,
  /** --owner names a user or group this system does not have. */
  OWNER_UNKNOWN: 2,
  /** Device id or hardware model outside the accepted alphabet. */
  DEVICE_ID_INVALID: 2,
  // recorder: certificate import
  /** Not a single PEM certificate (or chain file not PEM certificates). */
  CERT_INVALID: 1,
  /** The certificate's public key is not this recorder's key. */
  CERT_KEY_MISMATCH: 1,
  /** The certificate names another device id than the one this recorder was initialised with. */
  CERT_DEVICE_ID: 1,
  /** The certificate (or a CA above it) is past its notAfter. */
  CERT_EXPIRED: 1,
  /** The recorder's clock is before the certificate's notBefore: the clock is wrong, not the certificate. */
  CLOCK_SKEW: 1,
  /** The certificate does not chain to the device CA given, or that CA not to the trust policy's roots. */
  CERT_WRONG_CA: 1,
  /** The certificate chains, but is not a client-authentication leaf (EKU, CA flag, key usage, revoked…). */
  CERT_USAGE: 1,
  /** The trust policy file is unreadable or not a glassbox.trust/v1 policy. */
  TRUST_POLICY_INVALID: 1,
  /** The recorder already holds another trust policy (trust changes only through a signed bundle). */
  TRUST_POLICY_MISMATCH: 1,
  /** The broker CA file holds no certificate. */
  BROKER_CA_INVALID: 1,
  /** The broker URL is not an mqtts:// URL. */
  BROKER_URL_INVALID: 2,
  // recorder: broker check
  /** No TCP connection to the broker (refused, no route, DNS, timeout). */
  BROKER_UNREACHABLE: 2,
  /** The broker's certificate is not signed by the CA we were given (or names another host, or is expired). */
  BROKER_TLS_UNTRUSTED: 1,
  /** The broker refused our client certificate or our CONNECT (it trusts another device CA, ACL, …). */
  BROKER_REFUSED: 1,
  /** Connected, but the retained status could not be published or read back (ACL, timeout). */
  BROKER_READBACK: 1,
  // ops side
  /** The CSR is not a PKCS #10 request (or is over the size limit). */
  CSR_INVALID: 1,
  /** The CSR's self-signature does not verify: it was altered or was not made with its key. */
  CSR_SIGNATURE: 1,
  /** The CSR's subject does not carry an acceptable device id or hardware model. */
  CSR_SUBJECT: 1,
  /** The CSR's key is not an accepted algorithm (bundle-v1 section 3). */
  CSR_KEY_ALGORITHM: 1,
  /** The issuance log already holds a certificate for this device id (use --allow-reissue). */
  ALREADY_ISSUED: 1,
  /** The CA certificate/key given cannot issue device certificates (not a CA, key mismatch, expired). */
  CA_UNUSABLE: 2,
  /** The issuance log is unreadable, corrupt, over its bound, or locked by another issuer. */
  ISSUANCE_LOG: 2,
} as const;

export type ProvisionErrorCode = keyof typeof PROVISION_ERROR_CODES;

export class ProvisionError extends GlassboxError {
  declare readonly code: ProvisionErrorCode;
  /** What was found wrong, one line. */
  readonly problem: string;
  /** What to do about it, one line. */
  readonly fix: string;

  constructor(code: ProvisionErrorCode, problem: string, fix: string, options: { cause?: unknown } = {}) {
    super(code, `${problem}\n  fix: ${fix}`, { ...options, exitCode: PROVISION_ERROR_CODES[code] as 1 | 2 });
    this.problem = problem;
    this.fix = fix;
  }
}

export function isProvisionError(err: unknown, code?: ProvisionErrorCode): err is ProvisionError {
  return err instanceof ProvisionError && (code === undefined || err.code === code);
}
