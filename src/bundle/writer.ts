/**
 * Writes firmware bundles (bundle-v1 section 1) and adds signatures to them.
 *
 *   manifest.json
 *   signatures/1.sig, signatures/1.pem, signatures/2.sig, ...
 *   artifacts/<name> ...            (manifest order)
 *
 * Output is deterministic: the same manifest, signatures and artifact bytes
 * give the same bundle bytes (ustar headers, uid/gid 0, mode 0644, no owner
 * names, every mtime = the manifest's `released`). So signing one signer at
 * a time gives exactly the bundle that writing all signatures at once would.
 * Artifacts are streamed, never held in memory, and hashed as they pass: a
 * bundle whose artifacts disagree with its manifest is never produced.
 * Files are written through a temporary file and renamed, so a failure
 * never leaves a half bundle and never touches the input.
 *
 * Reading (addSignature) uses the verifier's strict tar reader and layout
 * rules, so the writer refuses exactly what a recorder would refuse.
 */
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import { X509Certificate } from 'node:crypto';
import { GlassboxError, IoError } from '../errors.js';
import { BundleRejected } from './codes.js';
import type { Manifest, ManifestArtifact } from '../manifest/types.js';
import { parseManifest } from '../manifest/parse.js';
import { spkiSha256 } from '../trust/fingerprint.js';
import type { Signer } from '../pki/signer.js';
import { BundleLayout, CHAIN_PEM_MAX_BYTES, MAX_SIGNERS, SIGNATURE_MAX_BYTES, type EntryHeader, type Rejection } from './layout.js';
import { readTar, type TarEvent } from './reader.js';
import { STREAM_CHUNK, TarFileWriter, fileChunks, writeAtomically } from './writer-tar.js';

export { MAX_SIGNERS };

export interface BundleSignature {
  /** Raw signature over the exact manifest bytes (DER for ECDSA). */
  readonly sig: Buffer;
  /** Signer chain in PEM: leaf first, then intermediates, never the root. */
  readonly chainPem: Buffer | string;
}

export interface BundleArtifactFile {
  /** The manifest artifact name; the entry is `artifacts/<name>`. */
  readonly name: string;
  /** Where its bytes are on disk. */
  readonly path: string;
}

export interface WriteBundleInput {
  readonly manifestBytes: Buffer;
  readonly signatures: readonly BundleSignature[];
  readonly artifacts: readonly BundleArtifactFile[];
}

export interface WriteBundleResult {
  readonly path: string;
  /** Size of the bundle file. */
  readonly bytes: number;
  readonly signatures: number;
  readonly artifacts: number;
  /** sha256 hex of the manifest bytes (what signers sign). */
  readonly manifestSha256: string;
}

export interface AddSignatureResult extends WriteBundleResult {
  /** 1-based number of the pair just added (signatures/<index>.sig). */
  readonly index: number;
  /** sha256 hex of the new signer's SubjectPublicKeyInfo DER. */
  readonly spkiSha256: string;
  /** Leaf subject of the new signer. */
  readonly subject: string;
}

/** What addSignature needs of a signer (src/pki/signer.ts); a PKCS #11 signer only has to provide these two. */
export type BundleSigner = Pick<Signer, 'chainPem' | 'sign'>;

export type WriteRefusalCode = 'ALREADY_SIGNED' | 'TOO_MANY_SIGNERS' | 'SIGNER_CHAIN';

/** The writer refused for a reason other than a fault of the input bundle. Exit 1. */
export class BundleWriteRefused extends GlassboxError {
  declare readonly code: WriteRefusalCode;
  constructor(code: WriteRefusalCode, message: string, options: { cause?: unknown } = {}) {
    super(code, message, { ...options, exitCode: 1 });
  }
}

