import { createHash } from 'node:crypto';
import { mkdtemp, mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { IoError } from '../../src/errors.js';
import { checkCanonical } from '../../src/manifest/canonical.js';
import { ReleaseInputInvalid } from '../../src/manifest/errors.js';
import { parseManifest } from '../../src/manifest/parse.js';
import { buildManifest, hashFile, readTemplate, type ArtifactFile } from '../../src/release/manifest-build.js';
import { checkProvenance } from '../../src/release/provenance.js';
import { validManifest } from '../manifest/fixtures.js';

let dir: string;
let files: ArtifactFile[];
const now = new Date('2025-03-01T12:00:00Z');

function template(): Record<string, unknown> {
  const { artifacts: _a, ...rest } = validManifest();
  return rest;
}

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'glassbox-manifest-build-'));
  const rootfs = Buffer.alloc(3 * 1024 * 1024 + 17);
  for (let i = 0; i < rootfs.length; i++) rootfs[i] = (i * 31) & 0xff;
  await writeFile(join(dir, 'rootfs.img'), rootfs);
  await writeFile(join(dir, 'empty.cfg'), Buffer.alloc(0));
  await writeFile(join(dir, 'trust.json'), '{"x":1}');
  files = [
    { name: 'rootfs.img', role: 'rootfs', path: join(dir, 'rootfs.img') },
    { name: 'empty.cfg', role: 'config', path: join(dir, 'empty.cfg') },
    { name: 'trust.json', role: 'trust', path: join(dir, 'trust.json') },
  ];
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function rejection(p: Promise<unknown>): Promise<ReleaseInputInvalid> {
  try {
    await p;
  } catch (err) {
    expect(err).toBeInstanceOf(ReleaseInputInvalid);
    return err as ReleaseInputInvalid;
  }
  throw new Error('was accepted');
}

describe('buildManifest', () => {
  it('hashes the files, writes sbom and provenance, and returns a canonical manifest that parses', async () => {
    const out = join(dir, 'out1');
    const built = await buildManifest(template(), files, { now, outDir: out, components: [{ name: 'busybox', version: '1.36.1' }], tool: { name: 'glassbox', version: '0.1.0' } });
    const rootfs = await readFile(join(dir, 'rootfs.img'));
    expect(built.manifest.artifacts.map((a) => [a.name, a.role])).toEqual([
      ['rootfs.img', 'rootfs'],
      ['empty.cfg', 'config'],
      ['trust.json', 'trust'],
      ['sbom.cdx.json', 'sbom'],
      ['provenance.intoto.json', 'provenance'],
    ]);
    expect(built.manifest.artifacts[0]).toEqual({ name: 'rootfs.img', size: rootfs.length, sha256: sha(rootfs), role: 'rootfs' });
    expect(built.manifest.artifacts[1]).toEqual({ name: 'empty.cfg', size: 0, sha256: sha(Buffer.alloc(0)), role: 'config' });

    const sbomBytes = await readFile(join(out, 'sbom.cdx.json'));
    const provBytes = await readFile(join(out, 'provenance.intoto.json'));
    expect(built.manifest.artifacts[3]).toMatchObject({ size: sbomBytes.length, sha256: sha(sbomBytes) });
    expect(built.manifest.artifacts[4]).toMatchObject({ size: provBytes.length, sha256: sha(provBytes) });
    expect(built.files.map((f) => f.path)).toEqual([...files.map((f) => f.path), join(out, 'sbom.cdx.json'), join(out, 'provenance.intoto.json')]);

    expect(checkCanonical(built.bytes).ok).toBe(true);
    expect(parseManifest(built.bytes)).toEqual(built.manifest);
    expect(built.sha256).toBe(sha(built.bytes));
    expect(checkProvenance(provBytes, built.manifest)).toMatchObject({ ok: true });

    const sbom = JSON.parse(sbomBytes.toString()) as { components: Array<{ name: string; hashes?: Array<{ content: string }> }>; metadata: { timestamp: string } };
    expect(sbom.metadata.timestamp).toBe('2025-03-01T12:00:00Z');
    expect(sbom.components.map((c) => c.name)).toEqual(['rootfs.img', 'empty.cfg', 'trust.json', 'busybox']);
    expect(sbom.components[0]?.hashes?.[0]?.content).toBe(sha(rootfs));
  });

  it('is deterministic: the same inputs give the same bytes', async () => {
    const a = await buildManifest(template(), files, { now, outDir: join(dir, 'out2') });
    const b = await buildManifest(template(), files, { now, outDir: join(dir, 'out3') });
    expect(a.bytes.equals(b.bytes)).toBe(true);
    expect((await readFile(join(dir, 'out2', 'provenance.intoto.json'))).equals(await readFile(join(dir, 'out3', 'provenance.intoto.json')))).toBe(true);
  });

  it('refuses an invalid template before reading any file, listing every error', async () => {
    const t = template();
    t.product = 'HSS';
    delete t.expires;
    const missing: ArtifactFile[] = [{ name: 'rootfs.img', role: 'rootfs', path: join(dir, 'does-not-exist') }];
    const err = await rejection(buildManifest(t, missing, { now, outDir: join(dir, 'out4') }));
    expect(err.code).toBe('RELEASE_INPUT_INVALID');
    expect(err.exitCode).toBe(1);
    expect(err.problems).toEqual(['/: missing required field "expires"', '/product: must match pattern "^[a-z0-9-]{1,64}$"']);
  });

  it('refuses a template that carries artifacts, and supplied sbom/provenance roles', async () => {
    const err = await rejection(
      buildManifest({ ...template(), artifacts: [] }, [...files, { name: 'my-sbom.json', role: 'sbom', path: files[1]!.path }], { now, outDir: join(dir, 'out5') }),
    );
    expect(err.problems.slice(0, 2)).toEqual([
      '/artifacts: must not be in the template (it is computed from the files)',
      'artifact 3 (my-sbom.json): role sbom is generated, not supplied',
    ]);
  });

  it('refuses an artifact name that collides with the generated sbom', async () => {
    const err = await rejection(buildManifest(template(), [{ name: 'sbom.cdx.json', role: 'other', path: files[1]!.path }], { now, outDir: join(dir, 'out6') }));
    expect(err.problems).toEqual(['/artifacts/1/name: duplicate artifact name "sbom.cdx.json" (first at /artifacts/0)']);
  });

  it('refuses a bad artifact name before hashing', async () => {
    const err = await rejection(buildManifest(template(), [{ name: '../rootfs', role: 'rootfs', path: files[0]!.path }], { now, outDir: join(dir, 'out7') }));
    expect(err.problems[0]).toMatch(/^\/artifacts\/0\/name: must match pattern/);
  });

  it('refuses to build a manifest that is already expired', async () => {
    const err = await rejection(buildManifest(template(), files, { now: new Date('2026-03-01T12:00:00Z'), outDir: join(dir, 'out8') }));
    expect(err.message).toContain('/expires: 2026-03-01T12:00:00Z is not after the build time 2026-03-01T12:00:00Z');
  });

  it('reports a missing artifact file as an I/O error', async () => {
    await expect(buildManifest(template(), [{ name: 'x.bin', role: 'app', path: join(dir, 'nope.bin') }], { now, outDir: join(dir, 'out9') })).rejects.toBeInstanceOf(IoError);
  });
});

