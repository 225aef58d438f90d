/**
 * Validators for the manifest (bundle-v1 sections 2 and 4), the trust
 * policy (section 3) and the shape of a provenance statement: the JSON
 * Schemas in firmware-manifests/schema/ (Ajv, draft 2020-12, allErrors,
 * strict), followed by the rules a schema cannot say. Every error names
 * its JSON Pointer path.
 *
 * The Ajv validators come from validators.ts: precompiled at build time
 * from the same schema files, or compiled on first use when no matching
 * precompiled code exists; each is built only when first needed.
 *
 * The semantic rules run only once the schema holds (they rely on the
 * shapes it guarantees), so a document with schema errors reports those
 * first. Pure apart from reading the schema files once (schema-files.ts).
 */
import type { ErrorObject } from 'ajv';
import { parseCidr } from './cidr.js';
import { schemaDirectory, schemaSource, validator } from './validators.js';
import type { Manifest } from './types.js';
import type { TrustPolicy } from '../trust/types.js';

export type ManifestValidation = { ok: true; manifest: Manifest } | { ok: false; errors: string[] };
export type TrustPolicyValidation = { ok: true; policy: TrustPolicy } | { ok: false; errors: string[] };

/**
 * Largest provenance artifact a manifest may declare. The verifier holds the
 * provenance statement in memory to check it (checkProvenance), so its size
 * is bounded here, before any artifact byte is read.
 */
export const PROVENANCE_MAX_BYTES = 1024 * 1024;

export const manifestSchema = schemaSource('manifest').value;
export const trustPolicySchema = schemaSource('trustPolicy').value;
export const provenanceStatementSchema = schemaSource('provenanceStatement').value;
/** Absolute path of the schema directory this process loaded. */
export const SCHEMA_DIR = schemaDirectory();

export function validateManifest(value: unknown): ManifestValidation {
  const manifestValidator = validator('manifest');
  if (!manifestValidator(value)) return { ok: false, errors: formatErrors(manifestValidator.errors ?? []) };
  const manifest = value as Manifest;
  const errors = manifestRules(manifest);
  return errors.length === 0 ? { ok: true, manifest } : { ok: false, errors };
}

export function validateTrustPolicy(value: unknown): TrustPolicyValidation {
  const trustPolicyValidator = validator('trustPolicy');
  if (!trustPolicyValidator(value)) return { ok: false, errors: formatErrors(trustPolicyValidator.errors ?? []) };
  const policy = value as TrustPolicy;
  // uniqueItems already holds these; kept as a named rule so the message is exact.
  const errors = [
    ...duplicates(policy.roots, '/roots', 'root certificate'),
    ...duplicates(policy.revoked.certificates, '/revoked/certificates', 'revoked certificate hash'),
    ...duplicates(policy.revoked.keys, '/revoked/keys', 'revoked key hash'),
  ];
  return errors.length === 0 ? { ok: true, policy } : { ok: false, errors };
}

/**
 * Shape check of a provenance statement (only the members glassbox reads).
 * The comparison with the manifest is checkProvenance in src/release/provenance.ts.
 */
export function validateProvenanceStatement(value: unknown): { ok: true } | { ok: false; errors: string[] } {
  const provenanceStatementValidator = validator('provenanceStatement');
  if (!provenanceStatementValidator(value)) return { ok: false, errors: formatErrors(provenanceStatementValidator.errors ?? []) };
  return { ok: true };
}

