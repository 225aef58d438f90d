/**
 * CycloneDX 1.5 JSON SBOM of a firmware release (the bundle's `sbom`
 * artifact, bundle-v1 section 2). Pure and deterministic: the same input
 * gives the same bytes.
 *
 * - metadata.component: the firmware itself (type firmware, product@version).
 * - components: one `file` component per payload artifact (every artifact
 *   except the sbom and provenance, which cannot list themselves), with its
 *   SHA-256 and the glassbox:role / glassbox:size properties, in manifest
 *   order; then the release engineer's extra components (e.g. from a lock
 *   file) sorted by bom-ref.
 * - dependencies: the firmware depends on every component.
 * - serialNumber: `urn:uuid:` + an RFC 9562 version-8 UUID made from the
 *   first 16 bytes of SHA-256 over the canonical BOM without serialNumber
 *   (version nibble 8, variant bits 10). Same content, same serial number;
 *   a different content, a different one.
 */
import { createHash } from 'node:crypto';
import { canonicalBytes } from '../manifest/canonical.js';
import { describeProblems, ReleaseInputInvalid } from '../manifest/errors.js';
import type { ArtifactRole } from '../manifest/types.js';

export const CYCLONEDX_SPEC_VERSION = '1.5';

/** CycloneDX 1.5 component types. */
export const COMPONENT_TYPES = ['application', 'framework', 'library', 'container', 'platform', 'operating-system', 'device', 'device-driver', 'firmware', 'file', 'machine-learning-model', 'data'] as const;
export type ComponentType = (typeof COMPONENT_TYPES)[number];

/** CycloneDX 1.5 hash algorithms, with their hex digest lengths. */
export const HASH_ALGORITHMS = {
  MD5: 32, 'SHA-1': 40, 'SHA-256': 64, 'SHA-384': 96, 'SHA-512': 128, 'SHA3-256': 64, 'SHA3-384': 96, 'SHA3-512': 128,
  'BLAKE2b-256': 64, 'BLAKE2b-384': 96, 'BLAKE2b-512': 128, BLAKE3: 64,
} as const;
export type HashAlgorithm = keyof typeof HASH_ALGORITHMS;

export interface SbomHash {
  readonly alg: HashAlgorithm;
  /** Lowercase hex. */
  readonly content: string;
}

/** A component the release engineer adds (e.g. one per package of a lock file). */
export interface SbomExtraComponent {
  readonly name: string;
  readonly version: string;
  /** Default `library`. */
  readonly type?: ComponentType;
  /** Package URL, `pkg:<type>/<name>@<version>`. */
  readonly purl?: string;
  readonly hashes?: readonly SbomHash[];
}

export interface SbomArtifact {
  readonly name: string;
  readonly size: number;
  readonly sha256: string;
  readonly role: ArtifactRole;
}

export interface SbomInput {
  readonly product: string;
  readonly version: string;
  /** metadata.timestamp, RFC 3339 UTC (formatUtc). */
  readonly timestamp: string;
  /** The manifest's artifacts; those of role sbom and provenance are left out. */
  readonly artifacts: readonly SbomArtifact[];
  readonly components?: readonly SbomExtraComponent[];
  /** The tool that made the SBOM, listed under metadata.tools. */
  readonly tool?: { readonly name: string; readonly version: string };
}

interface CdxComponent {
  readonly type: ComponentType;
  readonly 'bom-ref': string;
  readonly name: string;
  readonly version?: string;
  readonly purl?: string;
  readonly hashes?: readonly SbomHash[];
  readonly properties?: ReadonlyArray<{ readonly name: string; readonly value: string }>;
}

export interface CycloneDxBom {
  readonly bomFormat: 'CycloneDX';
  readonly specVersion: string;
  readonly serialNumber: string;
  readonly version: 1;
  readonly metadata: {
    readonly timestamp: string;
    readonly tools?: { readonly components: readonly CdxComponent[] };
    readonly component: CdxComponent;
  };
  readonly components: readonly CdxComponent[];
  readonly dependencies: ReadonlyArray<{ readonly ref: string; readonly dependsOn: readonly string[] }>;
}

const SHA256_HEX = /^[0-9a-f]{64}$/;