describe('hashFile', () => {
  it('streams a file larger than its buffer', async () => {
    const bytes = await readFile(files[0]!.path);
    expect(await hashFile(files[0]!.path, Buffer.alloc(4096))).toEqual({ size: bytes.length, sha256: sha(bytes) });
  });
  it('refuses a directory', async () => {
    await mkdir(join(dir, 'a-dir'), { recursive: true });
    await expect(hashFile(join(dir, 'a-dir'))).rejects.toThrow('is not a regular file');
  });
});

describe('readTemplate', () => {
  it('reads a human-written (non-canonical) JSON template', async () => {
    const path = join(dir, 'template.json');
    await writeFile(path, JSON.stringify(template(), null, 2));
    expect(await readTemplate(path)).toEqual(template());
  });
  it('refuses non-JSON and over-1-MiB templates', async () => {
    const bad = join(dir, 'bad.json');
    await writeFile(bad, '{"product": hss}');
    expect((await rejection(readTemplate(bad))).message).toContain('not UTF-8 JSON');
    const big = join(dir, 'big.json');
    await writeFile(big, Buffer.alloc(1024 * 1024 + 1, 0x20));
    expect((await rejection(readTemplate(big))).message).toContain('is over 1048576 bytes');
  });
  it('reports a missing file as an I/O error', async () => {
    await expect(readTemplate(join(dir, 'none.json'))).rejects.toBeInstanceOf(IoError);
  });
});

describe('the worked example of firmware-manifests/README.md', () => {
  it('rebuilds to the digests the README shows', async () => {
    const root = join(import.meta.dirname, '..', '..');
    const readme = await readFile(join(root, 'firmware-manifests', 'README.md'), 'utf8');
    const templateJson = /A release engineer writes a template[\s\S]*?```json\n([\s\S]*?)```/.exec(readme)?.[1];
    expect(templateJson).toBeDefined();
    const exDir = join(dir, 'readme-example');
    await mkdir(exDir, { recursive: true });
    await writeFile(join(exDir, 'rootfs.img'), 'hss-nvr example rootfs\n');
    await writeFile(join(exDir, 'template.json'), templateJson!);
    const built = await buildManifest(await readTemplate(join(exDir, 'template.json')), [{ name: 'rootfs.img', role: 'rootfs', path: join(exDir, 'rootfs.img') }], {
      now,
      outDir: join(exDir, 'out'),
    });
    const shown = /```\n(\{"artifacts"[\s\S]*?)```/.exec(readme)?.[1]?.replace(/\n/g, '');
    expect(built.bytes.toString()).toBe(shown);
    expect(readme).toContain(`Its SHA-256 (the manifest's identity) is\n\`${built.sha256}\``);
  });
});