function checkSignatures(signatures: readonly BundleSignature[]): void {
  if (signatures.length > MAX_SIGNERS) {
    throw new BundleWriteRefused('TOO_MANY_SIGNERS', `${signatures.length} signatures given; a bundle holds at most ${MAX_SIGNERS}`);
  }
  for (const [i, s] of signatures.entries()) {
    if (s.sig.length === 0 || s.sig.length > SIGNATURE_MAX_BYTES) {
      throw new BundleRejected('BUNDLE_FORMAT', `signature ${i + 1} is ${s.sig.length} bytes (expected 1..${SIGNATURE_MAX_BYTES})`);
    }
    const chainLength = Buffer.byteLength(s.chainPem);
    if (chainLength === 0 || chainLength > CHAIN_PEM_MAX_BYTES) {
      throw new BundleRejected('BUNDLE_FORMAT', `certificate chain ${i + 1} is ${chainLength} bytes (expected 1..${CHAIN_PEM_MAX_BYTES})`);
    }
  }
}

function checkDigest(artifact: ManifestArtifact, digest: string): void {
  if (digest !== artifact.sha256) {
    throw new BundleRejected('ARTIFACT_DIGEST', `artifact ${artifact.name}: sha256 ${digest} differs from the manifest's ${artifact.sha256}`);
  }
}

function sha256Hex(data: Buffer): string {
  return createHash('sha256').update(data).digest('hex');
}

/** The `released` instant, which becomes every entry's mtime. */
function releasedOf(manifest: Manifest): Date {
  return new Date(manifest.released);
}

async function writeHead(tar: TarFileWriter, manifestBytes: Buffer, signatures: readonly BundleSignature[]): Promise<void> {
  await tar.addBuffer('manifest.json', manifestBytes);
  for (const [i, s] of signatures.entries()) {
    await tar.addBuffer(`signatures/${i + 1}.sig`, s.sig);
    await tar.addBuffer(`signatures/${i + 1}.pem`, Buffer.from(s.chainPem));
  }
}

/**
 * Writes a complete bundle at `outPath` (atomically). The manifest must be
 * valid (schema, canonical form); `artifacts` must name exactly the
 * manifest's artifacts in manifest order, each file with the manifest's size
 * and sha256 (checked while streaming). Zero signatures is allowed: an
 * unsigned bundle has a valid layout and is rejected by the verifier with
 * THRESHOLD_NOT_MET until signed.
 */
export async function writeBundle(outPath: string, input: WriteBundleInput): Promise<WriteBundleResult> {
  const manifest = parseManifest(input.manifestBytes);
  checkSignatures(input.signatures);
  const listed = manifest.artifacts.map((a) => a.name);
  const given = input.artifacts.map((a) => a.name);
  for (const [i, name] of listed.entries()) {
    if (given[i] !== name) {
      const code = given.includes(name) ? 'ARTIFACT_UNEXPECTED' : 'ARTIFACT_MISSING';
      throw new BundleRejected(code, `artifact files must be given in manifest order (${listed.join(', ')}); got ${given.join(', ') || 'none'}`);
    }
  }
  if (given.length > listed.length) {
    throw new BundleRejected('ARTIFACT_UNEXPECTED', `artifact ${given[listed.length]} is not listed in the manifest`);
  }
  for (const [i, a] of manifest.artifacts.entries()) {
    const file = input.artifacts[i]!;
    let st;
    try {
      st = await stat(file.path);
    } catch (err) {
      throw new IoError(`artifact ${a.name}: cannot read ${file.path}: ${(err as Error).message}`, { cause: err });
    }
    if (!st.isFile()) throw new IoError(`artifact ${a.name}: ${file.path} is not a regular file`);
    if (st.size !== a.size) {
      throw new BundleRejected('ARTIFACT_SIZE', `artifact ${a.name}: ${file.path} is ${st.size} bytes, the manifest says ${a.size}`);
    }
  }

  await writeAtomically(outPath, async (tmp) => {
    const tar = new TarFileWriter(tmp, releasedOf(manifest));
    try {
      await writeHead(tar, input.manifestBytes, input.signatures);
      for (const [i, a] of manifest.artifacts.entries()) {
        const hash = createHash('sha256');
        await tar.addStream(`artifacts/${a.name}`, a.size, fileChunks(input.artifacts[i]!.path, a.size), (c) => hash.update(c));
        checkDigest(a, hash.digest('hex'));
      }
      await tar.finish();
    } catch (err) {
      await tar.abort();
      throw err;
    }
  });
  return {
    path: outPath,
    bytes: (await stat(outPath)).size,
    signatures: input.signatures.length,
    artifacts: manifest.artifacts.length,
    manifestSha256: sha256Hex(input.manifestBytes),
  };
}

