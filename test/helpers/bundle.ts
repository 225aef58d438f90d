/**
 * Bundles for tests, built in code.
 *
 * Raw tar pieces come from node-tar's Header and Pax classes, so every
 * hostile archive is a few lines: a symlink is
 *   entry({ path: 'artifacts/x', type: 'SymbolicLink', linkpath: '/etc/passwd' })
 * and a bundle with it is tarOf([...valid entries, that]).
 *
 * Valid bundles (makeBundle) carry a canonical manifest over real artifacts,
 * signed with keys generated at test time by test/helpers/pki.ts.
 */
import { createHash, randomBytes } from 'node:crypto';
import { Header, Pax, type HeaderData } from 'tar';
import { canonicalBytes } from '../../src/manifest/canonical.js';
import type { ArtifactRole } from '../../src/manifest/types.js';
import { buildProvenance } from '../../src/release/provenance.js';
import type { CertifiedKey } from '../../src/pki/certs.js';
import { signWith, type RsaPadding, type TestPki } from './pki.js';

export const BLOCK = 512;
export const FIXED_MTIME = new Date('2025-03-01T12:00:00Z');

export type HeaderFields = HeaderData & { path: string };

/** One 512-byte header block with a valid checksum. Fields default to a 0644 regular file. */
export function header(fields: HeaderFields): Buffer {
  const block = Buffer.alloc(BLOCK);
  new Header({ type: 'File', mode: 0o644, uid: 0, gid: 0, mtime: FIXED_MTIME, size: 0, ...fields }).encode(block);
  return block;
}

/** Zero bytes up to the next 512-byte boundary after `length` bytes. */
export function padding(length: number): Buffer {
  return Buffer.alloc((BLOCK - (length % BLOCK)) % BLOCK);
}

/** A pax record "<len> <key>=<value>\n". */
export function paxRecord(key: string, value: string): string {
  const body = ` ${key}=${value}\n`;
  let len = Buffer.byteLength(body) + 1;
  while (String(len).length + Buffer.byteLength(body) !== len) len += 1;
  return `${len}${body}`;
}

/** A pax extended header ('x') with the given raw body, padded. */
export function paxHeader(body: string | Buffer, name = 'PaxHeader/entry'): Buffer {
  const bytes = Buffer.isBuffer(body) ? body : Buffer.from(body, 'utf8');
  return Buffer.concat([header({ path: name, type: 'ExtendedHeader', size: bytes.length }), bytes, padding(bytes.length)]);
}

/**
 * A whole entry: header (with a pax header in front when node-tar says the
 * fields need one, e.g. paths over 100 bytes), data and padding.
 * `size` in fields overrides the header's size (for lying headers).
 */
export function entry(fields: HeaderFields, data: Buffer = Buffer.alloc(0)): Buffer {
  const h = new Header({ type: 'File', mode: 0o644, uid: 0, gid: 0, mtime: FIXED_MTIME, size: data.length, ...fields });
  const block = Buffer.alloc(BLOCK);
  const needPax = h.encode(block);
  const parts: Buffer[] = [];
  if (needPax) parts.push(new Pax({ path: fields.path, size: h.size ?? data.length, mtime: FIXED_MTIME }).encode());
  parts.push(block, data, padding(data.length));
  return Buffer.concat(parts);
}

/** A regular file entry. */
export function file(path: string, data: Buffer | string): Buffer {
  return entry({ path }, Buffer.isBuffer(data) ? data : Buffer.from(data));
}

/** The two zero blocks that end an archive, plus optional zero padding. */
export function endOfArchive(extraZeros = 0): Buffer {
  return Buffer.alloc(2 * BLOCK + extraZeros);
}

/** Entries followed by the end-of-archive blocks. */
export function tarOf(entries: readonly Buffer[], extraZeros = 0): Buffer {
  return Buffer.concat([...entries, endOfArchive(extraZeros)]);
}

