/**
 * The precompiled validators (Ajv standalone code, generated at build time
 * by scripts/gen-validators.mjs) against validators compiled by Ajv at run
 * time from the same schema files: the same verdicts, the same error
 * objects in the same order, the same formatErrors lines, on every
 * schema-rule fixture of schema.test.ts and trust-policy.test.ts (repeated
 * here as a corpus) and on random mutations. Then the built dist/ really
 * uses the generated code, and a schema edited after the build is never
 * judged by the stale code.
 */
import { execFileSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ValidateFunction } from 'ajv';
import fc from 'fast-check';
import { afterAll, describe, expect, it } from 'vitest';
import { formatErrors, PROVENANCE_MAX_BYTES, validateManifest, validateProvenanceStatement, validateTrustPolicy } from '../../src/manifest/schema.js';
import { createAjv, generateValidatorsSource, GENERATED_FILE, SCHEMA_NAMES, schemaKey, schemaSource, type SchemaName } from '../../src/manifest/validators.js';
import { buildProvenance } from '../../src/release/provenance.js';
import { validManifest } from './fixtures.js';

const ROOT = join(import.meta.dirname, '..', '..');
type Doc = unknown;
type Json = Record<string, unknown>;

// ---------------------------------------------------------------- the two validator sets

/** The generated module, evaluated in memory (no build needed); its requires resolve from here. */
function precompiled(): Record<SchemaName, ValidateFunction> & { schemaKeys: Record<string, string> } {
  const mod = { exports: {} as Record<string, unknown> };
  new Function('module', 'exports', 'require', generateValidatorsSource())(mod, mod.exports, createRequire(import.meta.url));
  return mod.exports as ReturnType<typeof precompiled>;
}
const pre = precompiled();
const runtime = Object.fromEntries(SCHEMA_NAMES.map((n) => [n, createAjv().compile(schemaSource(n).value)])) as Record<SchemaName, ValidateFunction>;

function outcome(v: ValidateFunction, doc: Doc): { ok: boolean; errors: unknown; lines: string[] } {
  const ok = v(doc) as boolean;
  const errors = v.errors ?? null;
  return { ok, errors, lines: formatErrors(errors ?? []) };
}

// ---------------------------------------------------------------- the corpus

const clone = <T>(v: T): T => structuredClone(v);
/** Sets (or with `undefined`, deletes) the member at a path of keys and indexes. */
function withValue(base: Json, path: readonly (string | number)[], value: unknown): Json {
  const doc = clone(base);
  let at: Record<string | number, unknown> = doc;
  for (const k of path.slice(0, -1)) at = at[k] as Record<string | number, unknown>;
  const last = path[path.length - 1] as string | number;
  if (value === undefined) delete at[last];
  else at[last] = value;
  return doc;
}

const artifact = (i: number, role = 'other'): Json => ({ name: `file-${i}.bin`, size: i, sha256: 'd'.repeat(64), role });
const rule = (i: number): Json => ({ id: `rule-${i}`, purpose: 'p', proto: 'tcp', cidr: '192.0.2.0/24', port: 1 + i });