/** The rules of sections 2 and 4 that JSON Schema cannot express. */
function manifestRules(m: Manifest): string[] {
  const errors: string[] = [];
  if (Date.parse(m.expires) <= Date.parse(m.released)) {
    errors.push(`/expires: must be after released (${m.released}), is ${m.expires}`);
  }
  errors.push(...duplicates(m.artifacts.map((a) => a.name), '/artifacts', 'artifact name', 'name'));
  errors.push(...duplicates(m.egress.map((r) => r.id), '/egress', 'egress rule id', 'id'));

  const byRole = (role: string): number[] => m.artifacts.flatMap((a, i) => (a.role === role ? [i] : []));
  for (const [role, min, max] of [['sbom', 1, 1], ['provenance', 1, 1], ['trust', 0, 1]] as const) {
    const found = byRole(role);
    if (found.length < min) errors.push(`/artifacts: must contain exactly one artifact of role "${role}", has none`);
    if (found.length > max) {
      const at = found.map((i) => `/artifacts/${i}`).join(', ');
      errors.push(`/artifacts: must contain ${min === 0 ? 'at most' : 'exactly'} one artifact of role "${role}", has ${found.length} (${at})`);
    }
  }
  m.artifacts.forEach((a, i) => {
    if (a.role === 'provenance' && a.size > PROVENANCE_MAX_BYTES) {
      errors.push(`/artifacts/${i}/size: a provenance artifact must be at most ${PROVENANCE_MAX_BYTES} bytes, is ${a.size}`);
    }
  });
  m.egress.forEach((rule, i) => {
    if (rule.ports !== undefined && rule.ports[0] > rule.ports[1]) {
      errors.push(`/egress/${i}/ports: range [${rule.ports[0]}, ${rule.ports[1]}] must have from <= to`);
    }
    if (rule.cidr !== undefined) {
      const parsed = parseCidr(rule.cidr);
      if (!parsed.ok) errors.push(`/egress/${i}/cidr: "${rule.cidr}" ${parsed.reason}`);
    }
  });
  return errors;
}

function duplicates(values: readonly string[], base: string, what: string, field?: string): string[] {
  const first = new Map<string, number>();
  const errors: string[] = [];
  values.forEach((v, i) => {
    const seen = first.get(v);
    const path = field === undefined ? `${base}/${i}` : `${base}/${i}/${field}`;
    if (seen === undefined) first.set(v, i);
    else errors.push(`${path}: duplicate ${what} ${short(v)} (first at ${base}/${seen})`);
  });
  return errors;
}

function short(v: string): string {
  return JSON.stringify(v.length > 60 ? `${v.slice(0, 57)}...` : v);
}

/**
 * Ajv errors as `<JSON Pointer>: <what is wrong>`. A failed "exactly one of"
 * (oneOf over `required` branches) becomes one line naming the fields, and
 * a failed anyOf one line naming the accepted forms by their titles, in
 * place of the branch-by-branch errors.
 */
export function formatErrors(errors: readonly ErrorObject[]): string[] {
  const folded = errors.filter((e) => e.keyword === 'oneOf' || e.keyword === 'anyOf').map((e) => e.schemaPath + '/');
  const out: string[] = [];
  for (const e of errors) {
    if (folded.some((prefix) => e.schemaPath.startsWith(prefix))) continue;
    const path = e.instancePath === '' ? '/' : e.instancePath;
    out.push(`${path}: ${describe(e)}`);
  }
  return out;
}

function describe(e: ErrorObject): string {
  const params = e.params as Record<string, unknown>;
  switch (e.keyword) {
    case 'additionalProperties':
      return `unknown field "${String(params.additionalProperty)}" (not allowed)`;
    case 'required':
      return `missing required field "${String(params.missingProperty)}"`;
    case 'enum':
      return `must be one of ${(params.allowedValues as unknown[]).map((v) => JSON.stringify(v)).join(', ')}`;
    case 'const':
      return `must be ${JSON.stringify(params.allowedValue)}`;
    case 'oneOf': {
      const names = requiredNames(e.schema);
      if (names === null) return e.message ?? 'must match exactly one alternative';
      const passing = params.passingSchemas;
      return `must have exactly one of ${names.map((n) => `"${n}"`).join(' or ')}, has ${Array.isArray(passing) ? 'both' : 'neither'}`;
    }
    case 'anyOf': {
      const titles = Array.isArray(e.schema)
        ? (e.schema as Array<{ title?: unknown }>).map((s) => (typeof s.title === 'string' ? s.title : null))
        : [];
      if (titles.length > 0 && titles.every((t) => t !== null)) return `must be ${titles.join(' or ')}`;
      return e.message ?? 'must match one of the alternatives';
    }
    default:
      return e.message ?? e.keyword;
  }
}

/** ["host","cidr"] for oneOf: [{required:["host"]},{required:["cidr"]}], else null. */
function requiredNames(schema: unknown): string[] | null {
  if (!Array.isArray(schema)) return null;
  const names: string[] = [];
  for (const branch of schema as unknown[]) {
    const req = (branch as { required?: unknown }).required;
    if (!Array.isArray(req) || req.length !== 1 || typeof req[0] !== 'string') return null;
    names.push(req[0]);
  }
  return names;
}
