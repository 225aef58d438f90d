/**
 * The three Ajv validators (manifest, trust policy, provenance statement),
 * precompiled at build time, loaded lazily at run time.
 *
 * Source: the JSON Schemas in `firmware-manifests/schema/` (the only
 * hand-edited copy). `npm run build` runs `scripts/gen-validators.mjs`,
 * which calls `generateValidatorsSource()` below (Ajv standalone code
 * generation, the same Ajv options as the run-time path) and writes
 * `dist/manifest/validators.generated.cjs` next to this module's compiled
 * copy. Compiling the schemas with Ajv at start-up cost 100–450 ms (plus
 * loading Ajv's compiler); requiring the generated file costs a few ms.
 *
 * The generated file is a cache keyed by content: it records, per schema,
 * the sha256 of the schema file's bytes together with the Ajv version,
 * options and formats (`schemaKey`). A validator is taken from it only when
 * its key equals the key of the schema file read now; otherwise (no
 * generated file, as under vitest on `src/`, or a stale one after a schema
 * edit without a rebuild) that schema is compiled at run time from the same
 * file with the same options. Both paths validate identically (proved by
 * test/manifest/validators.test.ts); only the start-up time differs, and
 * `validatorOrigin()` says which path each schema took.
 *
 * Each validator is built on first use, so a command that never checks a
 * provenance statement never loads it. Ajv itself is loaded (via require,
 * synchronously) only for a run-time compilation or for code generation.
 */
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import type { Options, ValidateFunction } from 'ajv';
import type * as Ajv2020Module from 'ajv/dist/2020.js';
import type { FormatName, FormatsPlugin } from 'ajv-formats';
import { findSchemaDir, MANIFEST_SCHEMA_FILE, PROVENANCE_STATEMENT_SCHEMA_FILE, readSchemaBytes, TRUST_POLICY_SCHEMA_FILE } from './schema-files.js';

const require = createRequire(import.meta.url);

/** Ajv options of every glassbox schema validator, at run time and at build time alike. */
export const AJV_OPTIONS: Readonly<Options> = Object.freeze({ allErrors: true, strict: true, verbose: true });
/** ajv-formats configuration (full mode: real calendar dates, RFC 3986 URIs). */
export const AJV_FORMATS: Readonly<{ mode: 'full'; formats: readonly FormatName[] }> = Object.freeze({ mode: 'full', formats: Object.freeze<FormatName[]>(['date-time', 'uri']) });

export const SCHEMA_FILES = Object.freeze({
  manifest: MANIFEST_SCHEMA_FILE,
  trustPolicy: TRUST_POLICY_SCHEMA_FILE,
  provenanceStatement: PROVENANCE_STATEMENT_SCHEMA_FILE,
});
export type SchemaName = keyof typeof SCHEMA_FILES;
export const SCHEMA_NAMES = Object.freeze(Object.keys(SCHEMA_FILES) as SchemaName[]);

/** File name of the generated module, next to this module (dist/manifest/ after a build). */
export const GENERATED_FILE = 'validators.generated.cjs';
export const GENERATED_PATH = fileURLToPath(new URL(`./${GENERATED_FILE}`, import.meta.url));

/** What a generated module exports (scripts/gen-validators.mjs writes it). */
interface GeneratedModule {
  readonly schemaKeys: Readonly<Record<string, string>>;
  readonly [name: string]: unknown;
}

export interface SchemaSource {
  readonly name: SchemaName;
  readonly file: string;
  readonly bytes: Buffer;
  readonly value: Record<string, unknown>;
  /** sha256 over the Ajv version, options, formats and the schema bytes. */
  readonly key: string;
}

export type ValidatorOrigin = 'precompiled' | 'runtime';

let schemaDir: string | undefined;
const sources = new Map<SchemaName, SchemaSource>();
const validators = new Map<SchemaName, { validate: ValidateFunction; origin: ValidatorOrigin }>();
let generated: GeneratedModule | null | undefined;

