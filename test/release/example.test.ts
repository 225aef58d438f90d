/**
 * firmware-manifests/example/ is exactly what scripts/build-example-release.sh
 * makes today, it is a valid release, and its README quotes it truthfully.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { createHash } from 'node:crypto';
import { parseManifest } from '../../src/manifest/parse.js';
import { createDevPki } from '../../src/pki/devpki.js';
import { FileKeySigner } from '../../src/pki/signer.js';
import { addSignature } from '../../src/bundle/writer.js';
import { verifyBundleFile } from '../../src/bundle/verify.js';
import { loadTrustAnchors } from '../../src/trust/policy.js';
import { tempDir, removeTempDirs } from './fixtures.js';

afterAll(removeTempDirs);

const EXAMPLE = resolve('firmware-manifests/example');
const GENERATED = ['manifest.json', 'sbom.cdx.json', 'provenance.intoto.json'];

let out: string;
let bundle: string;

beforeAll(async () => {
  if (!existsSync(resolve('dist/cli/main.js'))) throw new Error('dist/cli/main.js is missing: run npm run build first');
  const dir = await tempDir('example');
  out = join(dir, 'example');
  bundle = join(dir, 'example.bundle');
  const r = spawnSync('bash', [resolve('scripts/build-example-release.sh'), out, bundle], { encoding: 'utf8', timeout: 60_000 });
  if (r.status !== 0) throw new Error(`build-example-release.sh failed: ${r.stderr}`);
}, 60_000);

describe('firmware-manifests/example', () => {
  it('holds exactly what scripts/build-example-release.sh makes (rerun it after changing the tooling)', async () => {
    for (const f of GENERATED) {
      expect((await readFile(join(out, f))).equals(await readFile(join(EXAMPLE, f))), f).toBe(true);
    }
  });

  it('is a valid release: canonical manifest, SBOM and provenance digests as listed', async () => {
    const bytes = await readFile(join(EXAMPLE, 'manifest.json'));
    const manifest = parseManifest(bytes);
    for (const name of ['sbom.cdx.json', 'provenance.intoto.json']) {
      const a = manifest.artifacts.find((x) => x.name === name)!;
      const file = await readFile(join(EXAMPLE, name));
      expect(file.length).toBe(a.size);
      expect(createHash('sha256').update(file).digest('hex')).toBe(a.sha256);
    }
    const readme = await readFile(join(EXAMPLE, 'README.md'), 'utf8');
    expect(readme).toContain(`manifest sha256: \`${createHash('sha256').update(bytes).digest('hex')}\``);
    // the pretty-printed manifest in the README is the manifest
    const pretty = /## The manifest, field by field[\s\S]*?```json\n([\s\S]*?)\n```/.exec(readme)?.[1];
    expect(JSON.parse(pretty!)).toEqual(JSON.parse(bytes.toString('utf8')));
  });

  it('signed by two signers of a PKI of its time, it verifies within its validity period', async () => {
    const dir = await tempDir('example-sign');
    const pki = await createDevPki(join(dir, 'pki'), { now: new Date('2025-03-01T00:00:00Z') });
    for (const s of pki.signers.slice(0, 2)) await addSignature(bundle, bundle, await FileKeySigner.fromFiles(s.key, s.chain));
    const trust = loadTrustAnchors(await readFile(pki.trustPolicy));
    const during = await verifyBundleFile(bundle, { trust, at: new Date('2025-06-01T00:00:00Z'), hardware: 'nvr-16p', securityFloor: 0 });
    expect(during.code).toBeNull();
    expect(during.ok).toBe(true);
    const after = await verifyBundleFile(bundle, { trust, at: new Date('2026-03-02T00:00:00Z'), hardware: 'nvr-16p', securityFloor: 0 });
    expect(after.code).toBe('MANIFEST_EXPIRED');
  });
});
