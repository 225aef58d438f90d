/**
 * The layout rules of bundle-v1 section 1 as a small state machine, fed one
 * tar entry header at a time (PURE: no I/O, no clock).
 *
 * Two steps per entry, because the spec orders the checks around the
 * signature judgement:
 *
 *   1. `entry(header)` — section 1 format rules, judged on the header alone
 *      and before any signer is judged: entry type, path form, entry order,
 *      signature pairing and size limits. Answers which part of the bundle
 *      the entry is, or a rejection (BUNDLE_FORMAT, or MANIFEST_INVALID for
 *      a manifest over 1 MiB).
 *   2. `artifact(name, size)` — called by the verifier for an artifact entry
 *      only once the manifest, signatures, expiry, hardware and rollback have
 *      been accepted: matches the entry against the manifest's artifact list
 *      (ARTIFACT_UNEXPECTED, ARTIFACT_SIZE).
 *
 * `end()` is called at the end-of-archive marker (ARTIFACT_MISSING, or
 * BUNDLE_FORMAT for an archive without a manifest or with a half pair).
 *
 * Choices where the spec is silent:
 *   - Signers are numbered 1, 2, 3 … without gaps and without leading zeros;
 *     each pair is complete, `.sig` first then `.pem`, before the next pair.
 *     Any other order is BUNDLE_FORMAT. So there is exactly one valid layout.
 *   - At most 16 signers; `signatures/17.sig` is BUNDLE_FORMAT.
 *   - Size limits: manifest 1 MiB (MANIFEST_INVALID, per the table), `.sig`
 *     4 KiB and `.pem` 64 KiB (BUNDLE_FORMAT). An RSA-4096 signature is 512
 *     bytes; a leaf plus two intermediates in PEM is well under 10 KiB.
 *   - Only regular files (typeflag '0' or NUL). Even typeflag '7'
 *     (contiguous file), which some readers treat as a regular file, is
 *     refused, as is a regular file carrying a link name.
 *   - An artifact entry that arrives before its turn (skipping a listed one)
 *     is ARTIFACT_UNEXPECTED ("out of order"), since the skipped one might
 *     still follow; ARTIFACT_MISSING is decided at the end of the archive.
 *   - An artifact entry whose header size differs from the manifest's size
 *     is ARTIFACT_SIZE at the header: no byte of it is read at all (stronger
 *     than the spec's "stop at size + 1").
 */
import type { RejectionCode } from './codes.js';
import { MANIFEST_MAX_BYTES, type ManifestArtifact } from '../manifest/types.js';

export const MANIFEST_PATH = 'manifest.json';
export const MAX_SIGNERS = 16;
export const SIGNATURE_MAX_BYTES = 4 * 1024;
export const CHAIN_PEM_MAX_BYTES = 64 * 1024;

/** The artifact-name pattern of section 2. */
export const ARTIFACT_NAME_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;
const SIGNATURE_PATH = /^signatures\/([1-9][0-9]{0,2})\.(sig|pem)$/;
const ARTIFACT_PREFIX = 'artifacts/';

/** What the layout needs of one tar entry header (after pax records are applied). */
export interface EntryHeader {
  readonly path: string;
  /** tar typeflag: '0' regular file ('' is reported as '0'), '2' symlink, … or 'Unsupported'. */
  readonly type: string;
  readonly size: number;
  /** Link name field; must be empty for a regular file. */
  readonly linkpath?: string | undefined;
  /** Byte offset of the header in the archive, for messages. */
  readonly offset: number;
}

export interface Rejection {
  readonly kind: 'reject';
  readonly code: RejectionCode;
  readonly reason: string;
}

export type EntryStep =
  | { readonly kind: 'manifest' }
  | { readonly kind: 'signature'; readonly index: number; readonly part: 'sig' | 'pem' }
  | { readonly kind: 'artifact'; readonly name: string; readonly first: boolean }
  | Rejection;

export type ArtifactStep = { readonly kind: 'artifact'; readonly artifact: ManifestArtifact; readonly position: number } | Rejection;

export type EndStep = { readonly kind: 'complete' } | Rejection;

