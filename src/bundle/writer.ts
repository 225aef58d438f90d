/**
 * Writes firmware bundles (bundle-v1 section 1) and adds signatures to them.
 *
 *   manifest.json
 *   signatures/1.sig, signatures/1.pem, signatures/2.sig, ...
 *   artifacts/<name> ...            (manifest order)
 *
 * Output is deterministic: the same manifest, signatures and artifact bytes
 * give the same bundle bytes (ustar headers, uid/gid 0, mode 0644, no owner
 * names, every mtime = the manifest's `released`). Artifacts are streamed,
 * never held in memory, and hashed as they pass: a bundle whose artifacts
 * do not match its manifest is never produced. Files are written through a
 * temporary file and renamed, so a failure never leaves a half bundle.
 */
import { createHash, X509Certificate } from 'node:crypto';
import { stat } from 'node:fs/promises';
import { GlassboxError, IoError } from '../errors.js';
import { BundleRejected } from './codes.js';
import type { ManifestArtifact } from '../manifest/types.js';
import { MANIFEST_MAX_BYTES } from '../manifest/types.js';
import { TarFileWriter, fileChunks, readTarEntries, writeAtomically, type TarInEntry } from './writer-tar.js';

/** Section 1: no more than 16 signers. */
export const MAX_SIGNERS = 16;
/** Upper bounds on what the writer accepts for one signature / chain entry. */
export const MAX_SIGNATURE_BYTES = 64 * 1024;
export const MAX_CHAIN_BYTES = 256 * 1024;

const ARTIFACT_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;

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
  readonly bytes: number;
  readonly signatures: number;
  readonly artifacts: number;
  /** sha256 hex of the manifest bytes (what signers sign). */
  readonly manifestSha256: string;
}

/** What addSignature needs from a signer: the pki Signer interface satisfies it. */
export interface BundleSigner {
  /** PEM chain, leaf first, then intermediates. */
  readonly chainPem: string;
  sign(data: Buffer): Promise<Buffer>;
}

/** The writer refused to produce a bundle for a reason other than the input bundle's own faults. Exit 1. */
export class BundleWriteRefused extends GlassboxError {
  constructor(code: 'ALREADY_SIGNED' | 'TOO_MANY_SIGNERS' | 'SIGNER_CHAIN', message: string, options: { cause?: unknown } = {}) {
    super(code, message, { ...options, exitCode: 1 });
  }
}

/** The parts of the manifest the writer itself relies on. */
interface ManifestLayout {
  readonly released: Date;
  readonly artifacts: readonly ManifestArtifact[];
}

function readLayout(manifestBytes: Buffer): ManifestLayout {
  if (manifestBytes.length > MANIFEST_MAX_BYTES) {
    throw new BundleRejected('MANIFEST_INVALID', `manifest.json is ${manifestBytes.length} bytes, over the 1 MiB limit`);
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(manifestBytes.toString('utf8'));
  } catch (err) {
    throw new BundleRejected('MANIFEST_INVALID', `manifest.json is not JSON: ${(err as Error).message}`, { cause: err });
  }
  const m = parsed as { released?: unknown; artifacts?: unknown };
  const released = typeof m.released === 'string' ? new Date(m.released) : new Date(NaN);
  if (Number.isNaN(released.getTime())) {
    throw new BundleRejected('MANIFEST_INVALID', 'manifest.json has no valid `released` timestamp');
  }
  if (!Array.isArray(m.artifacts) || m.artifacts.length === 0) {
    throw new BundleRejected('MANIFEST_INVALID', 'manifest.json has no `artifacts` list');
  }
  const artifacts = m.artifacts as ManifestArtifact[];
  const seen = new Set<string>();
  for (const [i, a] of artifacts.entries()) {
    if (typeof a?.name !== 'string' || !ARTIFACT_NAME.test(a.name)) {
      throw new BundleRejected('MANIFEST_INVALID', `manifest artifact #${i + 1} has an invalid name ${JSON.stringify(a?.name)}`);
    }
    if (seen.has(a.name)) throw new BundleRejected('MANIFEST_INVALID', `manifest lists artifact ${a.name} twice`);
    seen.add(a.name);
    if (!Number.isSafeInteger(a.size) || a.size < 0 || typeof a.sha256 !== 'string' || !/^[0-9a-f]{64}$/.test(a.sha256)) {
      throw new BundleRejected('MANIFEST_INVALID', `manifest artifact ${a.name} has an invalid size or sha256`);
    }
  }
  return { released, artifacts };
}

function checkSignatures(signatures: readonly BundleSignature[]): void {
  if (signatures.length > MAX_SIGNERS) {
    throw new BundleWriteRefused('TOO_MANY_SIGNERS', `${signatures.length} signatures given; a bundle holds at most ${MAX_SIGNERS}`);
  }
  for (const [i, s] of signatures.entries()) {
    if (s.sig.length === 0 || s.sig.length > MAX_SIGNATURE_BYTES) {
      throw new BundleRejected('BUNDLE_FORMAT', `signature ${i + 1} is ${s.sig.length} bytes (expected 1..${MAX_SIGNATURE_BYTES})`);
    }
    const chainLength = Buffer.byteLength(s.chainPem);
    if (chainLength === 0 || chainLength > MAX_CHAIN_BYTES) {
      throw new BundleRejected('BUNDLE_FORMAT', `certificate chain ${i + 1} is ${chainLength} bytes (expected 1..${MAX_CHAIN_BYTES})`);
    }
  }
}

