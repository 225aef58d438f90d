import { GlassboxError } from '../errors.js';

/**
 * Rejection codes of bundle-v1 section 5, in table order. Where several
 * apply at the same reading point, the one earliest in this list wins.
 */
export const REJECTION_CODES = [
  'BUNDLE_FORMAT',
  'MANIFEST_INVALID',
  'SIGNATURE_INVALID',
  'SIGNER_UNTRUSTED',
  'THRESHOLD_NOT_MET',
  'MANIFEST_EXPIRED',
  'HARDWARE_MISMATCH',
  'ROLLBACK',
  'ARTIFACT_MISSING',
  'ARTIFACT_UNEXPECTED',
  'ARTIFACT_SIZE',
  'ARTIFACT_DIGEST',
] as const;

export type RejectionCode = (typeof REJECTION_CODES)[number];

export function isRejectionCode(value: string): value is RejectionCode {
  return (REJECTION_CODES as readonly string[]).includes(value);
}

/** The bundle was read and judged not authentic or not fitting. Exit 1. */
export class BundleRejected extends GlassboxError {
  declare readonly code: RejectionCode;
  constructor(code: RejectionCode, message: string, options: { cause?: unknown } = {}) {
    super(code, message, { ...options, exitCode: 1 });
  }
}