const TYPE_NAMES: Record<string, string> = {
  '1': 'a hard link',
  '2': 'a symbolic link',
  '3': 'a character device',
  '4': 'a block device',
  '5': 'a directory',
  '6': 'a FIFO',
  '7': 'a contiguous file',
  g: 'a pax global extended header',
  x: 'a pax extended header',
  A: 'a Solaris ACL',
  D: 'a GNU dump directory',
  I: 'an inode metadata entry',
  K: 'a GNU long link name',
  L: 'a GNU long path name',
  M: 'a GNU multi-volume continuation',
  N: 'an old GNU long path name',
  S: 'a GNU sparse file',
  V: 'a tape volume header',
  X: 'an old extended header',
};

function reject(code: RejectionCode, reason: string): Rejection {
  return { kind: 'reject', code, reason };
}

function formatError(reason: string): Rejection {
  return reject('BUNDLE_FORMAT', reason);
}

/** Describes why a path is not one of the three allowed forms; null when the form is allowed. */
export function pathProblem(path: string): string | null {
  if (path === '') return 'an empty path';
  if (path.includes('\0')) return 'a NUL byte in the path';
  if (path.includes('\\')) return 'a backslash in the path';
  if (path.startsWith('/')) return 'an absolute path';
  const segments = path.split('/');
  if (segments.includes('..')) return 'a ".." path segment';
  if (segments.includes('.')) return 'a "." path segment';
  if (segments.includes('')) return 'an empty path segment or trailing slash';
  if (path === MANIFEST_PATH || SIGNATURE_PATH.test(path)) return null;
  if (path.startsWith(ARTIFACT_PREFIX)) {
    const name = path.slice(ARTIFACT_PREFIX.length);
    return ARTIFACT_NAME_PATTERN.test(name) ? null : 'an artifact name not matching [A-Za-z0-9][A-Za-z0-9._-]{0,127}';
  }
  return 'a path outside manifest.json, signatures/<k>.sig|.pem and artifacts/<name>';
}

type Phase = 'manifest' | 'signatures' | 'artifacts';

export class BundleLayout {
  #phase: Phase = 'manifest';
  /** Next signer number expected for a `.sig`. */
  #nextSigner = 1;
  /** Signer whose `.sig` was seen and whose `.pem` must come next. */
  #pendingPem: number | null = null;
  #artifacts: readonly ManifestArtifact[] | null = null;
  #nextArtifact = 0;

  /** Number of complete signature pairs seen so far. */
  get signerCount(): number {
    return this.#nextSigner - 1;
  }

  /** Section 1 rules for one entry header. */
  entry(h: EntryHeader): EntryStep {
    const where = `entry ${JSON.stringify(h.path)} at offset ${h.offset}`;
    if (h.type !== '0') {
      return formatError(`${where} is ${TYPE_NAMES[h.type] ?? `of unsupported type ${JSON.stringify(h.type)}`}: only regular files are allowed`);
    }
    if (h.linkpath) return formatError(`${where} is a regular file with a link name ${JSON.stringify(h.linkpath)}`);
    const problem = pathProblem(h.path);
    if (problem !== null) return formatError(`${where} has ${problem}`);
    if (!Number.isSafeInteger(h.size) || h.size < 0) return formatError(`${where} has an invalid size`);

    if (this.#phase === 'manifest') {
      if (h.path !== MANIFEST_PATH) return formatError(`manifest.json must be the first entry; the first entry is ${JSON.stringify(h.path)}`);
      if (h.size > MANIFEST_MAX_BYTES) {
        return reject('MANIFEST_INVALID', `manifest.json is ${h.size} bytes, over the limit of ${MANIFEST_MAX_BYTES} bytes`);
      }
      this.#phase = 'signatures';
      return { kind: 'manifest' };
    }
    if (h.path === MANIFEST_PATH) return formatError(`a second manifest.json at offset ${h.offset}`);

    const sig = SIGNATURE_PATH.exec(h.path);
    if (sig) return this.#signature(h, Number(sig[1]), sig[2] as 'sig' | 'pem');

    // The only remaining allowed form: artifacts/<name>.
    if (this.#pendingPem !== null) {
      return formatError(`signatures/${this.#pendingPem}.sig has no signatures/${this.#pendingPem}.pem (found ${JSON.stringify(h.path)} instead)`);
    }
    const first = this.#phase !== 'artifacts';
    this.#phase = 'artifacts';
    return { kind: 'artifact', name: h.path.slice(ARTIFACT_PREFIX.length), first };
  }