/** Every schema rule of schema.test.ts, as documents. */
function manifestCorpus(): Doc[] {
  const m = validManifest();
  const docs: Doc[] = [m, null, [], 'x', 1, {}, true];
  const set = (path: (string | number)[], ...values: unknown[]): void => {
    for (const v of values) docs.push(withValue(m, path, v));
  };
  for (const f of ['schema', 'product', 'hardware', 'version', 'securityVersion', 'released', 'expires', 'artifacts', 'egress', 'provenance', 'notes']) set([f], undefined);
  for (const f of ['name', 'size', 'sha256', 'role']) set(['artifacts', 0, f], undefined);
  for (const f of ['id', 'purpose', 'proto', 'host', 'port']) set(['egress', 0, f], undefined);
  for (const f of ['sourceRepository', 'sourceCommit', 'builder', 'buildFinished']) set(['provenance', f], undefined);
  set(['signature'], 'x');
  set(['artifacts', 1, 'url'], 'x');
  set(['egress', 0, 'any'], true);
  set(['provenance', 'branch'], 'main');
  set(['schema'], 'glassbox.manifest/v2');
  set(['product'], 'HSS-NVR', '', 'a'.repeat(64), 'a'.repeat(65), 7);
  set(['hardware'], [], Array.from({ length: 32 }, (_, i) => `hw-${i}`), Array.from({ length: 33 }, (_, i) => `hw-${i}`), ['a', 'a'], ['nvr 8'], [8], 'nvr-8p');
  for (const v of ['0.0.0', '1.0.0-alpha.1', '1.0.0-x.7.z.92', '1.0.0-beta+exp.sha.5114f85', '1.0.0-x-y-z.--', '1.2', '1.2.3.4', 'v1.2.3', '01.2.3', '1.2.3-', '1.2.3-01', '1.2.3+', '1.2.3-a..b', ' 1.2.3', '1.2.3\n', `1.0.0-${'a'.repeat(300)}`]) set(['version'], v);
  set(['securityVersion'], 0, 2 ** 31 - 1, 2 ** 31, -1, 1.5, '3', null);
  for (const t of ['2025-03-01T12:00:00.123Z', '2025-03-01T12:00:00+00:00', '2025-03-01t12:00:00Z', '2025-03-01 12:00:00Z', '2025-03-01T12:00Z', '2025-03-01T12:00:00.1234Z', '2016-12-31T23:59:60Z', '2025-03-01', '2025-13-01T12:00:00Z']) set(['released'], t);
  set(['expires'], '2026-02-30T12:00:00Z', '2025-03-01T12:00:00Z', '2025-03-01T11:59:59.999Z', '2025-03-01T12:00:00.001Z');
  set(['provenance', 'buildFinished'], '2025-03-01T24:00:00Z', '2024-02-29T00:00:00Z', '2023-02-29T00:00:00Z');
  set(['artifacts'], [], [artifact(0, 'sbom')], [...m.artifacts, ...Array.from({ length: 61 }, (_, i) => artifact(i))], [...m.artifacts, ...Array.from({ length: 62 }, (_, i) => artifact(i))]);
  for (const name of ['../etc', '.hidden', 'a/b', 'a\\b', '-x', '', 'a b', 'ä.bin', 'a'.repeat(129), `A0._-${'x'.repeat(123)}`, 'rootfs.squashfs']) set(['artifacts', 2, 'name'], name);
  set(['artifacts', 0, 'size'], 10.5, -1, 0, Number.MAX_SAFE_INTEGER, 2 ** 53, '1');
  set(['artifacts', 0, 'sha256'], 'A'.repeat(64), 'a'.repeat(63), 'a'.repeat(65));
  set(['artifacts', 0, 'role'], 'bootloader', 'sbom', 'provenance', 'trust');
  set(['artifacts', 1, 'role'], 'other');
  set(['artifacts', 2, 'role'], 'app');
  set(['artifacts', 2, 'size'], PROVENANCE_MAX_BYTES, PROVENANCE_MAX_BYTES + 1);
  set(['artifacts'], [...m.artifacts, artifact(1, 'trust')], [...m.artifacts, artifact(1, 'trust'), artifact(2, 'trust')]);
  set(['egress'], [], Array.from({ length: 256 }, (_, i) => rule(i)), Array.from({ length: 257 }, (_, i) => rule(i)), {});
  set(['egress', 1, 'id'], 'ntp', 'NTP', 'a'.repeat(65));
  set(['egress', 0, 'purpose'], 'p'.repeat(200), 'p'.repeat(201), '', 'a\nb', 'a\u007fb');
  set(['egress', 0, 'proto'], 'icmp');
  set(['egress', 0, 'cidr'], '192.0.2.0/24');
  set(['egress', 0, 'ports'], [1, 2]);
  set(['egress', 0, 'port'], 0, 65536, 1, 65535, '80');
  set(['egress', 1, 'ports'], [9000, 8000], [8883, 8883], [1], [1, 2, 3], [0, 10], [1, 65536], ['1', 2]);
  for (const host of ['pool.ntp.org', 'a.b', 'xn--bcher-kva.example', `${'a'.repeat(63)}.example`, 'localhost', '192.0.2.1', 'NTP.example', '*.example.com', '-a.example', 'a-.example', 'example.com.', 'a..example', 'a_b.example', `${'a'.repeat(64)}.example`, `${'a.'.repeat(126)}ab`]) set(['egress', 0, 'host'], host);
  for (const cidr of ['192.0.2.0/24', '0.0.0.0/0', '2001:db8::/32', '::/0', '::ffff:192.0.2.0/120', '192.0.2.1/24', '2001:db8::1/32', '1:2:3:4:5:6:7:8:9/64', '2001:db8:::/48', '192.0.2.0', '192.0.2.0/33', '256.0.2.0/24', '192.000.2.0/24', '2001:DB8::/32', '2001:db8::/129', 'fe80::1%eth0/128', 'example.com/24', '']) set(['egress', 1, 'cidr'], cidr);
  set(['egress', 1], withValue(rule(1), ['cidr'], undefined), withValue(withValue(rule(1), ['cidr'], undefined), ['port'], undefined));
  for (const c of ['e'.repeat(64), 'e'.repeat(39), 'e'.repeat(41), 'E'.repeat(40), 'g'.repeat(40)]) set(['provenance', 'sourceCommit'], c);
  set(['provenance', 'sourceRepository'], 'git.hss.example/nvr', 'https://[::1', 'x'.repeat(2049), '');
  set(['provenance', 'builder'], 'ci runner 7', 'urn:x:y');
  set(['notes'], 'n'.repeat(4096), 'n'.repeat(4097), 5);
  // several errors at once (allErrors): every one reported, in order
  docs.push(withValue(withValue(withValue(m, ['product'], 'X'), ['artifacts', 0, 'sha256'], 'Z'), ['egress', 1, 'proto'], undefined));
  return docs;
}

