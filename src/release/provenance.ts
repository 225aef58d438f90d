/**
 * The bundle's provenance artifact (bundle-v1 section 2): an in-toto
 * Statement v1 with a SLSA Provenance v1 predicate, and the check a
 * verifier makes of it against the signed manifest. Pure.
 *
 * Subjects: every artifact of the manifest except the provenance artifact
 * itself (which cannot name its own digest), the sbom included, in manifest
 * order, by name and sha256.
 *
 * When the verifier runs checkProvenance: the manifest is signed, and it
 * pins the provenance artifact's size and sha256, but the artifact's
 * content only arrives while the bundle streams. The verifier therefore
 * buffers that one artifact (bounded: the manifest rules cap its declared
 * size at PROVENANCE_MAX_BYTES) and calls checkProvenance once the artifact
 * has completed and its size and digest matched. The subjects are compared
 * with the manifest, not with the streamed bytes: the manifest already pins
 * every artifact's digest, and each artifact is hashed as it streams.
 */
import { canonicalBytes } from '../manifest/canonical.js';
import { describeProblems, ReleaseInputInvalid } from '../manifest/errors.js';
import { PROVENANCE_MAX_BYTES, validateProvenanceStatement } from '../manifest/schema.js';
import type { Manifest, Provenance } from '../manifest/types.js';

export const STATEMENT_TYPE = 'https://in-toto.io/Statement/v1';
export const SLSA_PROVENANCE_V1 = 'https://slsa.dev/provenance/v1';
/** buildType of statements glassbox's release tooling writes (a URN: an identifier, not a location). */
export const GLASSBOX_BUILD_TYPE = 'urn:glassbox:build-type:firmware-release:v1';

export interface StatementSubject {
  readonly name: string;
  readonly digest: { readonly sha256: string };
}

export interface ProvenanceStatement {
  readonly _type: typeof STATEMENT_TYPE;
  readonly subject: readonly StatementSubject[];
  readonly predicateType: typeof SLSA_PROVENANCE_V1;
  readonly predicate: {
    readonly buildDefinition: {
      readonly buildType: string;
      readonly externalParameters: {
        readonly source: { readonly repository: string; readonly commit: string };
        readonly product: string;
        readonly version: string;
      };
      readonly resolvedDependencies: ReadonlyArray<{ readonly uri: string; readonly digest: { readonly gitCommit: string } }>;
    };
    readonly runDetails: {
      readonly builder: { readonly id: string };
      readonly metadata: { readonly finishedOn: string };
    };
  };
}

export interface ProvenanceInput {
  readonly product: string;
  readonly version: string;
  /** The manifest's provenance summary: the statement repeats it. */
  readonly provenance: Provenance;
  /** The artifacts to name: every manifest artifact except the provenance one. */
  readonly subjects: ReadonlyArray<{ readonly name: string; readonly sha256: string }>;
}

/** Builds the statement and its canonical bytes. */
export function buildProvenance(input: ProvenanceInput): { statement: ProvenanceStatement; bytes: Buffer } {
  if (input.subjects.length === 0) throw new ReleaseInputInvalid(['no subjects'], 'provenance: a statement needs at least one subject');
  const { sourceRepository, sourceCommit, builder, buildFinished } = input.provenance;
  const statement: ProvenanceStatement = {
    _type: STATEMENT_TYPE,
    subject: input.subjects.map((s) => ({ name: s.name, digest: { sha256: s.sha256 } })),
    predicateType: SLSA_PROVENANCE_V1,
    predicate: {
      buildDefinition: {
        buildType: GLASSBOX_BUILD_TYPE,
        externalParameters: { source: { repository: sourceRepository, commit: sourceCommit }, product: input.product, version: input.version },
        resolvedDependencies: [{ uri: sourceRepository, digest: { gitCommit: sourceCommit } }],
      },
      runDetails: { builder: { id: builder }, metadata: { finishedOn: buildFinished } },
    },
  };
  return { statement, bytes: canonicalBytes(statement) };
}

export type ProvenanceCheck = { ok: true; statement: unknown } | { ok: false; errors: string[] };

