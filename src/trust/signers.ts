/**
 * Judging a manifest's signers (bundle-v1 sections 3 and 5). Pure.
 *
 * Each signer, in index order: its chain first (fault: SIGNER_UNTRUSTED),
 * then its signature over the exact manifest bytes (fault:
 * SIGNATURE_INVALID), else valid. A valid signer whose key (SPKI sha256)
 * was already counted is DUPLICATE_KEY: listed, counted once. The threshold
 * is the policy's, never the bundle's.
 *
 * Outcome: code null when the distinct valid keys reach the threshold
 * (faulty extra signers do not reject, the report still lists them);
 * otherwise the fault of the lowest-numbered faulty signer, or
 * THRESHOLD_NOT_MET when no signer is faulty (none, too few, a key twice).
 */
import { validateChain } from './chain.js';
import { verifySignature } from './signature.js';
import type { SignatureEntry, SignerReport, SignersJudgement, TrustAnchors } from './types.js';

function judgeOne(manifestBytes: Buffer, entry: SignatureEntry, anchors: TrustAnchors, at: Date): SignerReport {
  const chain = validateChain(entry.chainPem, anchors, at, 'codeSigning');
  if (!chain.ok) {
    return {
      index: entry.index,
      subject: chain.subject ?? null,
      spkiSha256: chain.spkiSha256 ?? null,
      outcome: 'SIGNER_UNTRUSTED',
      reason: `signer ${entry.index}: ${chain.reason}`,
    };
  }
  const sig = verifySignature(chain.leaf, manifestBytes, entry.signature);
  return {
    index: entry.index,
    subject: chain.subject,
    spkiSha256: chain.spkiSha256,
    outcome: sig.ok ? 'valid' : 'SIGNATURE_INVALID',
    reason: sig.ok ? null : `signer ${entry.index} "${chain.subject}": ${sig.reason}`,
  };
}

export function judgeSigners(manifestBytes: Buffer, entries: readonly SignatureEntry[], anchors: TrustAnchors, at: Date): SignersJudgement {
  const threshold = anchors.policy.threshold;
  const ordered = [...entries].sort((a, b) => a.index - b.index);
  const counted = new Map<string, number>();
  const signers: SignerReport[] = ordered.map((entry) => {
    const report = judgeOne(manifestBytes, entry, anchors, at);
    if (report.outcome !== 'valid' || report.spkiSha256 === null) return report;
    const first = counted.get(report.spkiSha256);
    if (first !== undefined) {
      return { ...report, outcome: 'DUPLICATE_KEY', reason: `signer ${entry.index} uses the same key as signer ${first} (SPKI sha256 ${report.spkiSha256}); counted once` };
    }
    counted.set(report.spkiSha256, entry.index);
    return report;
  });

  const distinctValid = counted.size;
  if (distinctValid >= threshold) return { signers, distinctValid, threshold, code: null, reason: null };

  const faulty = signers.find((s) => s.outcome === 'SIGNER_UNTRUSTED' || s.outcome === 'SIGNATURE_INVALID');
  const shortfall = `${distinctValid} distinct valid signer key(s), threshold ${threshold}`;
  if (faulty && (faulty.outcome === 'SIGNER_UNTRUSTED' || faulty.outcome === 'SIGNATURE_INVALID')) {
    return { signers, distinctValid, threshold, code: faulty.outcome, reason: `${faulty.reason ?? faulty.outcome} (${shortfall})` };
  }
  const why =
    signers.length === 0
      ? 'the bundle carries no signature'
      : signers.some((s) => s.outcome === 'DUPLICATE_KEY')
        ? 'a signer key appears more than once and counts once'
        : 'too few signers';
  return { signers, distinctValid, threshold, code: 'THRESHOLD_NOT_MET', reason: `${why}: ${shortfall}` };
}