const PEM_A = '-----BEGIN CERTIFICATE-----\nMIIBszCCAVmgAwIBAgIUQ0FBQ0FBQ0FBQ0FBQ0FBQ0FBQ0FBQ0EwCgYIKoZIzj0E\nAwIwEjEQMA4GA1UEAwwHcm9vdC1jYQ==\n-----END CERTIFICATE-----\n';
const PEM_B = PEM_A.replace('MIIBsz', 'MIIBsy');
const validPolicy = (): Json => ({ schema: 'glassbox.trust/v1', roots: [PEM_A], threshold: 2, revoked: { certificates: ['a'.repeat(64)], keys: [] } });

/** Every schema rule of trust-policy.test.ts, as documents. */
function policyCorpus(): Doc[] {
  const p = validPolicy();
  const docs: Doc[] = [p, null, [], {}, 'x'];
  const set = (path: (string | number)[], ...values: unknown[]): void => {
    for (const v of values) docs.push(withValue(p, path, v));
  };
  for (const f of ['schema', 'roots', 'threshold', 'revoked']) set([f], undefined);
  for (const f of ['certificates', 'keys']) set(['revoked', f], undefined);
  set(['thresholdFromBundle'], true);
  set(['revoked', 'serials'], []);
  set(['schema'], 'glassbox.manifest/v1');
  set(['threshold'], 0, 1, 16, 17, 1.5, '2');
  set(['roots'], [], [PEM_A.trimEnd(), PEM_B], [PEM_A, PEM_A], Array.from({ length: 17 }, (_, i) => PEM_A.replace('MIIB', `MII${String.fromCharCode(65 + i)}`)), ['x'], [PEM_A.replace(/\n/g, '\r\n')], [PEM_A + PEM_B], [`${PEM_A.slice(0, 28)}${'A'.repeat(77)}\n-----END CERTIFICATE-----\n`], [PEM_A.padEnd(16385, '\n')]);
  set(['revoked', 'certificates'], ['A'.repeat(64)], ['a'.repeat(64), 'a'.repeat(64)], Array.from({ length: 4097 }, (_, i) => i.toString(16).padStart(64, '0')), [1]);
  set(['revoked', 'keys'], ['b'.repeat(63)], ['b'.repeat(64)]);
  return docs;
}