/** Raises the rejection for an artifact whose bytes disagree with the manifest. */
function checkDigest(artifact: ManifestArtifact, digest: string): void {
  if (digest !== artifact.sha256) {
    throw new BundleRejected('ARTIFACT_DIGEST', `artifact ${artifact.name}: sha256 ${digest} differs from the manifest's ${artifact.sha256}`);
  }
}

/**
 * Writes a complete bundle at `outPath`. `artifacts` must name exactly the
 * manifest's artifacts in manifest order; each file must have the
 * manifest's size and sha256 (checked while streaming). Zero signatures is
 * allowed: an unsigned bundle has a valid layout and is rejected by the
 * verifier with THRESHOLD_NOT_MET until signed.
 */
export async function writeBundle(outPath: string, input: WriteBundleInput): Promise<WriteBundleResult> {
  const layout = readLayout(input.manifestBytes);
  checkSignatures(input.signatures);
  const listed = layout.artifacts.map((a) => a.name);
  const given = input.artifacts.map((a) => a.name);
  for (const [i, name] of listed.entries()) {
    if (given[i] !== name) {
      const code = given.includes(name) ? 'ARTIFACT_UNEXPECTED' : 'ARTIFACT_MISSING';
      throw new BundleRejected(code, `artifact files must follow the manifest order (${listed.join(', ')}); got ${given.join(', ') || 'none'}`);
    }
  }
  if (given.length > listed.length) {
    throw new BundleRejected('ARTIFACT_UNEXPECTED', `artifact ${given[listed.length]} is not listed in the manifest`);
  }
  const sizes: number[] = [];
  for (const [i, a] of layout.artifacts.entries()) {
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
    sizes.push(st.size);
  }

  await writeAtomically(outPath, async (tmp) => {
    const tar = new TarFileWriter(tmp, layout.released);
    try {
      await tar.addBuffer('manifest.json', input.manifestBytes);
      for (const [i, s] of input.signatures.entries()) {
        await tar.addBuffer(`signatures/${i + 1}.sig`, s.sig);
        await tar.addBuffer(`signatures/${i + 1}.pem`, Buffer.from(s.chainPem));
      }
      for (const [i, a] of layout.artifacts.entries()) {
        const hash = createHash('sha256');
        await tar.addStream(`artifacts/${a.name}`, sizes[i]!, fileChunks(input.artifacts[i]!.path, sizes[i]!), (c) => hash.update(c));
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
    artifacts: layout.artifacts.length,
    manifestSha256: createHash('sha256').update(input.manifestBytes).digest('hex'),
  };
}

/** sha256 hex of the leaf's SubjectPublicKeyInfo DER (the leaf is the first certificate of the PEM). */
export function leafSpkiSha256(chainPem: Buffer | string): string {
  const leaf = new X509Certificate(chainPem);
  const spki = leaf.publicKey.export({ type: 'spki', format: 'der' });
  return createHash('sha256').update(spki).digest('hex');
}

async function readBody(entry: TarInEntry, limit: number): Promise<Buffer> {
  if (entry.size > limit) {
    throw new BundleRejected('BUNDLE_FORMAT', `${entry.path} is ${entry.size} bytes, over the ${limit}-byte limit`);
  }
  const chunks: Buffer[] = [];
  for await (const c of entry.body) chunks.push(c);
  return Buffer.concat(chunks);
}

export interface AddSignatureResult extends WriteBundleResult {
  /** 1-based index of the pair just added. */
  readonly index: number;
  readonly spkiSha256: string;
}

/**
 * Adds one signature to an existing bundle: reads `inPath` as a stream,
 * checks manifest.json comes first and the signature pairs are well formed,
 * signs the manifest bytes with `signer`, and writes a new bundle to
 * `outPath` (which may equal `inPath`) with the new pair after the existing
 * ones and before the first artifact. Artifacts are copied through
 * unchanged and re-hashed on the way: a bundle whose artifacts disagree with
 * its manifest is not signed. Refuses when the signer's key (same SPKI
 * sha256) already signed, or when the bundle already has 16 signers.
 */
export async function addSignature(inPath: string, outPath: string, signer: BundleSigner): Promise<AddSignatureResult> {
  let spkiSha256: string;
  try {
    spkiSha256 = leafSpkiSha256(signer.chainPem);
  } catch (err) {
    throw new BundleWriteRefused('SIGNER_CHAIN', `the signer's certificate chain cannot be parsed: ${(err as Error).message}`, { cause: err });
  }
  try {
    await stat(inPath);
  } catch (err) {
    throw new IoError(`cannot read bundle ${inPath}: ${(err as Error).message}`, { cause: err });
  }

  let result: AddSignatureResult | undefined;
  await writeAtomically(outPath, async (tmp) => {
    const entries = readTarEntries(inPath);
    let tar: TarFileWriter | undefined;
    try {
      const first = await nextEntry(entries);
      if (!first || first.path !== 'manifest.json') {
        throw new BundleRejected('BUNDLE_FORMAT', `the first entry is ${first ? JSON.stringify(first.path) : 'missing'}, not manifest.json`);
      }
      checkRegular(first);
      const manifestBytes = await readBody(first, MANIFEST_MAX_BYTES);
      const layout = readLayout(manifestBytes);

      // Signature pairs, in order, up to the first artifact.
      const pairs: BundleSignature[] = [];
      let entry = await nextEntry(entries);
      while (entry && entry.path.startsWith('signatures/')) {
        checkRegular(entry);
        const k = pairs.length + 1;
        if (entry.path !== `signatures/${k}.sig`) {
          throw new BundleRejected('BUNDLE_FORMAT', `expected signatures/${k}.sig, found ${entry.path}`);
        }
        const sig = await readBody(entry, MAX_SIGNATURE_BYTES);
        const pem = await nextEntry(entries);
        if (!pem || pem.path !== `signatures/${k}.pem`) {
          throw new BundleRejected('BUNDLE_FORMAT', `signatures/${k}.sig is not followed by signatures/${k}.pem`);
        }
        checkRegular(pem);
        pairs.push({ sig, chainPem: await readBody(pem, MAX_CHAIN_BYTES) });
        if (pairs.length > MAX_SIGNERS) throw new BundleRejected('BUNDLE_FORMAT', `more than ${MAX_SIGNERS} signature pairs`);
        entry = await nextEntry(entries);
      }
      if (pairs.length >= MAX_SIGNERS) {
        throw new BundleWriteRefused('TOO_MANY_SIGNERS', `the bundle already has ${pairs.length} signatures, the most a bundle may hold`);
      }
      for (const [i, p] of pairs.entries()) {
        let existing: string | undefined;
        try {
          existing = leafSpkiSha256(p.chainPem);
        } catch {
          existing = undefined; // an unparsable chain is the verifier's to judge; it cannot be this key
        }
        if (existing === spkiSha256) {
          throw new BundleWriteRefused('ALREADY_SIGNED', `this key (SPKI sha256 ${spkiSha256}) already signed the bundle as signer ${i + 1}`);
        }
      }

      const signature = await signer.sign(manifestBytes);
      pairs.push({ sig: signature, chainPem: signer.chainPem });
      checkSignatures(pairs);

      tar = new TarFileWriter(tmp, layout.released);
      await tar.addBuffer('manifest.json', manifestBytes);
      for (const [i, p] of pairs.entries()) {
        await tar.addBuffer(`signatures/${i + 1}.sig`, p.sig);
        await tar.addBuffer(`signatures/${i + 1}.pem`, Buffer.from(p.chainPem));
      }
      for (const a of layout.artifacts) {
        if (!entry) throw new BundleRejected('ARTIFACT_MISSING', `artifact ${a.name} is missing from the bundle`);
        checkRegular(entry);
        if (entry.path !== `artifacts/${a.name}`) {
          const isSig = entry.path.startsWith('signatures/') || entry.path === 'manifest.json';
          throw new BundleRejected(isSig ? 'BUNDLE_FORMAT' : 'ARTIFACT_UNEXPECTED', `expected artifacts/${a.name}, found ${entry.path}`);
        }
        if (entry.size !== a.size) {
          throw new BundleRejected('ARTIFACT_SIZE', `artifact ${a.name} is ${entry.size} bytes in the bundle, the manifest says ${a.size}`);
        }
        const hash = createHash('sha256');
        await tar.addStream(entry.path, entry.size, entry.body, (c) => hash.update(c));
        checkDigest(a, hash.digest('hex'));
        entry = await nextEntry(entries);
      }
      if (entry) {
        throw new BundleRejected('ARTIFACT_UNEXPECTED', `entry ${entry.path} follows the last manifest artifact`);
      }
      await tar.finish();
      result = {
        path: outPath,
        bytes: 0,
        signatures: pairs.length,
        artifacts: layout.artifacts.length,
        manifestSha256: createHash('sha256').update(manifestBytes).digest('hex'),
        index: pairs.length,
        spkiSha256,
      };
    } catch (err) {
      await tar?.abort();
      throw err;
    } finally {
      await entries.return(undefined);
    }
  });
  return { ...result!, bytes: (await stat(outPath)).size };
}

function checkRegular(entry: TarInEntry): void {
  if (entry.type !== 'File') {
    throw new BundleRejected('BUNDLE_FORMAT', `entry ${JSON.stringify(entry.path)} is a ${entry.type}, not a regular file`);
  }
}

async function nextEntry(entries: AsyncGenerator<TarInEntry>): Promise<TarInEntry | undefined> {
  try {
    const r = await entries.next();
    return r.done ? undefined : r.value;
  } catch (err) {
    if (err instanceof GlassboxError) throw err;
    throw new BundleRejected('BUNDLE_FORMAT', `not a readable tar archive: ${(err as Error).message}`, { cause: err });
  }
}
