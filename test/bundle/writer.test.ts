import { afterAll, describe, expect, it, beforeAll } from 'vitest';
import { execFileSync } from 'node:child_process';
import { createReadStream } from 'node:fs';
import { readFile, readdir, writeFile, truncate, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { addSignature, writeBundle, BundleWriteRefused } from '../../src/bundle/writer.js';
import { BundleRejected } from '../../src/bundle/codes.js';
import { GlassboxError } from '../../src/errors.js';
import { readTar } from '../../src/bundle/reader.js';
import { BundleLayout } from '../../src/bundle/layout.js';
import { file, entry, tarOf } from '../helpers/bundle.js';
import { verifyBundleFile } from '../../src/bundle/verify.js';
import { loadTrustAnchors } from '../../src/trust/policy.js';
import { canonicalBytes } from '../../src/manifest/canonical.js';
import { defaultArtifacts, keySigner, makePki, makeRelease, tempDir, sha256, RELEASED, type TestPki, removeTempDirs } from '../release/fixtures.js';

afterAll(removeTempDirs);

/** Entry paths of a bundle, checked against the verifier's layout rules on the way. */
async function layoutOf(path: string): Promise<{ paths: string[]; complete: boolean; bodies: Map<string, Buffer> }> {
  const layout = new BundleLayout();
  const paths: string[] = [];
  const bodies = new Map<string, Buffer>();
  let current = '';
  let complete = false;
  for await (const ev of readTar(createReadStream(path))) {
    if (ev.kind === 'format') throw new Error(ev.reason);
    if (ev.kind === 'entry') {
      const step = layout.entry(ev);
      if (step.kind === 'reject') throw new Error(step.reason);
      paths.push(ev.path);
      current = ev.path;
      bodies.set(current, Buffer.alloc(0));
      if (step.kind === 'manifest') {
        // set after the body is read
      } else if (step.kind === 'artifact') {
        const a = layout.artifact(step.name, ev.size);
        if (a.kind === 'reject') throw new Error(a.reason);
      }
    }
    if (ev.kind === 'data') bodies.set(current, Buffer.concat([bodies.get(current)!, ev.chunk]));
    if (ev.kind === 'entry-end' && current === 'manifest.json') {
      layout.setManifestArtifacts(JSON.parse(bodies.get(current)!.toString()).artifacts);
    }
    if (ev.kind === 'end-of-archive') {
      const end = layout.end();
      if (end.kind === 'reject') throw new Error(end.reason);
    }
    if (ev.kind === 'done') complete = true;
  }
  return { paths, complete, bodies };
}

async function codeOf(p: Promise<unknown>): Promise<string> {
  try {
    await p;
  } catch (err) {
    if (err instanceof GlassboxError) return err.code;
    throw err;
  }
  throw new Error('expected a rejection');
}

let pki: TestPki;
beforeAll(async () => {
  pki = await makePki(['ecdsa-p256', 'ecdsa-p384', 'ecdsa-p256']);
});

describe('writeBundle', () => {
  it('writes manifest, signature pairs and artifacts in section-1 order, as GNU tar lists them', async () => {
    const dir = await tempDir('writer');
    const rel = await makeRelease(dir);
    const out = join(dir, 'b.tar');
    const res = await writeBundle(out, {
      manifestBytes: rel.manifestBytes,
      signatures: [{ sig: Buffer.from('sig-one'), chainPem: pki.leaves[0]!.pem }],
      artifacts: rel.artifacts,
    });
    expect(res.signatures).toBe(1);
    expect(res.manifestSha256).toBe(sha256(rel.manifestBytes));
    const { paths, complete } = await layoutOf(out);
    expect(complete).toBe(true);
    expect(paths).toEqual(['manifest.json', 'signatures/1.sig', 'signatures/1.pem', 'artifacts/rootfs.squashfs', 'artifacts/app.tar', 'artifacts/sbom.cdx.json', 'artifacts/provenance.intoto.json']);

    const listing = execFileSync('tar', ['--utc', '-tvf', out], { encoding: 'utf8' }).trim().split('\n');
    expect(listing).toHaveLength(paths.length);
    for (const [i, line] of listing.entries()) {
      // -rw-r--r-- 0/0   <size> 2025-03-01 12:00 <path>
      expect(line).toMatch(new RegExp(`^-rw-r--r-- 0/0 +\\d+ 2025-03-01 12:00 ${paths[i]!.replace('.', '\\.')}$`));
    }
    // GNU tar extracts the manifest byte for byte
    expect(execFileSync('tar', ['-xOf', out, 'manifest.json'])).toEqual(rel.manifestBytes);
    expect(res.bytes).toBe((await stat(out)).size);
  });

  it('is deterministic: same inputs, same bytes (mtime from `released`, no owner names)', async () => {
    const dir = await tempDir('writer');
    const rel = await makeRelease(dir);
    const input = { manifestBytes: rel.manifestBytes, signatures: [], artifacts: rel.artifacts };
    await writeBundle(join(dir, 'a.tar'), input);
    await new Promise((r) => setTimeout(r, 1100)); // a second later: wall-clock time must not leak in
    await writeBundle(join(dir, 'b.tar'), input);
    const a = await readFile(join(dir, 'a.tar'));
    expect(a.equals(await readFile(join(dir, 'b.tar')))).toBe(true);
    // header of manifest.json: uname/gname empty, mtime = released
    expect(a.subarray(265, 265 + 64).every((b) => b === 0)).toBe(true);
    expect(parseInt(a.subarray(136, 147).toString('ascii'), 8)).toBe(Date.parse(RELEASED) / 1000);
  });

  it('writes an unsigned bundle (zero pairs) with a valid layout', async () => {
    const dir = await tempDir('writer');
    const rel = await makeRelease(dir);
    await writeBundle(join(dir, 'u.tar'), { manifestBytes: rel.manifestBytes, signatures: [], artifacts: rel.artifacts });
    const { paths, complete } = await layoutOf(join(dir, 'u.tar'));
    expect(complete).toBe(true);
    expect(paths[1]).toBe('artifacts/rootfs.squashfs');
  });

  it('uses a pax header for a 128-character artifact name', async () => {
    const dir = await tempDir('writer');
    const name = 'r' + 'x'.repeat(127);
    const rel = await makeRelease(dir, [{ name, role: 'rootfs', data: Buffer.from('long') }]);
    const out = join(dir, 'long.tar');
    await writeBundle(out, { manifestBytes: rel.manifestBytes, signatures: [], artifacts: rel.artifacts });
    expect((await layoutOf(out)).paths).toContain(`artifacts/${name}`);
    expect(execFileSync('tar', ['-tf', out], { encoding: 'utf8' })).toContain(`artifacts/${name}\n`);
  });

  describe('when the artifact files disagree with the manifest', () => {
    it('refuses a file whose bytes differ (ARTIFACT_DIGEST) and leaves no output behind', async () => {
      const dir = await tempDir('writer');
      const rel = await makeRelease(dir);
      await writeFile(rel.artifacts[1]!.path, Buffer.from('recorder applicatioN\n'.repeat(100)));
      const out = join(dir, 'x.tar');
      expect(await codeOf(writeBundle(out, { manifestBytes: rel.manifestBytes, signatures: [], artifacts: rel.artifacts }))).toBe('ARTIFACT_DIGEST');
      expect((await readdir(dir)).filter((f) => f.includes('x.tar'))).toEqual([]);
    });

    it('refuses a file of the wrong size (ARTIFACT_SIZE)', async () => {
      const dir = await tempDir('writer');
      const rel = await makeRelease(dir);
      await writeFile(rel.artifacts[0]!.path, 'short');
      expect(await codeOf(writeBundle(join(dir, 'x.tar'), { manifestBytes: rel.manifestBytes, signatures: [], artifacts: rel.artifacts }))).toBe('ARTIFACT_SIZE');
    });

    it('refuses files out of manifest order, missing or extra', async () => {
      const dir = await tempDir('writer');
      const rel = await makeRelease(dir);
      const [a, b, c, d] = rel.artifacts;
      const w = (artifacts: typeof rel.artifacts) => writeBundle(join(dir, 'x.tar'), { manifestBytes: rel.manifestBytes, signatures: [], artifacts });
      expect(await codeOf(w([b!, a!, c!, d!]))).toBe('ARTIFACT_UNEXPECTED');
      expect(await codeOf(w([a!, b!, c!]))).toBe('ARTIFACT_MISSING');
      expect(await codeOf(w([a!, b!, c!, d!, { name: 'extra', path: a!.path }]))).toBe('ARTIFACT_UNEXPECTED');
    });

    it('names a missing artifact file (IO, exit 2)', async () => {
      const dir = await tempDir('writer');
      const rel = await makeRelease(dir);
      const artifacts = rel.artifacts.map((a, i) => (i === 2 ? { ...a, path: join(dir, 'nope') } : a));
      const err = await writeBundle(join(dir, 'x.tar'), { manifestBytes: rel.manifestBytes, signatures: [], artifacts }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(GlassboxError);
      expect((err as GlassboxError).code).toBe('IO');
      expect((err as GlassboxError).message).toContain(join(dir, 'nope'));
    });
  });

  it('names an output path it cannot write (IO)', async () => {
    const dir = await tempDir('writer');
    const rel = await makeRelease(dir);
    const err = await writeBundle(join(dir, 'no-such-dir', 'b.tar'), { manifestBytes: rel.manifestBytes, signatures: [], artifacts: rel.artifacts }).catch((e: unknown) => e);
    expect((err as GlassboxError).code).toBe('IO');
    expect((err as GlassboxError).message).toContain(join(dir, 'no-such-dir', 'b.tar'));
  });

  it('refuses a manifest that is not canonical (MANIFEST_INVALID)', async () => {
    const dir = await tempDir('writer');
    const rel = await makeRelease(dir);
    const pretty = Buffer.from(JSON.stringify(rel.manifest, null, 2));
    expect(await codeOf(writeBundle(join(dir, 'x.tar'), { manifestBytes: pretty, signatures: [], artifacts: rel.artifacts }))).toBe('MANIFEST_INVALID');
  });
});

describe('addSignature', () => {
  it('adds pairs one at a time after the existing ones, before the first artifact', async () => {
    const dir = await tempDir('sign');
    const rel = await makeRelease(dir);
    const out = join(dir, 'b.tar');
    await writeBundle(out, { manifestBytes: rel.manifestBytes, signatures: [], artifacts: rel.artifacts });
    const r1 = await addSignature(out, out, keySigner(pki.leaves[0]!, pki.intermediate));
    expect(r1.index).toBe(1);
    const r2 = await addSignature(out, out, keySigner(pki.leaves[1]!, pki.intermediate));
    expect(r2.index).toBe(2);
    expect(r2.subject).toBe('CN=release signer 2');
    const { paths, bodies } = await layoutOf(out);
    expect(paths.slice(0, 5)).toEqual(['manifest.json', 'signatures/1.sig', 'signatures/1.pem', 'signatures/2.sig', 'signatures/2.pem']);
    expect(bodies.get('signatures/2.pem')!.toString()).toBe(pki.leaves[1]!.pem + pki.intermediate.pem);
    // the P-384 signer signed with SHA-384, as openssl dgst -sha384 -verify expects
    const { verify } = await import('node:crypto');
    expect(verify('sha384', rel.manifestBytes, pki.leaves[1]!.cert.publicKey, bodies.get('signatures/2.sig')!)).toBe(true);
    expect(verify('sha256', rel.manifestBytes, pki.leaves[0]!.cert.publicKey, bodies.get('signatures/1.sig')!)).toBe(true);
    // artifacts copied through unchanged
    for (const a of defaultArtifacts()) expect(bodies.get(`artifacts/${a.name}`)!.equals(a.data)).toBe(true);
    expect((await readdir(dir)).filter((f) => f.endsWith('.tmp'))).toEqual([]);

    // signing one at a time gives exactly the bundle writeBundle makes with all pairs at once
    const all = join(dir, 'all.tar');
    await writeBundle(all, {
      manifestBytes: rel.manifestBytes,
      signatures: [1, 2].map((k) => ({ sig: bodies.get(`signatures/${k}.sig`)!, chainPem: bodies.get(`signatures/${k}.pem`)! })),
      artifacts: rel.artifacts,
    });
    expect((await readFile(all)).equals(await readFile(out))).toBe(true);
  });

  it('writes to another path and leaves the input untouched', async () => {
    const dir = await tempDir('sign');
    const rel = await makeRelease(dir);
    const input = join(dir, 'in.tar');
    await writeBundle(input, { manifestBytes: rel.manifestBytes, signatures: [], artifacts: rel.artifacts });
    const before = await readFile(input);
    await addSignature(input, join(dir, 'out.tar'), keySigner(pki.leaves[0]!, pki.intermediate));
    expect((await readFile(input)).equals(before)).toBe(true);
    expect((await layoutOf(join(dir, 'out.tar'))).paths[1]).toBe('signatures/1.sig');
  });

  describe('refusals', () => {
    it('refuses a key that already signed (ALREADY_SIGNED), even under another certificate, and keeps the bundle', async () => {
      const dir = await tempDir('sign');
      const rel = await makeRelease(dir);
      const out = join(dir, 'b.tar');
      await writeBundle(out, { manifestBytes: rel.manifestBytes, signatures: [], artifacts: rel.artifacts });
      await addSignature(out, out, keySigner(pki.leaves[0]!, pki.intermediate));
      const before = await readFile(out);
      // same key, chain without the intermediate: still the same SPKI
      const sameKey = { ...keySigner(pki.leaves[0]!, pki.intermediate), chainPem: pki.leaves[0]!.pem };
      const err = await addSignature(out, out, sameKey).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(BundleWriteRefused);
      expect((err as BundleWriteRefused).code).toBe('ALREADY_SIGNED');
      expect((err as BundleWriteRefused).exitCode).toBe(1);
      expect((await readFile(out)).equals(before)).toBe(true);
      expect((await readdir(dir)).filter((f) => f.endsWith('.tmp'))).toEqual([]);
    });

    it('refuses a 17th signer (TOO_MANY_SIGNERS)', async () => {
      const dir = await tempDir('sign');
      const rel = await makeRelease(dir);
      const many = await makePki(Array.from({ length: 17 }, () => 'ecdsa-p256' as const));
      const signatures = many.leaves.slice(0, 16).map((l) => ({ sig: Buffer.from('x'), chainPem: l.pem + many.intermediate.pem }));
      const out = join(dir, 'b.tar');
      await writeBundle(out, { manifestBytes: rel.manifestBytes, signatures, artifacts: rel.artifacts });
      expect(await codeOf(addSignature(out, out, keySigner(many.leaves[16]!, many.intermediate)))).toBe('TOO_MANY_SIGNERS');
      expect(await codeOf(writeBundle(join(dir, 'c.tar'), { manifestBytes: rel.manifestBytes, signatures: [...signatures, signatures[0]!], artifacts: rel.artifacts }))).toBe(
        'TOO_MANY_SIGNERS',
      );
    });

    it('refuses a signer whose chain is not PEM (SIGNER_CHAIN)', async () => {
      const dir = await tempDir('sign');
      const rel = await makeRelease(dir);
      const out = join(dir, 'b.tar');
      await writeBundle(out, { manifestBytes: rel.manifestBytes, signatures: [], artifacts: rel.artifacts });
      expect(await codeOf(addSignature(out, out, { chainPem: 'not a certificate', sign: async () => Buffer.from('x') }))).toBe('SIGNER_CHAIN');
    });

    it('refuses to sign a bundle whose artifact bytes differ from the manifest (ARTIFACT_DIGEST)', async () => {
      const dir = await tempDir('sign');
      const rel = await makeRelease(dir);
      const out = join(dir, 'b.tar');
      await writeBundle(out, { manifestBytes: rel.manifestBytes, signatures: [], artifacts: rel.artifacts });
      const bytes = await readFile(out);
      const at = bytes.indexOf(Buffer.from('recorder application'));
      bytes[at] = bytes[at]! ^ 0x01;
      await writeFile(out, bytes);
      expect(await codeOf(addSignature(out, out, keySigner(pki.leaves[0]!, pki.intermediate)))).toBe('ARTIFACT_DIGEST');
      expect((await readFile(out)).equals(bytes)).toBe(true);
    });

    it('refuses archives a recorder would refuse (BUNDLE_FORMAT)', async () => {
      const dir = await tempDir('sign');
      const rel = await makeRelease(dir);
      const signer = keySigner(pki.leaves[0]!, pki.intermediate);
      const cases: Record<string, Buffer> = {
        'manifest not first': tarOf([file('artifacts/rootfs.squashfs', 'x'), file('manifest.json', rel.manifestBytes)]),
        symlink: tarOf([file('manifest.json', rel.manifestBytes), entry({ path: 'artifacts/rootfs.squashfs', type: 'SymbolicLink', linkpath: '/etc/passwd' })]),
        'not tar': Buffer.from('hello, this is not an archive'.repeat(40)),
        truncated: tarOf([file('manifest.json', rel.manifestBytes)]).subarray(0, 700),
      };
      for (const [what, bytes] of Object.entries(cases)) {
        const p = join(dir, `${what.replace(/ /g, '-')}.tar`);
        await writeFile(p, bytes);
        expect(await codeOf(addSignature(p, p, signer)), what).toBe('BUNDLE_FORMAT');
        expect((await readFile(p)).equals(bytes), what).toBe(true);
      }
    });

    it('names a missing bundle (IO)', async () => {
      const dir = await tempDir('sign');
      const err = await addSignature(join(dir, 'nope.tar'), join(dir, 'nope.tar'), keySigner(pki.leaves[0]!, pki.intermediate)).catch((e: unknown) => e);
      expect((err as GlassboxError).code).toBe('IO');
      expect((err as GlassboxError).message).toContain('nope.tar');
    });
  });

  it('is a BundleRejected for input faults, so the CLI exits 1', async () => {
    expect(new BundleRejected('BUNDLE_FORMAT', 'x').exitCode).toBe(1);
  });
});

describe('what the verifier says about written bundles', () => {
  it('rejects the unsigned bundle with THRESHOLD_NOT_MET and accepts it after two addSignature calls', async () => {
    const dir = await tempDir('verify');
    const rel = await makeRelease(dir);
    const out = join(dir, 'b.tar');
    await writeBundle(out, { manifestBytes: rel.manifestBytes, signatures: [], artifacts: rel.artifacts });
    const trust = loadTrustAnchors(canonicalBytes({ revoked: { certificates: [], keys: [] }, roots: [pki.root.pem], schema: 'glassbox.trust/v1', threshold: 2 }));
    const ctx = { trust, at: new Date(), hardware: 'nvr-8p', securityFloor: 0 };
    const unsigned = await verifyBundleFile(out, ctx);
    expect(unsigned.code).toBe('THRESHOLD_NOT_MET');
    await addSignature(out, out, keySigner(pki.leaves[0]!, pki.intermediate));
    expect((await verifyBundleFile(out, ctx)).code).toBe('THRESHOLD_NOT_MET');
    await addSignature(out, out, keySigner(pki.leaves[1]!, pki.intermediate));
    const signed = await verifyBundleFile(out, ctx);
    expect(signed.code).toBeNull();
    expect(signed.ok).toBe(true);
    expect(signed.signers.map((s) => s.outcome)).toEqual(['valid', 'valid']);
    expect(signed.artifacts.every((a) => a.outcome === 'ok')).toBe(true);
  });
});

describe('large artifacts', () => {
  it('gives an entry over 8 GiB a pax size record that the verifier\'s reader decodes', async () => {
    const { Pack, ReadEntry } = await import('tar');
    const { bundleHeader } = await import('../../src/bundle/writer-tar.js');
    const SIZE = 9 * 2 ** 30 + 7;
    const pack = new Pack({ strict: true });
    const head: Buffer[] = [];
    pack.on('data', (c: Buffer) => head.push(c));
    pack.add(new ReadEntry(bundleHeader('artifacts/rootfs.img', SIZE, new Date(RELEASED))));
    await new Promise((r) => setImmediate(r));
    const bytes = Buffer.concat(head);
    expect(bytes.toString('latin1')).toContain(`size=${SIZE}\n`);
    const events = [];
    for await (const ev of readTar((async function* () { yield bytes; })())) {
      events.push(ev);
      if (ev.kind === 'entry') break;
    }
    expect(events.at(-1)).toMatchObject({ kind: 'entry', path: 'artifacts/rootfs.img', type: '0', size: SIZE });
  });

  it('streams a 256 MiB artifact through writeBundle and addSignature with bounded memory', async () => {
    const dir = await tempDir('large');
    const SIZE = 256 * 1024 * 1024;
    const big = join(dir, 'big.img');
    // sparse, with a few non-zero bytes so the digest depends on position
    await truncate(await writeFile(big, '').then(() => big), SIZE);
    const fh = await import('node:fs/promises').then((m) => m.open(big, 'r+'));
    await fh.write(Buffer.from('head'), 0, 4, 0);
    await fh.write(Buffer.from('tail'), 0, 4, SIZE - 4);
    await fh.close();
    const rel = await makeRelease(dir, [{ name: 'rootfs.img', role: 'rootfs', path: big }, ...defaultArtifacts().slice(1)]);
    expect(rel.manifest.artifacts[0]!.size).toBe(SIZE);

    globalThis.gc?.();
    const baseline = process.memoryUsage().rss;
    let peak = baseline;
    const timer = setInterval(() => (peak = Math.max(peak, process.memoryUsage().rss)), 5);
    const out = join(dir, 'big.tar');
    const t0 = performance.now();
    await writeBundle(out, { manifestBytes: rel.manifestBytes, signatures: [], artifacts: rel.artifacts });
    const t1 = performance.now();
    await addSignature(out, out, keySigner(pki.leaves[0]!, pki.intermediate));
    const t2 = performance.now();
    clearInterval(timer);
    const growthMiB = (peak - baseline) / 2 ** 20;
    console.log(
      `256 MiB artifact: writeBundle ${(t1 - t0).toFixed(0)} ms, addSignature ${(t2 - t1).toFixed(0)} ms, peak RSS growth ${growthMiB.toFixed(1)} MiB`,
    );
    expect(growthMiB).toBeLessThan(96);
    expect((await stat(out)).size).toBeGreaterThan(SIZE);
    const listing = execFileSync('tar', ['-tvf', out], { encoding: 'utf8' });
    expect(listing).toMatch(new RegExp(`0/0 +${SIZE} .* artifacts/rootfs\\.img`));
  }, 120_000);
});