function validStatement(): Json {
  const provenance = validManifest().provenance as { sourceRepository: string; sourceCommit: string; builder: string; buildFinished: string };
  const { statement } = buildProvenance({ product: 'hss-nvr', version: '4.2.0', provenance, subjects: [{ name: 'rootfs.squashfs', sha256: 'a'.repeat(64) }, { name: 'sbom.cdx.json', sha256: 'b'.repeat(64) }] });
  return clone(statement) as unknown as Json;
}

/** The provenance statement shape, rule by rule. */
function statementCorpus(): Doc[] {
  const s = validStatement();
  const docs: Doc[] = [s, null, {}, []];
  const set = (path: (string | number)[], ...values: unknown[]): void => {
    for (const v of values) docs.push(withValue(s, path, v));
  };
  for (const f of ['_type', 'subject', 'predicateType', 'predicate']) set([f], undefined);
  set(['_type'], 'https://in-toto.io/Statement/v0.1');
  set(['predicateType'], 'https://slsa.dev/provenance/v0.2');
  set(['extra'], { allowed: true });
  set(['subject'], [], Array.from({ length: 65 }, (_, i) => ({ name: `f${i}`, digest: { sha256: 'a'.repeat(64) } })), 'x');
  set(['subject', 0, 'name'], '', 'n'.repeat(129), 5, undefined);
  set(['subject', 0, 'digest'], {}, { sha256: 'A'.repeat(64) }, { sha256: 'a'.repeat(64), sha512: 'x' }, undefined);
  set(['predicate', 'buildDefinition'], undefined, 'x');
  set(['predicate', 'buildDefinition', 'buildType'], 'not a uri', `urn:${'x'.repeat(2048)}`, undefined);
  set(['predicate', 'buildDefinition', 'externalParameters'], undefined, [], 'x');
  set(['predicate', 'buildDefinition', 'resolvedDependencies'], 'x', [1], [{ uri: 5 }], [{ digest: 'x' }], []);
  set(['predicate', 'runDetails'], undefined, {});
  set(['predicate', 'runDetails', 'builder'], undefined, {}, { id: 'not a uri' }, { id: 5 });
  set(['predicate', 'runDetails', 'metadata'], 'x', {}, { finishedOn: '2025-02-30T00:00:00Z' }, { finishedOn: 5 });
  return docs;
}

const VALID: Record<SchemaName, () => Json> = { manifest: validManifest, trustPolicy: validPolicy, provenanceStatement: validStatement };
const CORPUS: Record<SchemaName, Doc[]> = { manifest: manifestCorpus(), trustPolicy: policyCorpus(), provenanceStatement: statementCorpus() };

/** Random mutations of a valid document: a member replaced by any JSON value, deleted, or added. */
function mutations(base: Json): fc.Arbitrary<Doc> {
  const paths: (string | number)[][] = [];
  const walk = (v: unknown, path: (string | number)[]): void => {
    if (path.length > 0) paths.push(path);
    if (Array.isArray(v)) v.forEach((x, i) => walk(x, [...path, i]));
    else if (v !== null && typeof v === 'object') for (const [k, x] of Object.entries(v)) walk(x, [...path, k]);
  };
  walk(base, []);
  const edit = fc.tuple(fc.constantFrom(...paths), fc.oneof(fc.jsonValue(), fc.constant(undefined), fc.string(), fc.integer()));
  const add = fc.tuple(fc.constantFrom(...paths.filter((p) => p.length < 3)), fc.string({ maxLength: 8 }), fc.jsonValue());
  return fc.oneof(
    fc.array(edit, { minLength: 1, maxLength: 3 }).map((edits) => edits.reduce<Json>((doc, [p, v]) => {
      try {
        return withValue(doc, p, v);
      } catch {
        return doc; // the path no longer exists after an earlier edit
      }
    }, base)),
    add.map(([p, key, v]) => {
      try {
        return withValue(base, [...p, key], v);
      } catch {
        return base;
      }
    }),
  );
}