/**
 * Checks a provenance artifact's bytes against the (already authenticated)
 * manifest: UTF-8 JSON without a BOM, at most PROVENANCE_MAX_BYTES, the
 * statement shape of firmware-manifests/schema/provenance-statement.schema.json,
 * and then:
 *   - the subjects are exactly the manifest's artifacts other than the
 *     provenance one: each named once, with the manifest's sha256;
 *   - runDetails.builder.id is the manifest's provenance.builder;
 *   - some resolvedDependencies entry has digest.gitCommit equal to the
 *     manifest's provenance.sourceCommit;
 *   - runDetails.metadata.finishedOn, when present, is the same instant as
 *     provenance.buildFinished.
 * The bytes need not be canonical (statements from other SLSA generators are
 * accepted; their integrity comes from the manifest's sha256). Every problem
 * is reported.
 */
export function checkProvenance(statementBytes: Buffer, manifest: Manifest): ProvenanceCheck {
  if (statementBytes.length > PROVENANCE_MAX_BYTES) {
    return { ok: false, errors: [`statement is ${statementBytes.length} bytes, over the limit of ${PROVENANCE_MAX_BYTES}`] };
  }
  if (statementBytes[0] === 0xef && statementBytes[1] === 0xbb && statementBytes[2] === 0xbf) {
    return { ok: false, errors: ['statement starts with a UTF-8 byte-order mark'] };
  }
  let value: unknown;
  try {
    value = JSON.parse(new TextDecoder('utf-8', { fatal: true, ignoreBOM: true }).decode(statementBytes));
  } catch (err) {
    return { ok: false, errors: [`statement is not UTF-8 JSON: ${err instanceof Error ? err.message : String(err)}`] };
  }
  const shape = validateProvenanceStatement(value);
  if (!shape.ok) return { ok: false, errors: shape.errors };
  const st = value as ProvenanceStatement;
  const errors: string[] = [];

  const expected = new Map(manifest.artifacts.filter((a) => a.role !== 'provenance').map((a) => [a.name, a]));
  const named = new Map<string, number>();
  st.subject.forEach((s, i) => {
    const first = named.get(s.name);
    if (first !== undefined) {
      errors.push(`/subject/${i}: "${s.name}" is named twice (first at /subject/${first})`);
      return;
    }
    named.set(s.name, i);
    const artifact = expected.get(s.name);
    if (artifact === undefined) {
      const role = manifest.artifacts.find((a) => a.name === s.name)?.role;
      errors.push(`/subject/${i}: "${s.name}" is ${role === 'provenance' ? 'the provenance artifact itself' : 'not an artifact of the manifest'}`);
    } else if (s.digest.sha256 !== artifact.sha256) {
      errors.push(`/subject/${i}: "${s.name}" has sha256 ${s.digest.sha256}, the manifest says ${artifact.sha256}`);
    }
  });
  for (const [name, a] of expected) {
    if (!named.has(name)) errors.push(`/subject: artifact "${name}" (role ${a.role}) is not named by any subject`);
  }

  const builder = st.predicate.runDetails.builder.id;
  if (builder !== manifest.provenance.builder) {
    errors.push(`/predicate/runDetails/builder/id: "${builder}" differs from the manifest's builder "${manifest.provenance.builder}"`);
  }
  const commits = (st.predicate.buildDefinition.resolvedDependencies ?? []).map((d) => (d.digest as { gitCommit?: unknown } | undefined)?.gitCommit);
  if (!commits.includes(manifest.provenance.sourceCommit)) {
    errors.push(`/predicate/buildDefinition/resolvedDependencies: no entry has digest.gitCommit ${manifest.provenance.sourceCommit} (the manifest's sourceCommit)`);
  }
  const finishedOn = (st.predicate.runDetails.metadata as { finishedOn?: string } | undefined)?.finishedOn;
  if (finishedOn !== undefined && Date.parse(finishedOn) !== Date.parse(manifest.provenance.buildFinished)) {
    errors.push(`/predicate/runDetails/metadata/finishedOn: ${finishedOn} differs from the manifest's buildFinished ${manifest.provenance.buildFinished}`);
  }
  return errors.length === 0 ? { ok: true, statement: value } : { ok: false, errors };
}

/** One line for a report or an error message. */
export function describeProvenanceErrors(errors: readonly string[]): string {
  return describeProblems('provenance artifact', errors);
}
