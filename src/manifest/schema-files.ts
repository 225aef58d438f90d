/**
 * Where the JSON Schemas live at run time.
 *
 * The schemas have ONE source: `firmware-manifests/schema/*.schema.json` at
 * the package root, published there for buyers and auditors. The code reads
 * those same files once, when `src/manifest/schema.ts` is first imported
 * (the validators precompiled at build time are keyed by their bytes: see
 * validators.ts).
 *
 * This module sits at `src/manifest/` under vitest and `dist/manifest/`
 * after `npm run build`, both two levels below the package root; rather
 * than count levels, it walks up from its own directory (at most 6 steps)
 * to the first directory holding a `package.json` named `glassbox` and
 * `firmware-manifests/schema/manifest.schema.json`. A packaged install must
 * therefore ship `firmware-manifests/schema/` next to `dist/`; if it does
 * not, the import fails at once with an error naming every place looked at.
 *
 * Reading the static schema files is the only I/O here; the validators
 * built from them are pure.
 */
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const SCHEMA_DIR_RELATIVE = join('firmware-manifests', 'schema');
export const MANIFEST_SCHEMA_FILE = 'manifest.schema.json';
export const TRUST_POLICY_SCHEMA_FILE = 'trust-policy.schema.json';
export const PROVENANCE_STATEMENT_SCHEMA_FILE = 'provenance-statement.schema.json';

/** Absolute path of `firmware-manifests/schema` for this installation. */
export function findSchemaDir(start: string = dirname(fileURLToPath(import.meta.url))): string {
  const looked: string[] = [];
  let dir = start;
  for (let step = 0; step <= 6; step++) {
    const candidate = join(dir, SCHEMA_DIR_RELATIVE);
    looked.push(candidate);
    if (existsSync(join(candidate, MANIFEST_SCHEMA_FILE)) && isGlassboxRoot(dir)) return candidate;
    const parent = dirname(dir);
    if (parent === dir) break;
    dir = parent;
  }
  throw new Error(`glassbox JSON Schemas not found; looked in: ${looked.join(', ')}`);
}

function isGlassboxRoot(dir: string): boolean {
  try {
    const pkg = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')) as { name?: unknown };
    return pkg.name === 'glassbox';
  } catch {
    return false;
  }
}

export function readSchema(dir: string, file: string): Record<string, unknown> {
  return readSchemaBytes(dir, file).value;
}

/** A schema file's exact bytes (what the precompiled validators are keyed by) and its parsed value. */
export function readSchemaBytes(dir: string, file: string): { bytes: Buffer; value: Record<string, unknown> } {
  const path = join(dir, file);
  const bytes = readFileSync(path);
  const value = JSON.parse(bytes.toString('utf8')) as unknown;
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new Error(`${path}: a JSON Schema must be an object`);
  }
  return { bytes, value: value as Record<string, unknown> };
}
