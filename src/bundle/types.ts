import type { RejectionCode } from './codes.js';
import type { Manifest, ManifestArtifact } from '../manifest/types.js';
import type { SignatureEntry, SignerReport, SignersJudgement, TrustAnchors } from '../trust/types.js';

/** Everything the verifier judges against. Time and trust come in; nothing is read from the outside. */
export interface VerifyContext {
  readonly trust: TrustAnchors;
  /** Verification time (device clock, or the latest trustworthy time if later). */
  readonly at: Date;
  /** Device hardware model; undefined = hardware check skipped (and reported so). */
  readonly hardware?: string | undefined;
  /** Recorded anti-rollback floor; 0 when none. */
  readonly securityFloor: number;
}

/**
 * Who judges the signers (judgeSigners of src/trust/signers.ts) for one
 * verification. With a VerifyContext the verifier judges in its own thread
 * against ctx.trust; `glassbox verify` passes one backed by a worker thread
 * (src/trust/judge-thread.ts) that loads the X.509 library and the policy
 * while the artifacts are being hashed. Either way the verdict is the same.
 * A promise that rejects is an internal failure (never a rejection code).
 */
export interface SignerJudge {
  /** judgeSigners of the manifest bytes and signature pairs against the device's trust policy at `at`. */
  signers(manifestBytes: Buffer, entries: readonly SignatureEntry[], at: Date): Promise<SignersJudgement>;
  /**
   * Trust rotation: the bytes of a `trust` artifact loaded as a policy
   * (loadTrustAnchors) and the same signers judged against it; `invalid`
   * (the GlassboxError's message) when they are not a valid policy.
   */
  rotation(policyBytes: Buffer, manifestBytes: Buffer, entries: readonly SignatureEntry[], at: Date): Promise<RotationJudgement>;
}

export type RotationJudgement = { readonly ok: true; readonly policySha256: string; readonly judgement: SignersJudgement } | { readonly ok: false; readonly invalid: string };

/** A VerifyContext whose signers are judged by `judge` instead of against `trust` in this thread. */
export type JudgedVerifyContext = Omit<VerifyContext, 'trust'> & { readonly judge: SignerJudge };

/**
 * Where artifact bytes go while they stream. Verification alone passes no
 * sink; install passes one that writes into the inactive slot. The verifier
 * calls begin() only after manifest, signatures, expiry, hardware and
 * rollback have all been accepted, and for each artifact in manifest order.
 * A writer is always ended with exactly one of finish() (size and digest
 * matched) or abort() (anything else).
 */
export interface ArtifactSink {
  begin(artifact: ManifestArtifact, manifest: Manifest): Promise<ArtifactWriter>;
}
export interface ArtifactWriter {
  /** `chunk` is valid only until the returned promise resolves (the reader reuses its buffers): copy it to keep it. */
  write(chunk: Buffer): Promise<void>;
  finish(): Promise<void>;
  abort(): Promise<void>;
}

export interface ManifestSummary {
  readonly sha256: string;
  readonly product: string;
  readonly version: string;
  readonly securityVersion: number;
  readonly hardware: readonly string[];
  readonly released: string;
  readonly expires: string;
}

export interface ArtifactReport {
  readonly name: string;
  readonly role: string;
  readonly size: number;
  readonly sha256: string;
  /** 'ok' when size and digest matched; otherwise the code that stopped it, or 'not-reached'. */
  readonly outcome: 'ok' | 'not-reached' | RejectionCode;
}

export interface VerifyReport {
  readonly ok: boolean;
  readonly code: RejectionCode | null;
  readonly reason: string;
  /** null when the manifest itself could not be read. */
  readonly manifest: ManifestSummary | null;
  readonly signers: readonly SignerReport[];
  /** The trust policy's threshold and the distinct valid signer keys counted; null / 0 when the signers were not judged. */
  readonly threshold: number | null;
  readonly distinctValidSigners: number;
  readonly provenance: { readonly sourceRepository: string; readonly sourceCommit: string; readonly builder: string } | null;
  readonly artifacts: readonly ArtifactReport[];
  /** 'skipped' when no hardware model was given. */
  readonly hardwareCheck: 'matched' | 'skipped' | 'mismatch' | 'not-reached';
  /** The provenance statement checked against the manifest (checkProvenance): a mismatch is MANIFEST_INVALID. */
  readonly provenanceCheck: 'matched' | 'mismatch' | 'not-reached';
  readonly at: string;
  readonly securityFloor: number;
  /** Present when ok: the parsed manifest and its exact bytes (for install and telemetry). */
  readonly manifestObject?: Manifest;
  readonly manifestBytes?: Buffer;
  /** Present when ok: the signature pairs judged (index order, each pair complete), so an installer can store them without reading the bundle again. */
  readonly signatures?: readonly SignatureEntry[];
  /** Present when ok and the bundle carried a `trust` artifact that met both thresholds. */
  readonly newTrustPolicy?: Buffer;
  /** Present when a `trust` artifact's digest matched and it was judged as a policy: the signers judged against the NEW policy. */
  readonly trustRotation?: TrustRotationReport;
}

export interface TrustRotationReport {
  readonly artifact: string;
  /** sha256 of the new policy file's bytes. */
  readonly policySha256: string;
  readonly threshold: number;
  readonly distinctValid: number;
  readonly signers: readonly SignerReport[];
}
