/**
 * Building a release manifest from a template and the artifact files
 * (release-engineering side; an edge module, so it reads and writes files).
 *
 * 1. The template (every manifest field except `artifacts`, see
 *    docs/manifest.md) and the artifact list are checked first, with
 *    placeholder digests, so a bad template fails before gigabytes are hashed.
 * 2. Each artifact file is streamed once through SHA-256 (one reused 1 MiB
 *    buffer), giving its size and digest.
 * 3. The SBOM (CycloneDX 1.5) is generated over the payload artifacts and
 *    written to `outDir`; then the provenance statement (in-toto + SLSA v1)
 *    naming every artifact including the SBOM. Both become artifacts.
 * 4. The manifest is assembled (payload artifacts in the given order, then
 *    the SBOM, then the provenance), validated, and returned with its
 *    canonical bytes. The caller writes manifest.json and signs those bytes.
 */
import { createHash } from 'node:crypto';
import { mkdir, open, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { canonicalBytes } from '../manifest/canonical.js';
import { describeProblems, ReleaseInputInvalid } from '../manifest/errors.js';
import { manifestSha256 } from '../manifest/parse.js';
import { validateManifest } from '../manifest/schema.js';
import { formatUtc, utcMillis } from '../manifest/time.js';
import { MANIFEST_MAX_BYTES, type ArtifactRole, type Manifest, type ManifestArtifact } from '../manifest/types.js';
import { IoError } from '../errors.js';
import { buildProvenance } from './provenance.js';
import { buildSbom, type SbomExtraComponent } from './sbom.js';

/** Every manifest field except `artifacts`. */
export type ManifestTemplate = Omit<Manifest, 'artifacts'>;

export interface ArtifactFile {
  readonly name: string;
  readonly role: ArtifactRole;
  readonly path: string;
}

export interface BuildOptions {
  /** Build time: the SBOM's metadata.timestamp. Must be before the template's `expires`. */
  readonly now: Date;
  /** Directory the SBOM and provenance files are written to (created if missing). */
  readonly outDir: string;
  /** Artifact name of the SBOM; default `sbom.cdx.json`. */
  readonly sbomName?: string;
  /** Artifact name of the provenance statement; default `provenance.intoto.json`. */
  readonly provenanceName?: string;
  /** Extra SBOM components (e.g. parsed from a lock file). */
  readonly components?: readonly SbomExtraComponent[];
  /** The tool named in the SBOM's metadata.tools. */
  readonly tool?: { readonly name: string; readonly version: string };
}

export interface BuiltManifest {
  readonly manifest: Manifest;
  /** Canonical manifest.json bytes: what the signers sign. */
  readonly bytes: Buffer;
  readonly sha256: string;
  /** Every artifact with the file holding it, in manifest (= bundle) order. */
  readonly files: readonly ArtifactFile[];
}

export const DEFAULT_SBOM_NAME = 'sbom.cdx.json';
export const DEFAULT_PROVENANCE_NAME = 'provenance.intoto.json';
/** A template file larger than this is refused unread. */
export const TEMPLATE_MAX_BYTES = MANIFEST_MAX_BYTES;
const HASH_BUFFER_BYTES = 1024 * 1024;
const PLACEHOLDER_SHA256 = '0'.repeat(64);

export async function buildManifest(template: unknown, artifactFiles: readonly ArtifactFile[], opts: BuildOptions): Promise<BuiltManifest> {
  const sbomName = opts.sbomName ?? DEFAULT_SBOM_NAME;
  const provenanceName = opts.provenanceName ?? DEFAULT_PROVENANCE_NAME;
  const base = checkInputs(template, artifactFiles, sbomName, provenanceName, opts.now);

  const buffer = Buffer.allocUnsafe(HASH_BUFFER_BYTES);
  const payload: ManifestArtifact[] = [];
  for (const file of artifactFiles) {
    const { size, sha256 } = await hashFile(file.path, buffer);
    payload.push({ name: file.name, size, sha256, role: file.role });
  }

  await mkdir(opts.outDir, { recursive: true }).catch((err: unknown) => {
    throw new IoError(`cannot create output directory ${opts.outDir}: ${(err as Error).message}`, { cause: err });
  });
  const sbom = buildSbom({
    product: base.product,
    version: base.version,
    timestamp: formatUtc(opts.now),
    artifacts: payload,
    ...(opts.components === undefined ? {} : { components: opts.components }),
    ...(opts.tool === undefined ? {} : { tool: opts.tool }),
  });
  const sbomPath = join(opts.outDir, sbomName);
  await writeAtomic(sbomPath, sbom.bytes);
  const sbomArtifact: ManifestArtifact = { name: sbomName, size: sbom.bytes.length, sha256: sha256Hex(sbom.bytes), role: 'sbom' };

  const subjects = [...payload, sbomArtifact].map((a) => ({ name: a.name, sha256: a.sha256 }));
  const provenance = buildProvenance({ product: base.product, version: base.version, provenance: base.provenance, subjects });
  const provenancePath = join(opts.outDir, provenanceName);
  await writeAtomic(provenancePath, provenance.bytes);
  const provenanceArtifact: ManifestArtifact = { name: provenanceName, size: provenance.bytes.length, sha256: sha256Hex(provenance.bytes), role: 'provenance' };

  const manifest = { ...base, artifacts: [...payload, sbomArtifact, provenanceArtifact] } as Manifest;
  const checked = validateManifest(manifest);
  if (!checked.ok) throw new ReleaseInputInvalid(checked.errors, describeProblems('built manifest', checked.errors));
  const bytes = canonicalBytes(manifest);
  if (bytes.length > MANIFEST_MAX_BYTES) {
    throw new ReleaseInputInvalid([`manifest is ${bytes.length} bytes`], `built manifest is ${bytes.length} bytes, over the 1 MiB limit`);
  }
  return {
    manifest,
    bytes,
    sha256: manifestSha256(bytes),
    files: [...artifactFiles.map((f) => ({ name: f.name, role: f.role, path: f.path })), { name: sbomName, role: 'sbom', path: sbomPath }, { name: provenanceName, role: 'provenance', path: provenancePath }],
  };
}

/** Everything that can be judged before a file is read. Returns the template as a typed base. */
function checkInputs(template: unknown, files: readonly ArtifactFile[], sbomName: string, provenanceName: string, now: Date): ManifestTemplate {
  if (typeof template !== 'object' || template === null || Array.isArray(template)) {
    throw new ReleaseInputInvalid(['template is not a JSON object'], 'manifest template: must be a JSON object');
  }
  const problems: string[] = [];
  if (!Number.isFinite(now.getTime())) problems.push('build time (now) is not a valid date');
  if ('artifacts' in template) problems.push('/artifacts: must not be in the template (it is computed from the files)');
  files.forEach((f, i) => {
    if (f.role === 'sbom' || f.role === 'provenance') problems.push(`artifact ${i} (${f.name}): role ${f.role} is generated, not supplied`);
  });
  const { artifacts: _ignored, ...fields } = template as Record<string, unknown>;
  const trial = {
    ...fields,
    artifacts: [
      ...files.map((f) => ({ name: f.name, size: 0, sha256: PLACEHOLDER_SHA256, role: f.role })),
      { name: sbomName, size: 0, sha256: PLACEHOLDER_SHA256, role: 'sbom' },
      { name: provenanceName, size: 0, sha256: PLACEHOLDER_SHA256, role: 'provenance' },
    ],
  };
  const checked = validateManifest(trial);
  if (!checked.ok) problems.push(...checked.errors);
  if (problems.length > 0) throw new ReleaseInputInvalid(problems, describeProblems('manifest template', problems));
  const base = fields as unknown as ManifestTemplate;
  if (!(utcMillis(base.expires) > now.getTime())) {
    const p = `/expires: ${base.expires} is not after the build time ${formatUtc(now)}; the manifest would be born expired`;
    throw new ReleaseInputInvalid([p], `manifest template: ${p}`);
  }
  return base;
}

/**
 * Size and SHA-256 of a regular file, streamed through `buffer` (reused;
 * default 1 MiB). Throws IoError when it cannot be read, is not a regular
 * file, or changed size while being read.
 */
export async function hashFile(path: string, buffer: Buffer = Buffer.allocUnsafe(HASH_BUFFER_BYTES)): Promise<{ size: number; sha256: string }> {
  let handle;
  try {
    handle = await open(path, 'r');
  } catch (err) {
    throw new IoError(`cannot open artifact ${path}: ${(err as Error).message}`, { cause: err });
  }
  try {
    const stat = await handle.stat();
    if (!stat.isFile()) throw new IoError(`artifact ${path} is not a regular file`);
    const hash = createHash('sha256');
    let size = 0;
    for (;;) {
      const { bytesRead } = await handle.read(buffer, 0, buffer.length, null);
      if (bytesRead === 0) break;
      hash.update(buffer.subarray(0, bytesRead));
      size += bytesRead;
    }
    if (size !== stat.size) throw new IoError(`artifact ${path} changed while it was read (${stat.size} bytes before, ${size} read)`);
    return { size, sha256: hash.digest('hex') };
  } catch (err) {
    if (err instanceof IoError) throw err;
    throw new IoError(`cannot read artifact ${path}: ${(err as Error).message}`, { cause: err });
  } finally {
    await handle.close();
  }
}

/** Reads a template file (at most TEMPLATE_MAX_BYTES) and parses it as JSON; it need not be canonical. */
export async function readTemplate(path: string): Promise<unknown> {
  let handle;
  try {
    handle = await open(path, 'r');
  } catch (err) {
    throw new IoError(`cannot open manifest template ${path}: ${(err as Error).message}`, { cause: err });
  }
  let bytes: Buffer;
  try {
    const buffer = Buffer.alloc(TEMPLATE_MAX_BYTES + 1);
    let length = 0;
    for (;;) {
      const { bytesRead } = await handle.read(buffer, length, buffer.length - length, null);
      if (bytesRead === 0) break;
      length += bytesRead;
      if (length > TEMPLATE_MAX_BYTES) throw new ReleaseInputInvalid(['template too large'], `manifest template ${path} is over ${TEMPLATE_MAX_BYTES} bytes`);
    }
    bytes = buffer.subarray(0, length);
  } catch (err) {
    if (err instanceof ReleaseInputInvalid) throw err;
    throw new IoError(`cannot read manifest template ${path}: ${(err as Error).message}`, { cause: err });
  } finally {
    await handle.close();
  }
  try {
    return JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(bytes)) as unknown;
  } catch (err) {
    const p = `not UTF-8 JSON: ${(err as Error).message}`;
    throw new ReleaseInputInvalid([p], `manifest template ${path}: ${p}`);
  }
}

function sha256Hex(bytes: Buffer): string {
  return createHash('sha256').update(bytes).digest('hex');
}

/** Write to a temporary sibling, then rename: a reader never sees half a file. */
async function writeAtomic(path: string, bytes: Buffer): Promise<void> {
  const tmp = `${path}.tmp-${process.pid}`;
  try {
    await writeFile(tmp, bytes, { flag: 'w', mode: 0o644 });
    await rename(tmp, path);
  } catch (err) {
    await rm(tmp, { force: true });
    throw new IoError(`cannot write ${path}: ${(err as Error).message}`, { cause: err });
  }
}