  #signature(h: EntryHeader, index: number, part: 'sig' | 'pem'): EntryStep {
    if (this.#phase === 'artifacts') return formatError(`signature entry ${JSON.stringify(h.path)} after the first artifact`);
    if (index > MAX_SIGNERS) return formatError(`${JSON.stringify(h.path)}: more than ${MAX_SIGNERS} signers`);
    if (this.#pendingPem !== null) {
      if (part !== 'pem' || index !== this.#pendingPem) {
        return formatError(`signatures/${this.#pendingPem}.sig has no signatures/${this.#pendingPem}.pem right after it (found ${JSON.stringify(h.path)})`);
      }
    } else if (part === 'pem') {
      return formatError(`${JSON.stringify(h.path)} without a preceding signatures/${index}.sig (each pair is <k>.sig then <k>.pem)`);
    } else if (index !== this.#nextSigner) {
      return formatError(
        `${JSON.stringify(h.path)} out of sequence: signers are numbered 1, 2, 3 … without gaps or repeats; expected signatures/${this.#nextSigner}.sig`,
      );
    }
    const limit = part === 'sig' ? SIGNATURE_MAX_BYTES : CHAIN_PEM_MAX_BYTES;
    if (h.size > limit) return formatError(`${JSON.stringify(h.path)} is ${h.size} bytes, over the limit of ${limit} bytes`);
    if (part === 'sig') {
      this.#pendingPem = index;
    } else {
      this.#pendingPem = null;
      this.#nextSigner = index + 1;
    }
    return { kind: 'signature', index, part };
  }

  /** Gives the layout the manifest's artifact list, once the manifest parsed. */
  setManifestArtifacts(artifacts: readonly ManifestArtifact[]): void {
    this.#artifacts = artifacts;
  }

  /** Matches an artifact entry (already accepted by entry()) against the manifest, in order. */
  artifact(name: string, size: number): ArtifactStep {
    const list = this.#artifacts;
    if (list === null) throw new Error('BundleLayout.artifact() before setManifestArtifacts()');
    const expected = list[this.#nextArtifact];
    const entry = `artifacts/${name}`;
    if (expected === undefined || expected.name !== name) {
      const at = list.findIndex((a) => a.name === name);
      if (at < 0) return reject('ARTIFACT_UNEXPECTED', `${entry} is not listed in the manifest`);
      if (at < this.#nextArtifact) return reject('ARTIFACT_UNEXPECTED', `${entry} appears twice`);
      return reject('ARTIFACT_UNEXPECTED', `${entry} is out of manifest order: expected artifacts/${expected?.name ?? '?'} first`);
    }
    const position = this.#nextArtifact;
    this.#nextArtifact += 1;
    if (size !== expected.size) {
      return reject('ARTIFACT_SIZE', `artifact ${name}: the bundle holds ${size} bytes, the manifest says ${expected.size}`);
    }
    return { kind: 'artifact', artifact: expected, position };
  }

  /** At the end-of-archive marker. */
  end(): EndStep {
    if (this.#phase === 'manifest') return formatError('the archive holds no entries (manifest.json must be the first)');
    if (this.#pendingPem !== null) return formatError(`signatures/${this.#pendingPem}.sig has no signatures/${this.#pendingPem}.pem`);
    const list = this.#artifacts ?? [];
    const missing = list.slice(this.#nextArtifact);
    const first = missing[0];
    if (first !== undefined) {
      const more = missing.length > 1 ? ` (and ${missing.length - 1} more)` : '';
      return reject('ARTIFACT_MISSING', `artifact ${first.name} listed in the manifest is absent${more}`);
    }
    return { kind: 'complete' };
  }
}