/** Rewrites the checksum field of a header block after a test changed its bytes. */
export function fixChecksum(block: Buffer): Buffer {
  block.fill(0x20, 148, 156);
  let sum = 0;
  for (const b of block.subarray(0, BLOCK)) sum += b;
  block.write(sum.toString(8).padStart(6, '0') + '\0 ', 148, 8, 'latin1');
  return block;
}

/** A header block with an arbitrary typeflag byte (for types node-tar will not encode). */
export function headerWithTypeflag(fields: HeaderFields, typeflag: string): Buffer {
  const block = header(fields);
  block.write(typeflag, 156, 1, 'latin1');
  return fixChecksum(block);
}

/** Splits a buffer into chunks of `size` bytes (the last may be shorter). */
export function chunked(buf: Buffer, size: number): Buffer[] {
  const out: Buffer[] = [];
  for (let i = 0; i < buf.length; i += size) out.push(buf.subarray(i, i + size));
  return out;
}

/** An async iterable over the given chunks, like a Readable. */
export async function* streamOf(chunks: readonly Buffer[]): AsyncGenerator<Buffer> {
  for (const c of chunks) yield c;
}

// ---------------------------------------------------------------------------
// Valid bundles, built in memory from a manifest template, real artifacts and
// real signatures (test/helpers/pki.ts). Tests take `entries`, bend them and
// tar them again with tarEntries().

export interface BundleEntry {
  readonly path: string;
  readonly data: Buffer;
}

export interface TestArtifact {
  readonly name: string;
  readonly role: ArtifactRole;
  readonly data: Buffer;
}

export interface BundleSigner {
  readonly signer: CertifiedKey;
  readonly chainPem: string;
  /** Signs these bytes instead of the manifest (a good key over other bytes). */
  readonly signOver?: Buffer;
  /** Uses this signature as is. */
  readonly signature?: Buffer;
  readonly rsaPadding?: RsaPadding;
  readonly pssSaltLength?: number;
}

export interface BundleOptions {
  /** Default: rootfs (64 KiB random), app, sbom, provenance. */
  readonly artifacts?: readonly TestArtifact[];
  /** Changes to the manifest object before it is serialised. */
  readonly manifest?: (m: ManifestObject) => void;
  /** Raw manifest bytes instead of the canonical serialisation (signed as given). */
  readonly manifestBytes?: (canonical: Buffer) => Buffer;
  /** Default: the PKI's first two signers. */
  readonly signers?: readonly BundleSigner[];
}

export interface TestBundle {
  readonly manifest: ManifestObject;
  readonly manifestBytes: Buffer;
  readonly artifacts: readonly TestArtifact[];
  readonly entries: readonly BundleEntry[];
  readonly tar: Buffer;
}

export type ManifestObject = Record<string, unknown> & {
  artifacts: Array<{ name: string; size: number; sha256: string; role: ArtifactRole }>;
  hardware: string[];
  securityVersion: number;
  released: string;
  expires: string;
  provenance: { sourceRepository: string; sourceCommit: string; builder: string; buildFinished: string };
};

export const sha256 = (data: Buffer): string => createHash('sha256').update(data).digest('hex');

export const TEST_PROVENANCE = {
  sourceRepository: 'https://git.hss.example/nvr/firmware',
  sourceCommit: '0123456789abcdef0123456789abcdef01234567',
  builder: 'https://ci.hss.example/builders/release',
  buildFinished: '2026-05-01T11:00:00Z',
};

/** A CycloneDX 1.5 SBOM naming the product. */
export function testSbom(): Buffer {
  return Buffer.from(JSON.stringify({ bomFormat: 'CycloneDX', specVersion: '1.5', version: 1, components: [{ type: 'library', name: 'busybox', version: '1.36.1' }] }));
}

/** The release tooling's in-toto Statement v1 (SLSA Provenance v1) naming `subjects`, for the test manifest's product and version. */
export function testProvenance(subjects: readonly TestArtifact[], p = TEST_PROVENANCE): Buffer {
  return buildProvenance({
    product: 'hss-nvr',
    version: '2.4.1',
    provenance: p,
    subjects: subjects.map((a) => ({ name: a.name, sha256: sha256(a.data) })),
  }).bytes;
}

