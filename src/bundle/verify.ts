/**
 * The streaming bundle verifier (bundle-v1 sections 1, 3 and 5): one pass
 * over the archive, a short pipeline of named steps over what it reads.
 *
 *   manifest.json  buffered (≤ 1 MiB) → parseManifest
 *   signatures     buffered in pairs (≤ 16 × (4 KiB + 64 KiB))
 *   first artifact header (or end of archive):
 *                  judgeSigners → MANIFEST_EXPIRED → HARDWARE_MISMATCH → ROLLBACK
 *   each artifact  matched against the manifest, then streamed: hashed as it
 *                  passes and written to the sink if one is given; `trust`
 *                  and `provenance` artifacts are also held (≤ 1 MiB) and
 *                  checked once their digest matched
 *   end of archive ARTIFACT_MISSING, then the rest of the input must be zeros
 *
 * The outcome is ONE code, the first in reading order (the reader, the
 * layout and the steps above run in exactly that order; where several
 * rules apply at one point, they are checked in REJECTION_CODES order).
 * A judged bundle never makes this throw: the result is a VerifyReport with
 * ok:false. It throws IoError only when the source itself fails, and passes
 * on errors thrown by the sink (the installer's own I/O).
 *
 * The signers are judged by a SignerJudge: in this thread against ctx.trust
 * (verifyBundle with a VerifyContext), or elsewhere (a JudgedVerifyContext;
 * `glassbox verify` judges in a worker thread, which loads the X.509 library
 * and the policy while this thread hashes). The judge point (first artifact
 * header, or the end of the archive) STARTS the judgement; reading, matching
 * and hashing go on while it runs (and stop at the next event once it is
 * known to have failed), but nothing that follows the judge point decides
 * the outcome before the judgement is in: a later fault (format,
 * layout, size, digest, provenance, a source read error) first waits for it,
 * and the judgement's fault wins, with the report as if reading had stopped
 * at the judge point. The sink is given nothing, and a trust rotation is not
 * judged, before the judgement accepted the signers.
 *
 * Choices where the spec is silent:
 *   - Trust rotation: the `trust` artifact is parsed with loadTrustAnchors
 *     and the same signatures are judged again against the NEW policy at the
 *     same time. The bundle is accepted only when both judgements meet their
 *     threshold; otherwise the code is the new judgement's code
 *     (SIGNATURE_INVALID / SIGNER_UNTRUSTED / THRESHOLD_NOT_MET). A trust
 *     artifact that is not a valid policy is THRESHOLD_NOT_MET: its
 *     threshold cannot be met by anyone.
 *   - Provenance: the `provenance` artifact is checked with checkProvenance
 *     once its digest matched (subjects = the other artifacts by sha256,
 *     builder and source commit = the manifest's). A statement that does
 *     not match is MANIFEST_INVALID: section 2 requires the manifest's
 *     provenance artifact to be exactly that statement, so the signed
 *     release is not a valid bundle-v1 release (fail closed; the device
 *     would otherwise report a provenance its own statement contradicts).
 *     ARTIFACT_DIGEST would be wrong: the artifact's bytes are the signed ones.
 *   - A `released` time later than the verification time is not a fault
 *     (a device clock may lag); only `expires` is judged.
 *   - An artifact writer's finish() means that artifact's size and digest
 *     matched; the bundle as a whole is accepted only when the report says
 *     ok. An installer activates nothing before that.
 *   - Data chunks handed to the sink are valid only until its write()
 *     resolves (the file reader reuses its buffers).
 */
import { createHash, type Hash } from 'node:crypto';
import { BundleRejected, type RejectionCode } from './codes.js';
import { BundleLayout, type Rejection } from './layout.js';
import { readFileChunksInline, readTar, type ByteSource } from './reader.js';
import type {
  ArtifactReport,
  ArtifactSink,
  ArtifactWriter,
  JudgedVerifyContext,
  ManifestSummary,
  TrustRotationReport,
  VerifyContext,
  VerifyReport,
} from './types.js';
import { parseManifest } from '../manifest/parse.js';
import type { Manifest, ManifestArtifact } from '../manifest/types.js';
import { checkProvenance, describeProvenanceErrors } from '../release/provenance.js';
import { localJudge } from '../trust/judge.js';
import type { SignatureEntry, SignersJudgement } from '../trust/types.js';

/** Largest `trust` artifact (a trust policy file) the verifier holds in memory. */
export const TRUST_ARTIFACT_MAX_BYTES = 1024 * 1024;
/** Largest `provenance` artifact the verifier holds in memory. */
export const PROVENANCE_ARTIFACT_MAX_BYTES = 1024 * 1024;