/** Builds the SBOM and its canonical bytes. Throws ReleaseInputInvalid naming every bad input. */
export function buildSbom(input: SbomInput): { bom: CycloneDxBom; bytes: Buffer } {
  const problems: string[] = [];
  const firmwareRef = `firmware:${input.product}@${input.version}`;
  const artifactComponents: CdxComponent[] = [];
  input.artifacts.forEach((a, i) => {
    if (a.role === 'sbom' || a.role === 'provenance') return;
    if (!SHA256_HEX.test(a.sha256)) problems.push(`artifacts[${i}] (${a.name}): sha256 must be 64 lowercase hex`);
    artifactComponents.push({
      type: 'file',
      'bom-ref': `artifact:${a.name}`,
      name: a.name,
      hashes: [{ alg: 'SHA-256', content: a.sha256 }],
      properties: [
        { name: 'glassbox:role', value: a.role },
        { name: 'glassbox:size', value: String(a.size) },
      ],
    });
  });
  const extras = (input.components ?? []).map((c, i) => extraComponent(c, i, problems));
  extras.sort((a, b) => (a['bom-ref'] < b['bom-ref'] ? -1 : a['bom-ref'] > b['bom-ref'] ? 1 : 0));
  const components = [...artifactComponents, ...extras];
  const refs = new Set<string>();
  for (const c of components) {
    if (refs.has(c['bom-ref'])) problems.push(`component ${c['bom-ref']} is listed twice`);
    refs.add(c['bom-ref']);
  }
  if (problems.length > 0) throw new ReleaseInputInvalid(problems, describeProblems('SBOM input', problems));

  const unsigned = {
    bomFormat: 'CycloneDX' as const,
    specVersion: CYCLONEDX_SPEC_VERSION,
    version: 1 as const,
    metadata: {
      timestamp: input.timestamp,
      ...(input.tool === undefined
        ? {}
        : { tools: { components: [{ type: 'application' as const, 'bom-ref': `tool:${input.tool.name}@${input.tool.version}`, name: input.tool.name, version: input.tool.version }] } }),
      component: { type: 'firmware' as const, 'bom-ref': firmwareRef, name: input.product, version: input.version },
    },
    components,
    dependencies: [{ ref: firmwareRef, dependsOn: components.map((c) => c['bom-ref']) }],
  };
  const bom: CycloneDxBom = { ...unsigned, serialNumber: `urn:uuid:${contentUuid(canonicalBytes(unsigned))}` };
  return { bom, bytes: canonicalBytes(bom) };
}

function extraComponent(c: SbomExtraComponent, i: number, problems: string[]): CdxComponent {
  const where = `components[${i}]`;
  if (typeof c.name !== 'string' || c.name.length === 0 || c.name.length > 256) problems.push(`${where}: name must be 1 to 256 characters`);
  if (typeof c.version !== 'string' || c.version.length === 0 || c.version.length > 256) problems.push(`${where}: version must be 1 to 256 characters`);
  if (c.type !== undefined && !(COMPONENT_TYPES as readonly string[]).includes(c.type)) {
    problems.push(`${where}: type must be one of ${COMPONENT_TYPES.join(', ')}`);
  }
  if (c.purl !== undefined && !/^pkg:[a-z][a-z0-9.+-]*\/\S+$/.test(c.purl)) problems.push(`${where}: purl must look like pkg:<type>/<name>@<version>`);
  (c.hashes ?? []).forEach((h, k) => {
    const length = (HASH_ALGORITHMS as Record<string, number>)[h.alg];
    if (length === undefined) problems.push(`${where}.hashes[${k}]: unknown algorithm ${JSON.stringify(h.alg)}`);
    else if (!new RegExp(`^[0-9a-f]{${length}}$`).test(h.content)) problems.push(`${where}.hashes[${k}]: ${h.alg} content must be ${length} lowercase hex`);
  });
  return {
    type: c.type ?? 'library',
    'bom-ref': c.purl ?? `component:${c.name}@${c.version}`,
    name: c.name,
    version: c.version,
    ...(c.purl === undefined ? {} : { purl: c.purl }),
    ...(c.hashes === undefined || c.hashes.length === 0 ? {} : { hashes: c.hashes.map((h) => ({ alg: h.alg, content: h.content })) }),
  };
}

/** RFC 9562 version-8 UUID from the SHA-256 of `bytes`. */
export function contentUuid(bytes: Buffer): string {
  const b = createHash('sha256').update(bytes).digest().subarray(0, 16);
  b[6] = ((b[6] as number) & 0x0f) | 0x80;
  b[8] = ((b[8] as number) & 0x3f) | 0x80;
  const h = b.toString('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}