/** The default payload: rootfs, app, sbom, `extra`, and a provenance statement naming all of them. */
export function defaultArtifacts(rootfs: Buffer = randomBytes(64 * 1024), extra: readonly TestArtifact[] = []): TestArtifact[] {
  const payload: TestArtifact[] = [
    { name: 'rootfs.img', role: 'rootfs', data: rootfs },
    { name: 'app.tar', role: 'app', data: Buffer.from('application payload\n'.repeat(50)) },
    { name: 'sbom.cdx.json', role: 'sbom', data: testSbom() },
    ...extra,
  ];
  return [...payload, { name: 'provenance.intoto.json', role: 'provenance', data: testProvenance(payload) }];
}

export function manifestObject(artifacts: readonly TestArtifact[]): ManifestObject {
  return {
    schema: 'glassbox.manifest/v1',
    product: 'hss-nvr',
    hardware: ['nvr-8p', 'nvr-16p'],
    version: '2.4.1',
    securityVersion: 12,
    released: '2026-05-01T12:00:00Z',
    expires: '2027-05-01T12:00:00Z',
    artifacts: artifacts.map((a) => ({ name: a.name, size: a.data.length, sha256: sha256(a.data), role: a.role })),
    egress: [{ id: 'ntp', purpose: 'time sync', proto: 'udp', host: 'ntp.hss.example', port: 123 }],
    provenance: { ...TEST_PROVENANCE },
  };
}

/** Tars entries as regular files, in order, with the end-of-archive blocks. */
export function tarEntries(entries: readonly BundleEntry[]): Buffer {
  return tarOf(entries.map((e) => file(e.path, e.data)));
}

export function signatureEntries(manifestBytes: Buffer, signers: readonly BundleSigner[]): BundleEntry[] {
  return signers.flatMap((s, i) => [
    {
      path: `signatures/${i + 1}.sig`,
      data: s.signature ?? signWith(s.signer, s.signOver ?? manifestBytes, { ...(s.rsaPadding ? { rsaPadding: s.rsaPadding } : {}), ...(s.pssSaltLength === undefined ? {} : { pssSaltLength: s.pssSaltLength }) }),
    },
    { path: `signatures/${i + 1}.pem`, data: Buffer.from(s.chainPem) },
  ]);
}

/** The PKI's signers as bundle signers. */
export function pkiSigners(pki: TestPki, which: readonly number[] = [0, 1]): BundleSigner[] {
  return which.map((i) => ({ signer: pki.signers[i] as CertifiedKey, chainPem: pki.chains[i] as string }));
}

/** A valid bundle (unless the options bend it), signed by real keys of `pki`. */
export function makeBundle(pki: TestPki, opts: BundleOptions = {}): TestBundle {
  const artifacts = opts.artifacts ?? defaultArtifacts();
  const manifest = manifestObject(artifacts);
  opts.manifest?.(manifest);
  const canonical = canonicalBytes(manifest);
  const manifestBytes = opts.manifestBytes ? opts.manifestBytes(canonical) : canonical;
  const entries: BundleEntry[] = [
    { path: 'manifest.json', data: manifestBytes },
    ...signatureEntries(manifestBytes, opts.signers ?? pkiSigners(pki)),
    ...artifacts.map((a) => ({ path: `artifacts/${a.name}`, data: a.data })),
  ];
  return { manifest, manifestBytes, artifacts, entries, tar: tarEntries(entries) };
}

/** Index of the first artifact entry in a makeBundle bundle with two signers: manifest + 2 (.sig, .pem) pairs. */
export const SIGNATURE_END = 5;

/** Bytes of the tar before the first artifact's header: where the judge point lies. */
export function firstArtifactOffset(b: TestBundle): number {
  return b.entries.slice(0, SIGNATURE_END).reduce((n, e) => n + file(e.path, e.data).length, 0);
}

/** A copy of `data` with the byte at `at` inverted. */
export function flipByte(data: Buffer, at: number): Buffer {
  const copy = Buffer.from(data);
  copy[at] = copy[at]! ^ 0xff;
  return copy;
}
