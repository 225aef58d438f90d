import { mkdtempSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { findSchemaDir } from '../../src/manifest/schema-files.js';

describe('findSchemaDir', () => {
  it('walks up from src/manifest and from dist/manifest to the package root', () => {
    const root = mkdtempSync(join(tmpdir(), 'glassbox-schema-'));
    try {
      mkdirSync(join(root, 'firmware-manifests', 'schema'), { recursive: true });
      mkdirSync(join(root, 'dist', 'manifest'), { recursive: true });
      writeFileSync(join(root, 'firmware-manifests', 'schema', 'manifest.schema.json'), '{}');
      writeFileSync(join(root, 'package.json'), '{"name":"glassbox"}');
      expect(findSchemaDir(join(root, 'dist', 'manifest'))).toBe(join(root, 'firmware-manifests', 'schema'));
      expect(findSchemaDir(join(root, 'dist'))).toBe(join(root, 'firmware-manifests', 'schema'));
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });

  it('ignores a directory whose package is not glassbox, and says where it looked', () => {
    const root = mkdtempSync(join(tmpdir(), 'glassbox-schema-'));
    try {
      mkdirSync(join(root, 'firmware-manifests', 'schema'), { recursive: true });
      writeFileSync(join(root, 'firmware-manifests', 'schema', 'manifest.schema.json'), '{}');
      writeFileSync(join(root, 'package.json'), '{"name":"someone-else"}');
      expect(() => findSchemaDir(join(root, 'a', 'b', 'c', 'd', 'e', 'f', 'g'))).toThrow(/glassbox JSON Schemas not found; looked in: .*firmware-manifests/);
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });
});

describe('the built module (dist/, after npm run build)', () => {
  it('finds the same schemas from dist/manifest', async () => {
    const { execFileSync } = await import('node:child_process');
    const { existsSync } = await import('node:fs');
    const root = join(import.meta.dirname, '..', '..');
    expect(existsSync(join(root, 'dist', 'manifest', 'schema.js')), 'dist/manifest/schema.js missing: run npm run build').toBe(true);
    const out = execFileSync(process.execPath, ['--input-type=module', '-e', "const s = await import('./dist/manifest/schema.js'); console.log(s.SCHEMA_DIR, s.validateManifest({}).ok)"], {
      cwd: root,
      encoding: 'utf8',
    });
    expect(out.trim()).toBe(`${join(root, 'firmware-manifests', 'schema')} false`);
  });
});