/** Ends verification with one code; caught in verifyBundle and turned into the report. */
class Stop {
  constructor(
    readonly code: RejectionCode,
    readonly reason: string,
  ) {}
}

type ArtifactOutcome = ArtifactReport['outcome'];

/** What the data of the current entry goes into. */
type Consumer =
  | { readonly kind: 'buffer'; readonly part: 'manifest' | 'sig' | 'pem'; readonly index: number; readonly bytes: Buffer; filled: number }
  | {
      readonly kind: 'artifact';
      readonly artifact: ManifestArtifact;
      readonly hash: Hash;
      readonly writer: ArtifactWriter | null;
      /** Held copy for trust/provenance artifacts. */
      readonly held: Buffer | null;
      received: number;
    };

function stopWith(r: Rejection): never {
  throw new Stop(r.code, r.reason);
}

class Verification {
  readonly #ctx: JudgedVerifyContext;
  readonly #sink: ArtifactSink | undefined;
  readonly #layout = new BundleLayout();
  #consumer: Consumer | null = null;
  #manifestBytes: Buffer | null = null;
  #manifestSha256 = '';
  #manifest: Manifest | null = null;
  readonly #pairs = new Map<number, { sig?: Buffer; pem?: Buffer }>();
  /** The signature pairs, collected once when the signers are judged. */
  #signatures: SignatureEntry[] = [];
  #judgement: SignersJudgement | null = null;
  /** The judge point's checks (signers, expiry, hardware, rollback), started once: their Stop, or null when all passed. */
  #judged: Promise<Stop | null> | null = null;
  /** Set once the judgement is known to have failed: reading stops at the next event. */
  #judgedFailed = false;
  #hardwareCheck: VerifyReport['hardwareCheck'];
  readonly #outcomes = new Map<string, ArtifactOutcome>();
  #newTrustPolicy: Buffer | undefined;
  #trustRotation: TrustRotationReport | undefined;
  #provenanceCheck: VerifyReport['provenanceCheck'] = 'not-reached';

  constructor(ctx: JudgedVerifyContext, sink: ArtifactSink | undefined) {
    this.#ctx = ctx;
    this.#sink = sink;
    this.#hardwareCheck = ctx.hardware === undefined ? 'skipped' : 'not-reached';
  }

  async run(source: ByteSource): Promise<VerifyReport> {
    try {
      for await (const ev of readTar(source)) {
        if (this.#judgedFailed) await this.#settle();
        switch (ev.kind) {
          case 'entry':
            await this.#entry(ev.path, ev.type, ev.size, ev.linkpath, ev.offset);
            break;
          case 'data': {
            // Only a sink's write is asynchronous: no promise per chunk without one.
            const written = this.#data(ev.chunk);
            if (written) await written;
            break;
          }
          case 'entry-end':
            await this.#entryEnd();
            break;
          case 'end-of-archive':
            await this.#endOfArchive();
            break;
          case 'format':
            throw new Stop('BUNDLE_FORMAT', ev.reason);
          case 'done':
            await this.#settle();
            return this.#report(null, this.#acceptedReason());
        }
      }
      // readTar always ends with 'done' or 'format'.
      throw new Error('tar reader ended without a verdict');
    } catch (caught) {
      const err = await this.#firstInReadingOrder(caught);
      try {
        await this.#abortWriter();
      } catch (abortErr) {
        // The sink failed to abort: its error matters more than a rejection, less than the original failure.
        if (err instanceof Stop) throw abortErr;
      }
      if (err instanceof Stop) return this.#report(err);
      throw err;
    }
  }

  async #entry(path: string, type: string, size: number, linkpath: string, offset: number): Promise<void> {
    const step = this.#layout.entry({ path, type, size, linkpath, offset });
    switch (step.kind) {
      case 'reject':
        return stopWith(step);
      case 'manifest':
        this.#consumer = { kind: 'buffer', part: 'manifest', index: 0, bytes: Buffer.alloc(size), filled: 0 };
        return;
      case 'signature':
        this.#consumer = { kind: 'buffer', part: step.part, index: step.index, bytes: Buffer.alloc(size), filled: 0 };
        return;
      case 'artifact': {
        this.#startJudging();
        const match = this.#layout.artifact(step.name, size);
        if (match.kind === 'reject') {
          if (match.code === 'ARTIFACT_SIZE') this.#outcomes.set(step.name, 'ARTIFACT_SIZE');
          return stopWith(match);
        }
        const { artifact } = match;
        const held = artifact.role === 'trust' || artifact.role === 'provenance' ? Buffer.alloc(artifact.size) : null;
        // Nothing reaches the sink before the signers are accepted.
        if (this.#sink) await this.#settle();
        const writer = this.#sink ? await this.#sink.begin(artifact, this.#manifest as Manifest) : null;
        this.#consumer = { kind: 'artifact', artifact, hash: createHash('sha256'), writer, held, received: 0 };
        return;
      }
    }
  }

  #data(chunk: Buffer): Promise<void> | undefined {
    const c = this.#consumer;
    if (c === null) throw new Error('tar data outside an entry');
    if (c.kind === 'buffer') {
      chunk.copy(c.bytes, c.filled);
      c.filled += chunk.length;
      return undefined;
    }
    // The reader never delivers more than the header's size, which matched the
    // manifest's; the check stays as the last line of the endless-data defence.
    if (c.received + chunk.length > c.artifact.size) {
      this.#outcomes.set(c.artifact.name, 'ARTIFACT_SIZE');
      throw new Stop('ARTIFACT_SIZE', `artifact ${c.artifact.name}: more than the manifest's ${c.artifact.size} bytes`);
    }
    c.hash.update(chunk);
    if (c.held) chunk.copy(c.held, c.received);
    c.received += chunk.length;
    return c.writer?.write(chunk);
  }