/** The leaf (first certificate of the PEM), or a SIGNER_CHAIN refusal naming `what`. */
export function leafOf(chainPem: Buffer | string, what: string): X509Certificate {
  try {
    return new X509Certificate(chainPem);
  } catch (err) {
    throw new BundleWriteRefused('SIGNER_CHAIN', `${what}: the certificate chain does not start with a readable PEM certificate (${(err as Error).message})`, {
      cause: err,
    });
  }
}

/** Pulls tar events, turning a format fault into BUNDLE_FORMAT. */
class EventCursor {
  readonly #events: AsyncGenerator<TarEvent, void, void>;
  constructor(events: AsyncGenerator<TarEvent, void, void>) {
    this.#events = events;
  }

  async next(): Promise<Exclude<TarEvent, { kind: 'format' }>> {
    const r = await this.#events.next();
    if (r.done) throw new BundleRejected('BUNDLE_FORMAT', 'the archive ended unexpectedly');
    if (r.value.kind === 'format') throw new BundleRejected('BUNDLE_FORMAT', r.value.reason);
    return r.value;
  }

  /** The current entry's data, up to its end. */
  async *body(): AsyncGenerator<Buffer> {
    for (;;) {
      const e = await this.next();
      if (e.kind === 'entry-end') return;
      if (e.kind !== 'data') throw new BundleRejected('BUNDLE_FORMAT', `unexpected ${e.kind} inside an entry`);
      yield e.chunk;
    }
  }

  async bodyBytes(): Promise<Buffer> {
    const parts: Buffer[] = [];
    for await (const c of this.body()) parts.push(Buffer.from(c));
    return Buffer.concat(parts);
  }

  async close(): Promise<void> {
    await this.#events.return(undefined);
  }
}

/** Throws a layout rejection as BundleRejected; passes anything else through. */
function judge<T extends { readonly kind: string }>(step: T): Exclude<T, Rejection> {
  if (step.kind === 'reject') {
    const r = step as unknown as Rejection;
    throw new BundleRejected(r.code, r.reason);
  }
  return step as Exclude<T, Rejection>;
}

/**
 * Adds one signature to an existing bundle: reads `inPath` once, as a
 * stream, with the verifier's layout rules (manifest first, complete pairs,
 * regular files only, artifacts in manifest order); checks the manifest
 * (schema, canonical form); signs the manifest bytes with `signer`; and
 * writes a new bundle to `outPath` (may equal `inPath`) with the new pair
 * after the existing ones and before the first artifact. Artifacts are
 * copied through unchanged and re-hashed on the way: a bundle whose
 * artifacts disagree with its manifest is not signed. Refuses when the
 * signer's key (same SPKI sha256) already signed, or 16 signers already did.
 * Existing signatures are not judged here (that needs the trust policy):
 * run `glassbox verify` for that.
 */