// ---------------------------------------------------------------- in process

describe('precompiled and run-time compiled validators agree', () => {
  it('the generated module exports one validator and one key per schema', () => {
    for (const name of SCHEMA_NAMES) {
      expect(typeof pre[name]).toBe('function');
      expect(pre.schemaKeys[name]).toBe(schemaSource(name).key);
    }
  });

  for (const name of SCHEMA_NAMES) {
    it(`${name}: the same verdict, error objects and formatted lines on each of the ${CORPUS[name].length} rule fixtures`, () => {
      let rejected = 0;
      for (const doc of CORPUS[name]) {
        const a = outcome(pre[name], doc);
        const b = outcome(runtime[name], doc);
        expect(a, JSON.stringify(doc).slice(0, 200)).toEqual(b);
        if (!a.ok) rejected++;
        for (const line of a.lines) expect(line).toMatch(/^\/\S*: /); // each error names its JSON path
      }
      // the corpus exercises both verdicts (a fixture set that only passes proves nothing)
      expect(rejected).toBeGreaterThan(CORPUS[name].length / 2);
      expect(rejected).toBeLessThan(CORPUS[name].length);
    });

    it(`${name}: the same results on random mutations of a valid document`, () => {
      fc.assert(
        fc.property(mutations(VALID[name]()), (doc) => {
          expect(outcome(pre[name], doc)).toEqual(outcome(runtime[name], doc));
        }),
        { numRuns: 300 },
      );
    });
  }

  it('schema.ts messages are unchanged (spot checks through the loaded validators)', () => {
    const m = withValue(validManifest(), ['egress', 0, 'host'], undefined);
    expect(validateManifest(m)).toEqual({ ok: false, errors: ['/egress/0: must have exactly one of "host" or "cidr", has neither'] });
    expect(validateTrustPolicy(withValue(validPolicy(), ['threshold'], 0))).toEqual({ ok: false, errors: ['/threshold: must be >= 1'] });
    expect(validateProvenanceStatement(withValue(validStatement(), ['predicate', 'runDetails', 'builder', 'id'], 'x y'))).toEqual({
      ok: false,
      errors: ['/predicate/runDetails/builder/id: must match format "uri"'],
    });
  });

  it('the cache key changes with the schema bytes and with the Ajv version', () => {
    const bytes = schemaSource('manifest').bytes;
    expect(schemaKey(bytes)).toBe(schemaSource('manifest').key);
    expect(schemaKey(Buffer.concat([bytes, Buffer.from(' ')]))).not.toBe(schemaKey(bytes));
    expect(schemaKey(bytes, '0.0.0')).not.toBe(schemaKey(bytes));
  });
});

// ---------------------------------------------------------------- the built dist/

const DIST_VALIDATORS = join(ROOT, 'dist', 'manifest', 'validators.js');
const temps: string[] = [];
afterAll(() => {
  for (const d of temps) rmSync(d, { recursive: true, force: true });
});

/** Runs a script in a child node with the corpus on stdin; returns its JSON output. */
function child(script: string, input: unknown): unknown {
  const out = execFileSync(process.execPath, ['--input-type=module', '-e', script], { input: JSON.stringify(input), encoding: 'utf8', maxBuffer: 256 * 1024 * 1024 });
  return JSON.parse(out) as unknown;
}