  async #entryEnd(): Promise<void> {
    const c = this.#consumer;
    if (c === null) throw new Error('tar entry end outside an entry');
    if (c.kind === 'buffer') {
      this.#consumer = null;
      if (c.part === 'manifest') this.#acceptManifest(c.bytes);
      else this.#pairs.set(c.index, { ...this.#pairs.get(c.index), [c.part]: c.bytes });
      return;
    }
    const { artifact } = c;
    const digest = c.hash.digest('hex');
    if (c.received !== artifact.size) {
      this.#outcomes.set(artifact.name, 'ARTIFACT_SIZE');
      throw new Stop('ARTIFACT_SIZE', `artifact ${artifact.name}: ${c.received} bytes, the manifest says ${artifact.size}`);
    }
    if (digest !== artifact.sha256) {
      this.#outcomes.set(artifact.name, 'ARTIFACT_DIGEST');
      throw new Stop('ARTIFACT_DIGEST', `artifact ${artifact.name}: sha256 ${digest} differs from the manifest's ${artifact.sha256}`);
    }
    if (c.held && artifact.role === 'trust') {
      await this.#settle();
      await this.#rotateTrust(artifact, c.held);
    }
    if (c.held && artifact.role === 'provenance') this.#checkProvenance(artifact, c.held);
    this.#consumer = null;
    this.#outcomes.set(artifact.name, 'ok');
    if (c.writer) await c.writer.finish();
  }

  #acceptManifest(bytes: Buffer): void {
    this.#manifestBytes = bytes;
    this.#manifestSha256 = createHash('sha256').update(bytes).digest('hex');
    let manifest: Manifest;
    try {
      manifest = parseManifest(bytes);
    } catch (err) {
      if (err instanceof BundleRejected) throw new Stop(err.code, err.message);
      throw err;
    }
    // The verifier holds these two in memory; their bound must not depend on another module's rules.
    for (const a of manifest.artifacts) {
      const limit = a.role === 'trust' ? TRUST_ARTIFACT_MAX_BYTES : a.role === 'provenance' ? PROVENANCE_ARTIFACT_MAX_BYTES : Infinity;
      if (a.size > limit) throw new Stop('MANIFEST_INVALID', `manifest.json: the ${a.role} artifact ${a.name} is ${a.size} bytes, over the limit of ${limit}`);
    }
    this.#manifest = manifest;
    this.#layout.setManifestArtifacts(manifest.artifacts);
  }

  #signatureEntries(): SignatureEntry[] {
    return [...this.#pairs.entries()]
      .sort(([a], [b]) => a - b)
      .map(([index, p]) => ({ index, signature: p.sig ?? Buffer.alloc(0), chainPem: p.pem ?? Buffer.alloc(0) }));
  }

  /** The judge point: starts the judgement once (the signatures are all read by now). */
  #startJudging(): void {
    if (this.#judged !== null) return;
    this.#judged = this.#judgeAll();
    // Awaited by #settle or #firstInReadingOrder; this also keeps a failure from counting as unhandled meanwhile.
    this.#judged.then(
      (stop) => void (this.#judgedFailed = stop !== null),
      () => void (this.#judgedFailed = true),
    );
  }

  /** The checks made once the signatures are all read, in table order: the first fault, or null. */
  async #judgeAll(): Promise<Stop | null> {
    const manifest = this.#manifest;
    const bytes = this.#manifestBytes;
    if (manifest === null || bytes === null) throw new Error('judging signers before the manifest');
    const ctx = this.#ctx;
    this.#signatures = this.#signatureEntries();
    const judgement = await this.#ctx.judge.signers(bytes, this.#signatures, ctx.at);
    this.#judgement = judgement;
    if (judgement.code !== null) return new Stop(judgement.code, judgement.reason ?? judgement.code);
    if (ctx.at.getTime() > Date.parse(manifest.expires)) {
      return new Stop('MANIFEST_EXPIRED', `the manifest expired at ${manifest.expires}; verification time is ${ctx.at.toISOString()}`);
    }
    if (ctx.hardware !== undefined) {
      const fits = manifest.hardware.includes(ctx.hardware);
      this.#hardwareCheck = fits ? 'matched' : 'mismatch';
      if (!fits) {
        return new Stop('HARDWARE_MISMATCH', `hardware model ${JSON.stringify(ctx.hardware)} is not among the manifest's ${JSON.stringify(manifest.hardware)}`);
      }
    }
    if (manifest.securityVersion < ctx.securityFloor) {
      return new Stop('ROLLBACK', `securityVersion ${manifest.securityVersion} is below this device's floor ${ctx.securityFloor}`);
    }
    return null;
  }

  /** Waits for the judge point's checks; throws their Stop. */
  async #settle(): Promise<void> {
    if (this.#judged === null) throw new Error('verdict before the judge point');
    const stop = await this.#judged;
    if (stop !== null) throw stop;
  }

  /**
   * What ends the verification when `err` was thrown: a fault met after the
   * judge point yields to the judgement's fault (or its failure), which came
   * first in reading order; what was recorded past the judge point is then
   * forgotten, as if reading had stopped there.
   */
  async #firstInReadingOrder(err: unknown): Promise<unknown> {
    if (this.#judged === null) return err;
    let first: Stop | null;
    try {
      first = await this.#judged;
    } catch (judgeErr) {
      return judgeErr;
    }
    if (first === null) return err;
    this.#outcomes.clear();
    this.#provenanceCheck = 'not-reached';
    return first;
  }

  async #endOfArchive(): Promise<void> {
    const end = this.#layout.end();
    if (end.kind === 'reject' && end.code === 'BUNDLE_FORMAT') stopWith(end);
    this.#startJudging();
    await this.#settle();
    if (end.kind === 'reject') stopWith(end);
  }

  /** Trust rotation: the same signatures must also meet the NEW policy's threshold. */
  async #rotateTrust(artifact: ManifestArtifact, bytes: Buffer): Promise<void> {
    const rotation = await this.#ctx.judge.rotation(bytes, this.#manifestBytes as Buffer, this.#signatures, this.#ctx.at);
    if (!rotation.ok) {
      this.#outcomes.set(artifact.name, 'THRESHOLD_NOT_MET');
      throw new Stop('THRESHOLD_NOT_MET', `trust artifact ${artifact.name} is not a valid trust policy, so its threshold cannot be met: ${rotation.invalid}`);
    }
    const { judgement } = rotation;
    this.#trustRotation = {
      artifact: artifact.name,
      policySha256: rotation.policySha256,
      threshold: judgement.threshold,
      distinctValid: judgement.distinctValid,
      signers: judgement.signers,
    };
    if (judgement.code !== null) {
      this.#outcomes.set(artifact.name, judgement.code);
      throw new Stop(judgement.code, `new trust policy in artifact ${artifact.name}: ${judgement.reason ?? judgement.code}`);
    }
    this.#newTrustPolicy = bytes;
  }

  /** The provenance statement must describe this manifest's artifacts, builder and commit (section 2). */
  #checkProvenance(artifact: ManifestArtifact, bytes: Buffer): void {
    const check = checkProvenance(bytes, this.#manifest as Manifest);
    if (check.ok) {
      this.#provenanceCheck = 'matched';
      return;
    }
    this.#provenanceCheck = 'mismatch';
    this.#outcomes.set(artifact.name, 'MANIFEST_INVALID');
    throw new Stop('MANIFEST_INVALID', `provenance artifact ${artifact.name} does not match the signed manifest: ${describeProvenanceErrors(check.errors)}`);
  }

  async #abortWriter(): Promise<void> {
    const c = this.#consumer;
    this.#consumer = null;
    if (c?.kind === 'artifact' && c.writer) {
      if (!this.#outcomes.has(c.artifact.name)) this.#outcomes.set(c.artifact.name, 'not-reached');
      await c.writer.abort();
    }
  }

  #acceptedReason(): string {
    const j = this.#judgement as SignersJudgement;
    const rotation = this.#trustRotation ? `; new trust policy ${this.#trustRotation.policySha256.slice(0, 12)}… met by ${this.#trustRotation.distinctValid} of ${this.#trustRotation.threshold}` : '';
    return `${j.distinctValid} distinct valid signer(s), threshold ${j.threshold}${rotation}`;
  }

  #report(stop: Stop | null, okReason = ''): VerifyReport {
    const m = this.#manifest;
    const ctx = this.#ctx;
    const summary: ManifestSummary | null = m && {
      sha256: this.#manifestSha256,
      product: m.product,
      version: m.version,
      securityVersion: m.securityVersion,
      hardware: m.hardware,
      released: m.released,
      expires: m.expires,
    };
    const report: VerifyReport = {
      ok: stop === null,
      code: stop?.code ?? null,
      reason: stop?.reason ?? okReason,
      manifest: summary,
      signers: this.#judgement?.signers ?? [],
      threshold: this.#judgement?.threshold ?? null,
      distinctValidSigners: this.#judgement?.distinctValid ?? 0,
      provenance: m && { sourceRepository: m.provenance.sourceRepository, sourceCommit: m.provenance.sourceCommit, builder: m.provenance.builder },
      artifacts: (m?.artifacts ?? []).map((a) => ({ name: a.name, role: a.role, size: a.size, sha256: a.sha256, outcome: this.#outcomes.get(a.name) ?? 'not-reached' })),
      hardwareCheck: this.#hardwareCheck,
      provenanceCheck: this.#provenanceCheck,
      at: ctx.at.toISOString(),
      securityFloor: ctx.securityFloor,
      ...(this.#trustRotation ? { trustRotation: this.#trustRotation } : {}),
    };
    if (stop !== null || m === null || this.#manifestBytes === null) return report;
    return {
      ...report,
      manifestObject: m,
      manifestBytes: this.#manifestBytes,
      signatures: this.#signatures,
      ...(this.#newTrustPolicy ? { newTrustPolicy: this.#newTrustPolicy } : {}),
    };
  }
}

/** The context with its judge: ctx.judge as given, or one judging against ctx.trust in this thread. */
function checkContext(ctx: VerifyContext | JudgedVerifyContext): JudgedVerifyContext {
  if (!ctx) throw new TypeError('verifyBundle: no context');
  let judged: JudgedVerifyContext;
  if ('judge' in ctx) {
    // The judge fails closed itself (the judge thread refuses a policy without roots before it judges).
    if (!ctx.judge || typeof ctx.judge.signers !== 'function') throw new TypeError('verifyBundle: ctx.judge is not a SignerJudge');
    judged = ctx;
  } else {
    if (!ctx.trust || !Array.isArray(ctx.trust.roots) || ctx.trust.roots.length === 0) {
      throw new TypeError('verifyBundle: no trust anchors (fail closed: there is no unverified mode)');
    }
    const { trust, ...rest } = ctx;
    judged = { ...rest, judge: localJudge(trust) };
  }
  if (!(judged.at instanceof Date) || Number.isNaN(judged.at.getTime())) throw new TypeError('verifyBundle: ctx.at is not a valid Date');
  if (!Number.isSafeInteger(judged.securityFloor) || judged.securityFloor < 0) throw new TypeError('verifyBundle: ctx.securityFloor must be a non-negative integer');
  return judged;
}

/**
 * Verifies a bundle read once from `source`. Returns the report (ok, or one
 * rejection code); throws IoError only when the source fails, and rethrows
 * errors of the sink and failures of ctx.judge. See the module comment for
 * the order of checks.
 */
export async function verifyBundle(source: ByteSource, ctx: VerifyContext | JudgedVerifyContext, sink?: ArtifactSink): Promise<VerifyReport> {
  return new Verification(checkContext(ctx), sink).run(source);
}

/**
 * verifyBundle over a file, read on this thread (readFileChunksInline: one
 * reused VERIFY_CHUNK_BYTES buffer, the event loop runs every 16 MiB): the
 * fast path for `glassbox verify`. Long-running processes that must not
 * hold their thread for 16 MiB of reading pass readFileChunks to verifyBundle.
 */
export async function verifyBundleFile(path: string, ctx: VerifyContext | JudgedVerifyContext): Promise<VerifyReport> {
  return new Verification(checkContext(ctx), undefined).run(readFileChunksInline(path));
}