export async function addSignature(inPath: string, outPath: string, signer: BundleSigner): Promise<AddSignatureResult> {
  const leaf = leafOf(signer.chainPem, 'the new signer');
  const newSpki = spkiSha256(leaf);
  try {
    const st = await stat(inPath);
    if (!st.isFile()) throw new Error('not a regular file');
  } catch (err) {
    throw new IoError(`cannot read bundle ${inPath}: ${(err as Error).message}`, { cause: err });
  }

  let result: Omit<AddSignatureResult, 'bytes'> | undefined;
  await writeAtomically(outPath, async (tmp) => {
    const cursor = new EventCursor(readTar(createReadStream(inPath, { highWaterMark: STREAM_CHUNK })));
    const layout = new BundleLayout();
    let tar: TarFileWriter | undefined;
    try {
      // 1. manifest.json
      let ev = await cursor.next();
      if (ev.kind !== 'entry') throw new BundleRejected('BUNDLE_FORMAT', 'the archive holds no entries (manifest.json must be the first)');
      judge(layout.entry(ev as EntryHeader));
      const manifestBytes = await cursor.bodyBytes();
      const manifest = parseManifest(manifestBytes);
      layout.setManifestArtifacts(manifest.artifacts);

      // 2. existing signature pairs, up to the first artifact
      const pairs: { sig?: Buffer; chainPem?: Buffer }[] = [];
      for (;;) {
        ev = await cursor.next();
        if (ev.kind !== 'entry') break;
        const step = judge(layout.entry(ev as EntryHeader));
        if (step.kind !== 'signature') break;
        const body = await cursor.bodyBytes();
        if (step.part === 'sig') pairs.push({ sig: body });
        else pairs[step.index - 1]!.chainPem = body;
      }
      if (pairs.length >= MAX_SIGNERS) {
        throw new BundleWriteRefused('TOO_MANY_SIGNERS', `the bundle already has ${pairs.length} signatures, the most a bundle may hold`);
      }
      for (const [i, p] of pairs.entries()) {
        let existing: string | undefined;
        try {
          existing = spkiSha256(new X509Certificate(p.chainPem!));
        } catch {
          existing = undefined; // unreadable: the verifier will judge it; it cannot be this key
        }
        if (existing === newSpki) {
          throw new BundleWriteRefused('ALREADY_SIGNED', `this key (SPKI sha256 ${newSpki}) already signed the bundle as signer ${i + 1}`);
        }
      }

      // 3. sign, then write the head of the new bundle
      const signature = await signer.sign(manifestBytes);
      const signatures: BundleSignature[] = [...pairs.map((p) => ({ sig: p.sig!, chainPem: p.chainPem! })), { sig: signature, chainPem: signer.chainPem }];
      checkSignatures(signatures);
      tar = new TarFileWriter(tmp, releasedOf(manifest));
      await writeHead(tar, manifestBytes, signatures);

      // 4. artifacts, copied through and re-hashed
      while (ev.kind === 'entry') {
        const step = judge(layout.entry(ev as EntryHeader));
        if (step.kind !== 'artifact') throw new BundleRejected('BUNDLE_FORMAT', `unexpected entry ${ev.path} among the artifacts`);
        const { artifact } = judge(layout.artifact(step.name, ev.size));
        const hash = createHash('sha256');
        await tar.addStream(ev.path, ev.size, cursor.body(), (c) => hash.update(c));
        checkDigest(artifact, hash.digest('hex'));
        ev = await cursor.next();
      }
      if (ev.kind !== 'end-of-archive') throw new BundleRejected('BUNDLE_FORMAT', `unexpected ${ev.kind} between entries`);
      judge(layout.end());
      const done = await cursor.next();
      if (done.kind !== 'done') throw new BundleRejected('BUNDLE_FORMAT', `unexpected ${done.kind} after the end of the archive`);
      await tar.finish();
      result = {
        path: outPath,
        signatures: signatures.length,
        artifacts: manifest.artifacts.length,
        manifestSha256: sha256Hex(manifestBytes),
        index: signatures.length,
        spkiSha256: newSpki,
        subject: leaf.subject.split('\n').join(', '),
      };
    } catch (err) {
      await tar?.abort();
      throw err;
    } finally {
      await cursor.close();
    }
  });
  return { ...result!, bytes: (await stat(outPath)).size };
}