/** Absolute path of the schema directory this process reads (found on first use). */
export function schemaDirectory(): string {
  schemaDir ??= findSchemaDir();
  return schemaDir;
}

function ajvVersion(): string {
  return (require('ajv/package.json') as { version: string }).version;
}

/** The cache key of a schema: what the generated code depends on. */
export function schemaKey(bytes: Buffer, version: string = ajvVersion()): string {
  const config = JSON.stringify({ ajv: version, options: AJV_OPTIONS, formats: AJV_FORMATS });
  return createHash('sha256').update(config).update('\n').update(bytes).digest('hex');
}

/** The schema file of `name`, read once per process. */
export function schemaSource(name: SchemaName): SchemaSource {
  let s = sources.get(name);
  if (s === undefined) {
    const { bytes, value } = readSchemaBytes(schemaDirectory(), SCHEMA_FILES[name]);
    s = Object.freeze({ name, file: SCHEMA_FILES[name], bytes, value, key: schemaKey(bytes) });
    sources.set(name, s);
  }
  return s;
}

/** A fresh Ajv 2020 instance with glassbox's options and formats (loads Ajv). */
export function createAjv(extra: Options = {}): Ajv2020Module.Ajv2020 {
  const { Ajv2020 } = require('ajv/dist/2020.js') as typeof Ajv2020Module;
  // CommonJS modules whose module.exports is also their `default`.
  const addFormats = (require('ajv-formats') as { default: FormatsPlugin }).default;
  const ajv = new Ajv2020({ ...AJV_OPTIONS, ...extra });
  addFormats(ajv, { ...AJV_FORMATS, formats: [...AJV_FORMATS.formats] });
  return ajv;
}

function loadGenerated(): GeneratedModule | null {
  if (generated === undefined) generated = existsSync(GENERATED_PATH) ? (require(GENERATED_PATH) as GeneratedModule) : null;
  return generated;
}

/** The validator of one schema: precompiled when the generated code matches the schema file, else compiled now. */
export function validator(name: SchemaName): ValidateFunction {
  let v = validators.get(name);
  if (v === undefined) {
    const source = schemaSource(name);
    const mod = loadGenerated();
    const fn = mod?.schemaKeys[name] === source.key ? mod[name] : undefined;
    v = typeof fn === 'function'
      ? { validate: fn as ValidateFunction, origin: 'precompiled' }
      : { validate: createAjv().compile(source.value), origin: 'runtime' };
    validators.set(name, v);
  }
  return v.validate;
}

/** Which path built the validator of `name` (building it if not yet built). */
export function validatorOrigin(name: SchemaName): ValidatorOrigin {
  validator(name);
  return (validators.get(name) as { origin: ValidatorOrigin }).origin;
}

/**
 * The CommonJS source of the generated module for the given schema files
 * (all three by default): Ajv standalone code exporting one validate
 * function per schema name, plus `schemaKeys`. Used by
 * scripts/gen-validators.mjs and by the equivalence test.
 */
export function generateValidatorsSource(schemas: readonly SchemaSource[] = SCHEMA_NAMES.map(schemaSource)): string {
  type StandaloneCode = (ajv: Ajv2020Module.Ajv2020, refs: Record<string, string>) => string;
  const standaloneCode = (require('ajv/dist/standalone/index.js') as { default: StandaloneCode }).default;
  const ajv = createAjv({ code: { source: true } });
  const refs: Record<string, string> = {};
  const keys: Record<string, string> = {};
  for (const s of schemas) {
    const id = s.value['$id'];
    if (typeof id !== 'string') throw new Error(`${s.file}: a schema needs an $id to be precompiled`);
    ajv.addSchema(s.value);
    refs[s.name] = id;
    keys[s.name] = s.key;
  }
  const code = standaloneCode(ajv, refs);
  return [
    `// GENERATED by scripts/gen-validators.mjs from firmware-manifests/schema/ (do not edit; npm run build regenerates it).`,
    code,
    `exports.schemaKeys = ${JSON.stringify(keys, null, 2)};`,
    '',
  ].join('\n');
}
