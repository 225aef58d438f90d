/**
 * How a VerifyReport is shown (PURE): one human line, and the JSON object
 * `glassbox verify --json` prints (the report without its raw buffers).
 */
import type { VerifyReport } from './types.js';

export type VerifyReportJson = Omit<VerifyReport, 'manifestBytes' | 'manifestObject' | 'newTrustPolicy' | 'signatures'>;

/** The report as printed by --json: every field but the raw manifest and policy bytes. */
export function verifyReportJson(report: VerifyReport): VerifyReportJson {
  const { manifestBytes: _bytes, manifestObject: _object, newTrustPolicy: _policy, signatures: _signatures, ...rest } = report;
  return rest;
}

function signersPhrase(report: VerifyReport): string {
  const valid = report.distinctValidSigners;
  const faulty = report.signers.filter((s) => s.outcome !== 'valid').length;
  const threshold = report.threshold ?? valid;
  const extra = valid > threshold ? `, ${valid - threshold} more valid` : '';
  const ignored = faulty > 0 ? `; ${faulty} other signer(s) not counted` : '';
  return `${Math.min(valid, threshold)} of ${threshold} required signers valid${extra}${ignored}`;
}

function hardwarePhrase(report: VerifyReport, hardware: string | undefined): string {
  switch (report.hardwareCheck) {
    case 'skipped':
      return 'hardware check skipped (no --hardware)';
    case 'matched':
      return `hardware ${hardware ?? ''} listed`.replace('  ', ' ');
    default:
      return `hardware check ${report.hardwareCheck}`;
  }
}

/**
 * One line:
 *   ACCEPTED hss-nvr 2.4.1 (securityVersion 12, sha256 ab12cd34ef56…): 2 of 2 required signers valid; hardware check skipped (no --hardware)
 *   REJECTED ARTIFACT_DIGEST: artifact rootfs.img: sha256 … differs from the manifest's …
 */
export function describeVerifyReport(report: VerifyReport, hardware?: string): string {
  if (!report.ok) return `REJECTED ${report.code ?? '?'}: ${report.reason}`;
  const m = report.manifest;
  const what = m ? `${m.product} ${m.version} (securityVersion ${m.securityVersion}, sha256 ${m.sha256.slice(0, 12)}…)` : 'bundle';
  const rotation = report.trustRotation ? `; carries a new trust policy sha256 ${report.trustRotation.policySha256.slice(0, 12)}… (its threshold ${report.trustRotation.threshold} met)` : '';
  return `ACCEPTED ${what}: ${signersPhrase(report)}; ${hardwarePhrase(report, hardware)}${rotation}`;
}