/** A package root in a temp dir: package.json, the schemas (optionally edited), dist/manifest/ copied from the build, node_modules linked. */
function packageCopy(editSchema?: (name: SchemaName, text: string) => string, withGenerated = true): string {
  const dir = mkdtempSync(join(tmpdir(), 'glassbox-validators-'));
  temps.push(dir);
  writeFileSync(join(dir, 'package.json'), '{"name":"glassbox","type":"module"}');
  mkdirSync(join(dir, 'firmware-manifests', 'schema'), { recursive: true });
  for (const name of SCHEMA_NAMES) {
    const file = schemaSource(name).file;
    const text = readFileSync(join(ROOT, 'firmware-manifests', 'schema', file), 'utf8');
    writeFileSync(join(dir, 'firmware-manifests', 'schema', file), editSchema ? editSchema(name, text) : text);
  }
  mkdirSync(join(dir, 'dist', 'manifest'), { recursive: true });
  for (const f of ['validators.js', 'schema-files.js', ...(withGenerated ? [GENERATED_FILE] : [])]) copyFileSync(join(ROOT, 'dist', 'manifest', f), join(dir, 'dist', 'manifest', f));
  symlinkSync(join(ROOT, 'node_modules'), join(dir, 'node_modules'), 'dir');
  return dir;
}

describe('the built module (dist/, after npm run build)', () => {
  it('loads the generated validators for all three schemas, and they judge the corpus as the run-time compiled ones', () => {
    expect(existsSync(join(ROOT, 'dist', 'manifest', GENERATED_FILE)), `dist/manifest/${GENERATED_FILE} missing: run npm run build`).toBe(true);
    const script = `
      import { readFileSync } from 'node:fs';
      const v = await import(${JSON.stringify(DIST_VALIDATORS)});
      const corpus = JSON.parse(readFileSync(0, 'utf8'));
      const results = {};
      for (const [name, docs] of Object.entries(corpus)) {
        const fn = v.validator(name);
        results[name] = docs.map((d) => { const ok = fn(d); return { ok, errors: fn.errors ?? null }; });
      }
      const origins = Object.fromEntries(v.SCHEMA_NAMES.map((n) => [n, v.validatorOrigin(n)]));
      console.log(JSON.stringify({ origins, results }));`;
    const got = child(script, CORPUS) as { origins: Record<string, string>; results: Record<SchemaName, Array<{ ok: boolean; errors: unknown }>> };
    expect(got.origins).toEqual({ manifest: 'precompiled', trustPolicy: 'precompiled', provenanceStatement: 'precompiled' });
    for (const name of SCHEMA_NAMES) {
      const expected = CORPUS[name].map((d) => {
        const r = outcome(runtime[name], d);
        return JSON.parse(JSON.stringify({ ok: r.ok, errors: r.errors })) as unknown;
      });
      expect(got.results[name]).toEqual(expected);
    }
  });

  it('a schema edited after the build is compiled at run time, never judged by the stale generated code', () => {
    const dir = packageCopy((name, text) => (name === 'manifest' ? text.replace('"^[a-z0-9-]{1,64}$"', '"^[a-z0-9-]{1,8}$"') : text));
    const script = `
      import { readFileSync } from 'node:fs';
      const v = await import(${JSON.stringify(join(dir, 'dist', 'manifest', 'validators.js'))});
      const fn = v.validator('manifest');
      const doc = JSON.parse(readFileSync(0, 'utf8'));
      console.log(JSON.stringify({ origins: v.SCHEMA_NAMES.map((n) => v.validatorOrigin(n)), ok: fn(doc), errors: fn.errors }));`;
    const got = child(script, withValue(validManifest(), ['product'], 'a'.repeat(9))) as { origins: string[]; ok: boolean; errors: Array<{ instancePath: string; keyword: string }> };
    expect(got.origins).toEqual(['runtime', 'precompiled', 'precompiled']);
    expect(got.ok).toBe(false);
    expect(got.errors.map((e) => `${e.instancePath} ${e.keyword}`)).toEqual(['/product pattern']);
  });

  it('without the generated file, every schema is compiled at run time', () => {
    const dir = packageCopy(undefined, false);
    const script = `
      const v = await import(${JSON.stringify(join(dir, 'dist', 'manifest', 'validators.js'))});
      console.log(JSON.stringify(v.SCHEMA_NAMES.map((n) => v.validatorOrigin(n))));`;
    expect(child(script, null)).toEqual(['runtime', 'runtime', 'runtime']);
  });
});
