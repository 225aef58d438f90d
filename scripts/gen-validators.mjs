#!/usr/bin/env node
// Precompiles the JSON Schema validators (Ajv standalone code) from
// firmware-manifests/schema/ into dist/manifest/validators.generated.cjs.
//
//   node scripts/gen-validators.mjs        # run by `npm run build` right after tsc
//
// The generator is dist/manifest/validators.js (compiled from
// src/manifest/validators.ts), so the Ajv options of the generated code and
// of the run-time fallback are the same code. The output is a cache keyed
// by each schema file's sha256 (and Ajv's version and options): a schema
// edited after the build is compiled at run time instead of being
// validated by stale code. See docs/manifest.md, "Precompiled validators".
import { rename, writeFile } from 'node:fs/promises';
import { dirname, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = dirname(dirname(fileURLToPath(import.meta.url)));
const mod = await import(new URL('../dist/manifest/validators.js', import.meta.url).href).catch((err) => {
  console.error(`gen-validators: cannot load dist/manifest/validators.js (run tsc first): ${err instanceof Error ? err.message : String(err)}`);
  process.exit(2);
});
const source = mod.generateValidatorsSource();
const out = mod.GENERATED_PATH;
// Write-then-rename: a concurrent process never requires a half-written file.
const tmp = `${out}.${process.pid}.tmp`;
await writeFile(tmp, source);
await rename(tmp, out);
console.log(`gen-validators: ${mod.SCHEMA_NAMES.join(', ')} -> ${relative(root, out)} (${source.length} bytes)`);
