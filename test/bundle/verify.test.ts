import { beforeAll, describe, expect, test } from 'vitest';
import { randomBytes } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { verifyBundle, verifyBundleFile } from '../../src/bundle/verify.js';
import type { ArtifactSink, VerifyContext, VerifyReport } from '../../src/bundle/types.js';
import type { RejectionCode } from '../../src/bundle/codes.js';
import { IoError } from '../../src/errors.js';
import { requireSystem } from '../helpers/system.js';
import type { ManifestArtifact } from '../../src/manifest/types.js';
import { certSha256, spkiSha256 } from '../../src/trust/fingerprint.js';
import { anchorsFor, hostileSigner, makeTestPki, testKey, trustPolicyBytes, DAY, type HostileKind, type TestPki } from '../helpers/pki.js';
import { createIntermediateCa, createLeaf } from '../../src/pki/certs.js';
import {
  chunked,
  defaultArtifacts,
  entry,
  file,
  header,
  headerWithTypeflag,
  makeBundle,
  pkiSigners,
  streamOf,
  tarEntries,
  tarOf,
  testProvenance,
  testSbom,
  TEST_PROVENANCE,
  type BundleEntry,
  type BundleOptions,
  type BundleSigner,
  type TestArtifact,
  type TestBundle,
  SIGNATURE_END,
  firstArtifactOffset,
  flipByte,
} from '../helpers/bundle.js';

let pki: TestPki;
let ctx: VerifyContext;

beforeAll(async () => {
  pki = await makeTestPki();
  ctx = { trust: pki.anchors, at: pki.now, securityFloor: 0 };
});

function verify(tar: Buffer, over: Partial<VerifyContext> = {}, sink?: ArtifactSink, chunk = 65536): Promise<VerifyReport> {
  return verifyBundle(streamOf(chunked(tar, chunk)), { ...ctx, ...over }, sink);
}

async function expectCode(tar: Buffer, code: RejectionCode, over: Partial<VerifyContext> = {}): Promise<VerifyReport> {
  const report = await verify(tar, over);
  expect(report.reason, 'reason').toBeTruthy();
  expect({ code: report.code, ok: report.ok }, report.reason).toEqual({ code, ok: false });
  return report;
}

const bundle = (opts: BundleOptions = {}): TestBundle => makeBundle(pki, opts);

/** Re-tars a valid bundle's entries after `edit`. */
function edited(edit: (entries: BundleEntry[]) => BundleEntry[], opts: BundleOptions = {}): Buffer {
  return tarEntries(edit([...bundle(opts).entries]));
}

/** A bundle cut `into` bytes after the start of the first artifact's data. */
function cutInsideFirstArtifact(b: TestBundle, into: number): Buffer {
  return b.tar.subarray(0, firstArtifactOffset(b) + 512 + into);
}

describe('a valid bundle', () => {
  test('is accepted with a full report', async () => {
    const b = bundle();
    const report = await verify(b.tar);
    expect(report.ok, report.reason).toBe(true);
    expect(report).toMatchObject({
      code: null,
      manifest: { product: 'hss-nvr', version: '2.4.1', securityVersion: 12, hardware: ['nvr-8p', 'nvr-16p'], released: b.manifest.released, expires: b.manifest.expires },
      provenance: { sourceRepository: 'https://git.hss.example/nvr/firmware', sourceCommit: '0123456789abcdef0123456789abcdef01234567', builder: 'https://ci.hss.example/builders/release' },
      hardwareCheck: 'skipped',
      at: pki.now.toISOString(),
      securityFloor: 0,
    });
    expect(report.manifest?.sha256).toMatch(/^[0-9a-f]{64}$/);
    expect(report.signers.map((s) => [s.index, s.outcome])).toEqual([
      [1, 'valid'],
      [2, 'valid'],
    ]);
    expect(report.signers[0]?.spkiSha256).toBe(spkiSha256(pki.signers[0]!.cert));
    expect(report.artifacts.map((a) => [a.name, a.outcome])).toEqual(b.artifacts.map((a) => [a.name, 'ok']));
    expect(report.manifestBytes?.equals(b.manifestBytes)).toBe(true);
    expect(report.manifestObject?.artifacts).toHaveLength(4);
    expect(report.newTrustPolicy).toBeUndefined();
    // The judged signature pairs come back, so an installer need not read the bundle again.
    const data = (path: string): Buffer | undefined => b.entries.find((e) => e.path === path)?.data;
    expect(report.signatures?.map((s) => s.index)).toEqual([1, 2]);
    for (const s of report.signatures ?? []) {
      expect(s.signature.equals(data(`signatures/${s.index}.sig`)!)).toBe(true);
      expect(s.chainPem.equals(data(`signatures/${s.index}.pem`)!)).toBe(true);
    }
  });

  test('whatever the chunk size of the source', async () => {
    const small: TestArtifact[] = [
      { name: 'rootfs.img', role: 'rootfs', data: randomBytes(1500) },
      { name: 'sbom.cdx.json', role: 'sbom', data: testSbom() },
    ];
    const artifacts = [...small, { name: 'prov.json', role: 'provenance' as const, data: testProvenance(small) }];
    const b = bundle({ artifacts });
    for (const size of [1, 100, 511, 512, 513, 1 << 20]) {
      const report = await verify(b.tar, {}, undefined, size);
      expect(report.ok, `chunk ${size}: ${report.reason}`).toBe(true);
    }
  });

  test('with the device model among the manifest hardware', async () => {
    const report = await verify(bundle().tar, { hardware: 'nvr-16p' });
    expect(report).toMatchObject({ ok: true, hardwareCheck: 'matched' });
  });

  test('with a 128-character artifact name (pax path) and an empty artifact', async () => {
    const payload: TestArtifact[] = [
      { name: 'r'.repeat(128), role: 'rootfs', data: randomBytes(3000) },
      { name: 'empty.cfg', role: 'config', data: Buffer.alloc(0) },
      { name: 'sbom.cdx.json', role: 'sbom', data: testSbom() },
    ];
    const report = await verify(bundle({ artifacts: [...payload, { name: 'p.json', role: 'provenance', data: testProvenance(payload) }] }).tar);
    expect(report.ok, report.reason).toBe(true);
  });

  test('when the verification time equals `expires` (expiry is strictly after)', async () => {
    const report = await verify(bundle({ manifest: (m) => (m.expires = pki.now.toISOString().replace('.000Z', 'Z')) }).tar);
    expect(report.ok, report.reason).toBe(true);
  });

  test('with securityVersion equal to the floor', async () => {
    expect((await verify(bundle().tar, { securityFloor: 12 })).ok).toBe(true);
  });

  test('with a third faulty signer once two valid ones meet the threshold (the report lists it)', async () => {
    const bad = await hostileSigner(pki, 'expired');
    const report = await verify(bundle({ signers: [...pkiSigners(pki), { signer: bad.signer, chainPem: bad.chainPem }] }).tar);
    expect(report.ok, report.reason).toBe(true);
    expect(report.signers.map((s) => s.outcome)).toEqual(['valid', 'valid', 'SIGNER_UNTRUSTED']);
  });

  test('signed with ECDSA P-384 and RSA-3072 (PKCS #1 v1.5 and PSS)', async () => {
    const mixed = await makeTestPki({ namespace: 'mixed', signerAlgorithms: ['ecdsa-p384', 'rsa-3072'], threshold: 2 });
    for (const rsaPadding of ['pkcs1', 'pss'] as const) {
      const signers: BundleSigner[] = [
        { signer: mixed.signers[0]!, chainPem: mixed.chains[0]! },
        { signer: mixed.signers[1]!, chainPem: mixed.chains[1]!, rsaPadding },
      ];
      const report = await verifyBundle(streamOf([makeBundle(mixed, { signers }).tar]), { trust: mixed.anchors, at: mixed.now, securityFloor: 0 });
      expect(report.ok, report.reason).toBe(true);
    }
  });

  test('from a file (verifyBundleFile)', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'gbx-verify-'));
    try {
      const path = join(dir, 'b.tar');
      await writeFile(path, bundle({ artifacts: defaultArtifacts(randomBytes(9 * 1024 * 1024 + 7)) }).tar);
      const report = await verifyBundleFile(path, ctx);
      expect(report.ok, report.reason).toBe(true);
      await expect(verifyBundleFile(join(dir, 'absent.tar'), ctx)).rejects.toBeInstanceOf(IoError);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  test('a context without trust anchors is refused (no unverified mode)', async () => {
    await expect(verifyBundle(streamOf([bundle().tar]), { ...ctx, trust: undefined as never })).rejects.toThrow(/trust anchors/);
    await expect(verifyBundle(streamOf([bundle().tar]), { ...ctx, at: new Date('nope') })).rejects.toThrow(/ctx.at/);
  });
});

describe('signers', () => {
  /** A bundle signed by [faulty, good]: threshold 2 is not met and the faulty one's code decides. */
  async function withFaulty(faulty: BundleSigner, code: RejectionCode, anchors = pki.anchors): Promise<VerifyReport> {
    const report = await expectCode(bundle({ signers: [faulty, pkiSigners(pki, [1])[0]!] }).tar, code, { trust: anchors });
    expect(report.signers.map((s) => s.outcome)).toEqual([code, 'valid']);
    expect(report.artifacts.every((a) => a.outcome === 'not-reached')).toBe(true);
    return report;
  }

  test('a corrupted signature is SIGNATURE_INVALID', async () => {
    const b = bundle();
    const entries = [...b.entries];
    entries[1] = { path: 'signatures/1.sig', data: flipByte(entries[1]!.data, 20) };
    const report = await expectCode(tarEntries(entries), 'SIGNATURE_INVALID');
    expect(report.signers.map((s) => s.outcome)).toEqual(['SIGNATURE_INVALID', 'valid']);
  });

  test('a good key signing other bytes is SIGNATURE_INVALID', () =>
    withFaulty({ ...pkiSigners(pki, [0])[0]!, signOver: Buffer.from('{"other":"manifest"}') }, 'SIGNATURE_INVALID'));

  test('an empty signature is SIGNATURE_INVALID', () => withFaulty({ ...pkiSigners(pki, [0])[0]!, signature: Buffer.alloc(0) }, 'SIGNATURE_INVALID'));

  test.each<[HostileKind, RejectionCode]>([
    ['foreign-root', 'SIGNER_UNTRUSTED'],
    ['self-signed', 'SIGNER_UNTRUSTED'],
    ['intermediate-missing', 'SIGNER_UNTRUSTED'],
    ['expired', 'SIGNER_UNTRUSTED'],
    ['not-yet-valid', 'SIGNER_UNTRUSTED'],
    ['expired-intermediate', 'SIGNER_UNTRUSTED'],
    ['no-eku', 'SIGNER_UNTRUSTED'],
    ['client-auth-eku', 'SIGNER_UNTRUSTED'],
    ['ca-leaf', 'SIGNER_UNTRUSTED'],
    ['pathlen-exceeded', 'SIGNER_UNTRUSTED'],
    ['rsa-2048', 'SIGNATURE_INVALID'],
    ['rsa-e3', 'SIGNATURE_INVALID'],
    ['p521', 'SIGNATURE_INVALID'],
    ['ed25519', 'SIGNATURE_INVALID'],
  ])('a %s signer is %s', async (kind, code) => {
    const h = await hostileSigner(pki, kind);
    await withFaulty({ signer: h.signer, chainPem: h.chainPem }, code);
  });

  test('a signer under a not-yet-valid intermediate is SIGNER_UNTRUSTED', async () => {
    const inter = await createIntermediateCa(
      pki.root,
      { key: await testKey('ecdsa-p256', 'future-inter'), subject: 'CN=future release CA', now: pki.now },
      { notBefore: new Date(pki.now.getTime() + DAY) },
    );
    const leaf = await createLeaf(inter, { key: await testKey('ecdsa-p256', 'future-leaf'), subject: 'CN=signer under future CA', purpose: 'codeSigning', now: pki.now });
    await withFaulty({ signer: leaf, chainPem: leaf.pem + inter.pem }, 'SIGNER_UNTRUSTED');
  });

  test('an RSA-PSS signature with a salt other than the digest length is SIGNATURE_INVALID', async () => {
    const rsa = await makeTestPki({ namespace: 'pss', signerAlgorithms: ['rsa-3072', 'ecdsa-p256'], threshold: 2 });
    const signers: BundleSigner[] = [
      { signer: rsa.signers[0]!, chainPem: rsa.chains[0]!, rsaPadding: 'pss', pssSaltLength: 20 },
      { signer: rsa.signers[1]!, chainPem: rsa.chains[1]! },
    ];
    const report = await verifyBundle(streamOf([makeBundle(rsa, { signers }).tar]), { trust: rsa.anchors, at: rsa.now, securityFloor: 0 });
    expect(report.code).toBe('SIGNATURE_INVALID');
  });

  test('a signer revoked by certificate hash is SIGNER_UNTRUSTED', async () => {
    const anchors = anchorsFor([pki.root.pem], 2, { certificates: [certSha256(pki.signers[0]!.cert)] });
    await withFaulty(pkiSigners(pki, [0])[0]!, 'SIGNER_UNTRUSTED', anchors);
  });

  test('a signer revoked by key hash is SIGNER_UNTRUSTED', async () => {
    const anchors = anchorsFor([pki.root.pem], 2, { keys: [spkiSha256(pki.signers[0]!.cert)] });
    await withFaulty(pkiSigners(pki, [0])[0]!, 'SIGNER_UNTRUSTED', anchors);
  });

  test('a revoked intermediate makes every signer under it SIGNER_UNTRUSTED', async () => {
    const anchors = anchorsFor([pki.root.pem], 2, { certificates: [certSha256(pki.releaseCa.cert)] });
    await expectCode(bundle().tar, 'SIGNER_UNTRUSTED', { trust: anchors });
  });

  test('the same key twice does not make threshold 2', async () => {
    const report = await expectCode(bundle({ signers: pkiSigners(pki, [0, 0]) }).tar, 'THRESHOLD_NOT_MET');
    expect(report.signers.map((s) => s.outcome)).toEqual(['valid', 'DUPLICATE_KEY']);
  });

  test('the same key in two certificates does not make threshold 2', async () => {
    const again = await createLeaf(pki.releaseCa, { key: pki.signers[0]!.key, subject: 'CN=same key, new cert', purpose: 'codeSigning', now: pki.now });
    const report = await expectCode(
      bundle({ signers: [pkiSigners(pki, [0])[0]!, { signer: again, chainPem: again.pem + pki.releaseCa.pem }] }).tar,
      'THRESHOLD_NOT_MET',
    );
    expect(report.signers.map((s) => s.outcome)).toEqual(['valid', 'DUPLICATE_KEY']);
  });

  test('one valid signer under threshold 2 is THRESHOLD_NOT_MET', () => expectCode(bundle({ signers: pkiSigners(pki, [2]) }).tar, 'THRESHOLD_NOT_MET'));

  test('no signature at all is THRESHOLD_NOT_MET', async () => {
    const report = await expectCode(bundle({ signers: [] }).tar, 'THRESHOLD_NOT_MET');
    expect(report.signers).toEqual([]);
  });

  test('threshold 1 with no signature is still THRESHOLD_NOT_MET (fail closed)', () =>
    expectCode(bundle({ signers: [] }).tar, 'THRESHOLD_NOT_MET', { trust: anchorsFor([pki.root.pem], 1) }));

  test('the lowest-numbered faulty signer decides the code', async () => {
    const untrusted = await hostileSigner(pki, 'foreign-root');
    const signers: BundleSigner[] = [
      { ...pkiSigners(pki, [0])[0]!, signOver: Buffer.from('x') },
      { signer: untrusted.signer, chainPem: untrusted.chainPem },
    ];
    await expectCode(bundle({ signers }).tar, 'SIGNATURE_INVALID');
    await expectCode(bundle({ signers: [signers[1]!, signers[0]!] }).tar, 'SIGNER_UNTRUSTED');
  });
});

describe('the manifest', () => {
  test.each<[string, (canonical: Buffer) => Buffer]>([
    ['with whitespace', (c) => Buffer.from(JSON.stringify(JSON.parse(c.toString()), null, 1))],
    ['with a trailing newline', (c) => Buffer.concat([c, Buffer.from('\n')])],
    ['with a duplicate key', (c) => Buffer.from(c.toString().replace('"product":"hss-nvr"', '"product":"hss-nvr","product":"hss-nvr"'))],
    ['with a byte-order mark', (c) => Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), c])],
    ['not JSON', () => Buffer.from('not json at all')],
    ['not UTF-8', (c) => Buffer.concat([c.subarray(0, 20), Buffer.from([0xff]), c.subarray(20)])],
  ])('%s is MANIFEST_INVALID, even when signed as is', async (_name, bend) => {
    const report = await expectCode(bundle({ manifestBytes: bend }).tar, 'MANIFEST_INVALID');
    expect(report.manifest).toBeNull();
    expect(report.signers).toEqual([]);
  });

  test('with keys out of order (swapped top-level members)', async () => {
    const swap = (c: Buffer): Buffer => {
      const obj = JSON.parse(c.toString()) as Record<string, unknown>;
      const reordered = Object.fromEntries(Object.entries(obj).reverse());
      return Buffer.from(JSON.stringify(reordered));
    };
    await expectCode(bundle({ manifestBytes: swap }).tar, 'MANIFEST_INVALID');
  });

  test.each<[string, (m: Record<string, unknown>) => void]>([
    ['an unknown field', (m) => (m['debug'] = true)],
    ['a negative securityVersion', (m) => (m['securityVersion'] = -1)],
    ['an upper-case product', (m) => (m['product'] = 'HSS-NVR')],
    ['expires before released', (m) => (m['expires'] = '2020-01-01T00:00:00Z')],
    ['no provenance artifact', (m) => ((m as { artifacts: unknown[] }).artifacts = (m as { artifacts: Array<{ role: string }> }).artifacts.filter((a) => a.role !== 'provenance'))],
  ])('a schema violation (%s) is MANIFEST_INVALID', async (_name, bend) => {
    await expectCode(bundle({ manifest: bend }).tar, 'MANIFEST_INVALID');
  });

  test('a manifest over 1 MiB is MANIFEST_INVALID at its header', () =>
    expectCode(tarOf([file('manifest.json', Buffer.alloc(1024 * 1024 + 1, 0x20))]), 'MANIFEST_INVALID'));

  test('a trust artifact declared over 1 MiB is MANIFEST_INVALID', async () => {
    await expectCode(bundle({ artifacts: defaultArtifacts(undefined, [{ name: 'trust.json', role: 'trust', data: Buffer.alloc(1024 * 1024 + 1, 0x20) }]) }).tar, 'MANIFEST_INVALID');
  });
});

describe('section 1 layout through the verifier', () => {
  test('manifest.json not the first entry', () => expectCode(edited((e) => [e[1]!, e[2]!, e[0]!, ...e.slice(3)]), 'BUNDLE_FORMAT'));

  const hostileEntries: Array<[string, Buffer]> = [
    ['a symbolic link', header({ path: 'artifacts/rootfs.img', type: 'SymbolicLink', linkpath: '/dev/mmcblk0' })],
    ['a hard link', header({ path: 'artifacts/rootfs.img', type: 'Link', linkpath: 'manifest.json' })],
    ['a directory', header({ path: 'artifacts/', type: 'Directory' })],
    ['a FIFO', header({ path: 'artifacts/rootfs.img', type: 'FIFO' })],
    ['a character device', header({ path: 'artifacts/rootfs.img', type: 'CharacterDevice', devmaj: 1, devmin: 3 })],
    ['a block device', header({ path: 'artifacts/rootfs.img', type: 'BlockDevice', devmaj: 179, devmin: 0 })],
    ['a GNU sparse file', headerWithTypeflag({ path: 'artifacts/rootfs.img' }, 'S')],
    ['a pax global header', entry({ path: 'pax_global_header', type: 'GlobalExtendedHeader' }, Buffer.from('19 path=artifacts/x\n'))],
    ['a ".." path', file('artifacts/../../etc/shadow', 'x')],
    ['an absolute path', file('/etc/shadow', 'x')],
    ['a backslash path', file('artifacts\\rootfs.img', 'x')],
    ['a "./" path', file('./artifacts/rootfs.img', 'x')],
    ['a second manifest.json', file('manifest.json', '{}')],
    ['an unknown top-level file', file('README', 'x')],
  ];

  test.each(hostileEntries)('%s where the first artifact belongs is BUNDLE_FORMAT (before any signer is judged)', async (_name, raw) => {
    const b = bundle();
    const tar = tarOf([...b.entries.slice(0, SIGNATURE_END).map((e) => file(e.path, e.data)), raw, ...b.entries.slice(SIGNATURE_END).map((e) => file(e.path, e.data))]);
    const report = await expectCode(tar, 'BUNDLE_FORMAT');
    expect(report.signers).toEqual([]);
  });

  test.each(hostileEntries)('%s after the first artifact is BUNDLE_FORMAT', async (_name, raw) => {
    const b = bundle();
    const tar = tarOf([...b.entries.slice(0, SIGNATURE_END + 1).map((e) => file(e.path, e.data)), raw, ...b.entries.slice(SIGNATURE_END + 1).map((e) => file(e.path, e.data))]);
    const report = await expectCode(tar, 'BUNDLE_FORMAT');
    expect(report.artifacts[0]?.outcome).toBe('ok');
  });

  test('a hostile entry as the very first entry is BUNDLE_FORMAT', () =>
    expectCode(tarOf([header({ path: 'manifest.json', type: 'SymbolicLink', linkpath: '/etc/passwd' })]), 'BUNDLE_FORMAT'));

  test('a .sig without its .pem', () => expectCode(edited((e) => [e[0]!, e[1]!, e[3]!, ...e.slice(SIGNATURE_END)]), 'BUNDLE_FORMAT'));
  test('a .pem before its .sig', () => expectCode(edited((e) => [e[0]!, e[2]!, e[1]!, ...e.slice(3)]), 'BUNDLE_FORMAT'));
  test('a signature after the first artifact (threshold 1, so the signers pass)', () =>
    expectCode(edited((e) => [e[0]!, e[1]!, e[2]!, e[SIGNATURE_END]!, e[3]!, e[4]!, ...e.slice(SIGNATURE_END + 1)]), 'BUNDLE_FORMAT', {
      trust: anchorsFor([pki.root.pem], 1),
    }));

  test('17 signers', async () => {
    const signers = Array.from({ length: 17 }, (_, i) => pkiSigners(pki, [i % 3])[0]!);
    await expectCode(bundle({ signers }).tar, 'BUNDLE_FORMAT');
  });

  test('16 signers are read (and judged)', async () => {
    const signers = Array.from({ length: 16 }, (_, i) => pkiSigners(pki, [i % 3])[0]!);
    const report = await verify(bundle({ signers }).tar);
    expect(report.ok, report.reason).toBe(true);
    expect(report.signers).toHaveLength(16);
  });

  test('an artifact missing at the end is ARTIFACT_MISSING', async () => {
    const report = await expectCode(edited((e) => e.slice(0, -1)), 'ARTIFACT_MISSING');
    expect(report.artifacts.map((a) => a.outcome)).toEqual(['ok', 'ok', 'ok', 'not-reached']);
  });

  test('no artifact at all is ARTIFACT_MISSING (after the signers were judged)', async () => {
    const report = await expectCode(edited((e) => e.slice(0, SIGNATURE_END)), 'ARTIFACT_MISSING');
    expect(report.signers.map((s) => s.outcome)).toEqual(['valid', 'valid']);
  });

  test('an extra artifact not in the manifest is ARTIFACT_UNEXPECTED', () =>
    expectCode(edited((e) => [...e, { path: 'artifacts/backdoor.sh', data: Buffer.from('#!/bin/sh\n') }]), 'ARTIFACT_UNEXPECTED'));

  test('an artifact twice is ARTIFACT_UNEXPECTED', () => expectCode(edited((e) => [...e.slice(0, 7), e[6]!, ...e.slice(7)]), 'ARTIFACT_UNEXPECTED'));

  test('artifacts out of manifest order are ARTIFACT_UNEXPECTED', () =>
    expectCode(edited((e) => [...e.slice(0, SIGNATURE_END), e[6]!, e[5]!, ...e.slice(7)]), 'ARTIFACT_UNEXPECTED'));

  test('an artifact shorter than the manifest says is ARTIFACT_SIZE', async () => {
    const report = await expectCode(edited((e) => e.map((x, i) => (i === 6 ? { path: x.path, data: x.data.subarray(1) } : x))), 'ARTIFACT_SIZE');
    expect(report.artifacts[1]?.outcome).toBe('ARTIFACT_SIZE');
  });

  test('an artifact longer than the manifest says is ARTIFACT_SIZE', () =>
    expectCode(edited((e) => e.map((x, i) => (i === 6 ? { path: x.path, data: Buffer.concat([x.data, Buffer.from('!')]) } : x))), 'ARTIFACT_SIZE'));

  test('one flipped byte in the first artifact is ARTIFACT_DIGEST', async () => {
    const report = await expectCode(edited((e) => e.map((x, i) => (i === SIGNATURE_END ? { path: x.path, data: flipByte(x.data, 0) } : x))), 'ARTIFACT_DIGEST');
    expect(report.artifacts.map((a) => a.outcome)).toEqual(['ARTIFACT_DIGEST', 'not-reached', 'not-reached', 'not-reached']);
    expect(report.reason).toContain('rootfs.img');
  });

  test('one flipped byte at the end of the last artifact is ARTIFACT_DIGEST', async () => {
    const report = await expectCode(
      edited((e) => e.map((x, i) => (i === e.length - 1 ? { path: x.path, data: flipByte(x.data, x.data.length - 1) } : x))),
      'ARTIFACT_DIGEST',
    );
    expect(report.artifacts.map((a) => a.outcome)).toEqual(['ok', 'ok', 'ok', 'ARTIFACT_DIGEST']);
  });

  test('truncated inside a header', () => expectCode(bundle().tar.subarray(0, 512 * 3 + 100), 'BUNDLE_FORMAT'));
  test('truncated inside artifact data', () => expectCode(bundle().tar.subarray(0, bundle().tar.length - 70 * 1024), 'BUNDLE_FORMAT'));
  test('truncated before the end blocks', () => expectCode(bundle().tar.subarray(0, bundle().tar.length - 1024), 'BUNDLE_FORMAT'));
  test('trailing garbage after the end of the archive', () => expectCode(Buffer.concat([bundle().tar, Buffer.from('PK\x03\x04')]), 'BUNDLE_FORMAT'));
  test('zero padding to a 10 KiB record is fine', async () => {
    const tar = bundle().tar;
    expect((await verify(Buffer.concat([tar, Buffer.alloc(10240 - (tar.length % 10240))]))).ok).toBe(true);
  });
  test('not tar at all', () => expectCode(randomBytes(10_000), 'BUNDLE_FORMAT'));
  test('empty input', () => expectCode(Buffer.alloc(0), 'BUNDLE_FORMAT'));
});

describe('endless data', () => {
  /** A Readable that yields `prefix`, then random bytes forever; counts what was pulled. */
  function endless(prefix: Buffer): { stream: Readable; pulled: () => number; destroyed: () => boolean } {
    let pulled = 0;
    let sentPrefix = false;
    const stream = new Readable({
      highWaterMark: 65536,
      read() {
        const chunk = sentPrefix ? randomBytes(65536) : prefix;
        sentPrefix = true;
        pulled += chunk.length;
        this.push(chunk);
      },
    });
    return { stream, pulled: () => pulled, destroyed: () => stream.destroyed };
  }

  test('a header claiming 1 TiB for a small artifact is ARTIFACT_SIZE at once, and reading stops', async () => {
    const b = bundle();
    const prefix = Buffer.concat([...b.entries.slice(0, SIGNATURE_END).map((e) => file(e.path, e.data)), header({ path: 'artifacts/rootfs.img', size: 2 ** 40 })]);
    const src = endless(prefix);
    const report = await verifyBundle(src.stream, ctx);
    expect(report.code).toBe('ARTIFACT_SIZE');
    expect(src.destroyed()).toBe(true);
    expect(src.pulled()).toBeLessThan(prefix.length + 4 * 65536);
  });

  test('an endless stream after a correctly sized artifact ends as BUNDLE_FORMAT, and reading stops', async () => {
    const b = bundle();
    const prefix = Buffer.concat(b.entries.slice(0, SIGNATURE_END + 1).map((e) => file(e.path, e.data)));
    const src = endless(prefix);
    const report = await verifyBundle(src.stream, ctx);
    expect(report.code).toBe('BUNDLE_FORMAT');
    expect(src.destroyed()).toBe(true);
    expect(src.pulled()).toBeLessThan(prefix.length + 4 * 65536);
  });

  test('an endless stream before the signers are judged stops at the first bad header', async () => {
    const b = bundle();
    const src = endless(file('manifest.json', b.manifestBytes));
    expect((await verifyBundle(src.stream, ctx)).code).toBe('BUNDLE_FORMAT');
    expect(src.destroyed()).toBe(true);
  });
});

describe('expiry, hardware and rollback', () => {
  test('an expired manifest is MANIFEST_EXPIRED', async () => {
    const report = await expectCode(bundle().tar, 'MANIFEST_EXPIRED', { at: new Date('2027-05-01T12:00:01Z') });
    expect(report.artifacts.every((a) => a.outcome === 'not-reached')).toBe(true);
  });

  test('a model not in `hardware` is HARDWARE_MISMATCH', async () => {
    const report = await expectCode(bundle().tar, 'HARDWARE_MISMATCH', { hardware: 'nvr-4p' });
    expect(report.hardwareCheck).toBe('mismatch');
  });

  test('a securityVersion below the floor is ROLLBACK', () => expectCode(bundle().tar, 'ROLLBACK', { securityFloor: 13 }));
});

describe('reading order: the first fault read wins', () => {
  const flipped = (e: BundleEntry[]): BundleEntry[] => e.map((x, i) => (i === SIGNATURE_END ? { path: x.path, data: flipByte(x.data, 5) } : x));

  test('bad signature and a flipped artifact byte: SIGNATURE_INVALID', () =>
    expectCode(edited(flipped, { signers: [{ ...pkiSigners(pki, [0])[0]!, signOver: Buffer.from('x') }, pkiSigners(pki, [1])[0]!] }), 'SIGNATURE_INVALID'));

  test('expired and rollback: MANIFEST_EXPIRED', () => expectCode(bundle().tar, 'MANIFEST_EXPIRED', { at: new Date('2028-01-01T00:00:00Z'), securityFloor: 99 }));

  test('expired and hardware mismatch: MANIFEST_EXPIRED', () =>
    expectCode(bundle().tar, 'MANIFEST_EXPIRED', { at: new Date('2028-01-01T00:00:00Z'), hardware: 'other' }));

  test('hardware mismatch and rollback: HARDWARE_MISMATCH', () => expectCode(bundle().tar, 'HARDWARE_MISMATCH', { hardware: 'other', securityFloor: 99 }));

  test('untrusted signer and expired manifest: SIGNER_UNTRUSTED', async () => {
    const h = await hostileSigner(pki, 'foreign-root');
    await expectCode(bundle({ signers: [{ signer: h.signer, chainPem: h.chainPem }] }).tar, 'SIGNER_UNTRUSTED', { at: new Date('2028-01-01T00:00:00Z') });
  });

  test('rollback and an extra artifact entry: ROLLBACK', () =>
    expectCode(edited((e) => [...e, { path: 'artifacts/extra', data: Buffer.from('x') }]), 'ROLLBACK', { securityFloor: 99 }));

  test('digest mismatch before an unexpected entry: ARTIFACT_DIGEST', () =>
    expectCode(edited((e) => [...flipped(e), { path: 'artifacts/extra', data: Buffer.from('x') }]), 'ARTIFACT_DIGEST'));

  test('unexpected entry before a digest mismatch: ARTIFACT_UNEXPECTED', () =>
    expectCode(edited((e) => [...e.slice(0, SIGNATURE_END), { path: 'artifacts/extra', data: Buffer.from('x') }, ...flipped(e).slice(SIGNATURE_END)]), 'ARTIFACT_UNEXPECTED'));

  test('digest mismatch and trailing garbage: ARTIFACT_DIGEST', () => expectCode(Buffer.concat([edited(flipped), Buffer.from('garbage')]), 'ARTIFACT_DIGEST'));

  test('missing artifact and trailing garbage: ARTIFACT_MISSING', () =>
    expectCode(Buffer.concat([edited((e) => e.slice(0, -1)), Buffer.from('garbage')]), 'ARTIFACT_MISSING'));

  test('bad signature and a symlink after the first artifact: SIGNATURE_INVALID', async () => {
    const b = bundle({ signers: [{ ...pkiSigners(pki, [0])[0]!, signOver: Buffer.from('x') }, pkiSigners(pki, [1])[0]!] });
    const raw = b.entries.map((e) => file(e.path, e.data));
    await expectCode(tarOf([...raw.slice(0, SIGNATURE_END + 1), header({ path: 'artifacts/x', type: 'SymbolicLink', linkpath: '/' }), ...raw.slice(SIGNATURE_END + 1)]), 'SIGNATURE_INVALID');
  });

  test('bad signature and truncation before the first artifact: BUNDLE_FORMAT', async () => {
    const b = bundle({ signers: [{ ...pkiSigners(pki, [0])[0]!, signOver: Buffer.from('x') }] });
    await expectCode(tarOf(b.entries.slice(0, 3).map((e) => file(e.path, e.data))).subarray(0, 3 * 512 + 100), 'BUNDLE_FORMAT');
  });

  test('invalid manifest and bad signatures: MANIFEST_INVALID', () =>
    expectCode(bundle({ manifest: (m) => (m['extra'] = 1), signers: [{ ...pkiSigners(pki, [0])[0]!, signature: Buffer.from('junk') }] }).tar, 'MANIFEST_INVALID'));

  test('a .sig without .pem and an untrusted signer: BUNDLE_FORMAT', async () => {
    const h = await hostileSigner(pki, 'foreign-root');
    await expectCode(edited((e) => [e[0]!, e[1]!, e[2]!, e[3]!, ...e.slice(SIGNATURE_END)], { signers: [{ signer: h.signer, chainPem: h.chainPem }, ...pkiSigners(pki, [1])] }), 'BUNDLE_FORMAT');
  });
});

describe('the artifact sink', () => {
  type Call = [string, string, number?];
  function recordingSink(opts: { failWriteOn?: string } = {}): { sink: ArtifactSink; calls: Call[]; data: Map<string, Buffer[]> } {
    const calls: Call[] = [];
    const data = new Map<string, Buffer[]>();
    const sink: ArtifactSink = {
      async begin(artifact: ManifestArtifact) {
        calls.push(['begin', artifact.name]);
        data.set(artifact.name, []);
        return {
          async write(chunk: Buffer) {
            if (opts.failWriteOn === artifact.name) throw new Error('ENOSPC: slot full');
            data.get(artifact.name)!.push(Buffer.from(chunk));
          },
          async finish() {
            calls.push(['finish', artifact.name]);
          },
          async abort() {
            calls.push(['abort', artifact.name]);
          },
        };
      },
    };
    return { sink, calls, data };
  }

  test('a valid bundle: begin, the exact bytes, finish, for each artifact in order', async () => {
    const b = bundle();
    const rec = recordingSink();
    expect((await verify(b.tar, {}, rec.sink)).ok).toBe(true);
    expect(rec.calls).toEqual(b.artifacts.flatMap((a) => [['begin', a.name], ['finish', a.name]]));
    for (const a of b.artifacts) expect(Buffer.concat(rec.data.get(a.name)!).equals(a.data)).toBe(true);
  });

  test.each<[string, () => Promise<Buffer> | Buffer, Partial<VerifyContext>]>([
    ['bad signatures', () => bundle({ signers: [] }).tar, {}],
    ['an expired manifest', () => bundle().tar, { at: new Date('2030-01-01T00:00:00Z') }],
    ['a hardware mismatch', () => bundle().tar, { hardware: 'x' }],
    ['rollback', () => bundle().tar, { securityFloor: 1000 }],
    ['an invalid manifest', () => bundle({ manifest: (m) => (m['x'] = 1) }).tar, {}],
  ])('%s: begin() is never called', async (_name, make, over) => {
    const rec = recordingSink();
    const report = await verify(await make(), over, rec.sink);
    expect(report.ok).toBe(false);
    expect(rec.calls).toEqual([]);
  });

  test('a digest mismatch in the second artifact: first finished, second aborted, third never begun', async () => {
    const rec = recordingSink();
    const tar = edited((e) => e.map((x, i) => (i === 6 ? { path: x.path, data: flipByte(x.data, 3) } : x)));
    expect((await verify(tar, {}, rec.sink)).code).toBe('ARTIFACT_DIGEST');
    expect(rec.calls).toEqual([
      ['begin', 'rootfs.img'],
      ['finish', 'rootfs.img'],
      ['begin', 'app.tar'],
      ['abort', 'app.tar'],
    ]);
  });

  test('truncation inside an artifact aborts it', async () => {
    const rec = recordingSink();
    expect((await verify(cutInsideFirstArtifact(bundle(), 3000), {}, rec.sink)).code).toBe('BUNDLE_FORMAT');
    expect(rec.calls).toEqual([
      ['begin', 'rootfs.img'],
      ['abort', 'rootfs.img'],
    ]);
  });

  test('a sink write failure aborts the writer and is thrown (not a rejection)', async () => {
    const rec = recordingSink({ failWriteOn: 'app.tar' });
    await expect(verify(bundle().tar, {}, rec.sink)).rejects.toThrow(/ENOSPC/);
    expect(rec.calls.at(-1)).toEqual(['abort', 'app.tar']);
  });

  test('a source failure inside an artifact aborts the writer and is an IoError', async () => {
    const cut = cutInsideFirstArtifact(bundle(), 3000);
    async function* failing(): AsyncGenerator<Buffer> {
      yield cut;
      throw new Error('EIO');
    }
    const rec = recordingSink();
    await expect(verifyBundle(failing(), ctx, rec.sink)).rejects.toBeInstanceOf(IoError);
    expect(rec.calls).toEqual([
      ['begin', 'rootfs.img'],
      ['abort', 'rootfs.img'],
    ]);
  });
});

describe('the provenance statement', () => {
  function withStatement(statement: (payload: TestArtifact[]) => Buffer): Buffer {
    const payload = defaultArtifacts().slice(0, 3);
    return bundle({ artifacts: [...payload, { name: 'provenance.intoto.json', role: 'provenance', data: statement(payload) }] }).tar;
  }

  test('is checked and reported as matched', async () => {
    expect((await verify(bundle().tar)).provenanceCheck).toBe('matched');
  });

  test('naming another digest for an artifact is MANIFEST_INVALID (not ARTIFACT_DIGEST: the bytes are the signed ones)', async () => {
    const report = await expectCode(
      withStatement((p) => testProvenance([{ ...p[0]!, data: Buffer.from('other rootfs') }, ...p.slice(1)])),
      'MANIFEST_INVALID',
    );
    expect(report.provenanceCheck).toBe('mismatch');
    expect(report.reason).toContain('rootfs.img');
    expect(report.artifacts.map((a) => a.outcome)).toEqual(['ok', 'ok', 'ok', 'MANIFEST_INVALID']);
    expect(report.signers.map((s) => s.outcome)).toEqual(['valid', 'valid']);
  });

  test('leaving out an artifact is MANIFEST_INVALID', () => expectCode(withStatement((p) => testProvenance(p.slice(1))), 'MANIFEST_INVALID'));

  test('another builder is MANIFEST_INVALID', () =>
    expectCode(withStatement((p) => testProvenance(p, { ...TEST_PROVENANCE, builder: 'https://evil.example/builder' })), 'MANIFEST_INVALID'));

  test('another source commit is MANIFEST_INVALID', () =>
    expectCode(withStatement((p) => testProvenance(p, { ...TEST_PROVENANCE, sourceCommit: 'f'.repeat(40) })), 'MANIFEST_INVALID'));

  test('not a statement at all is MANIFEST_INVALID', () => expectCode(withStatement(() => Buffer.from('{"hello":"world"}')), 'MANIFEST_INVALID'));

  test('the sink aborts the provenance artifact', async () => {
    const calls: string[] = [];
    const sink: ArtifactSink = {
      async begin(a) {
        return { write: async () => undefined, finish: async () => void calls.push(`finish ${a.name}`), abort: async () => void calls.push(`abort ${a.name}`) };
      },
    };
    await verify(withStatement(() => Buffer.from('{}')), {}, sink);
    expect(calls).toEqual(['finish rootfs.img', 'finish app.tar', 'finish sbom.cdx.json', 'abort provenance.intoto.json']);
  });
});

describe('trust rotation', () => {
  let next: TestPki;
  beforeAll(async () => {
    next = await makeTestPki({ namespace: 'next', threshold: 2 });
  });

  function rotation(policy: Buffer, signers: BundleSigner[]): Buffer {
    return bundle({ artifacts: defaultArtifacts(undefined, [{ name: 'trust.json', role: 'trust', data: policy }]), signers }).tar;
  }

  test('old and new signers meeting both thresholds: accepted, new policy reported', async () => {
    const policy = next.policyBytes;
    const report = await verify(rotation(policy, [...pkiSigners(pki, [0, 1]), ...pkiSigners(next, [0, 1])]));
    expect(report.ok, report.reason).toBe(true);
    expect(report.newTrustPolicy?.equals(policy)).toBe(true);
    expect(report.trustRotation).toMatchObject({ artifact: 'trust.json', threshold: 2, distinctValid: 2 });
    expect(report.trustRotation?.signers.map((s) => s.outcome)).toEqual(['SIGNER_UNTRUSTED', 'SIGNER_UNTRUSTED', 'valid', 'valid']);
    expect(report.signers.map((s) => s.outcome)).toEqual(['valid', 'valid', 'SIGNER_UNTRUSTED', 'SIGNER_UNTRUSTED']);
  });

  test('only the old signers: the new policy is not met (its code)', async () => {
    const report = await expectCode(rotation(next.policyBytes, pkiSigners(pki, [0, 1])), 'SIGNER_UNTRUSTED');
    expect(report.artifacts.find((a) => a.name === 'trust.json')?.outcome).toBe('SIGNER_UNTRUSTED');
    expect(report.newTrustPolicy).toBeUndefined();
  });

  test('only the new signers: the current policy is not met', () => expectCode(rotation(next.policyBytes, pkiSigners(next, [0, 1])), 'SIGNER_UNTRUSTED'));

  test('the new policy raises the threshold beyond the signers: THRESHOLD_NOT_MET', () =>
    expectCode(rotation(trustPolicyBytes([pki.root.pem], 3), pkiSigners(pki, [0, 1])), 'THRESHOLD_NOT_MET'));

  test('a trust artifact that is not a valid policy: THRESHOLD_NOT_MET', async () => {
    const report = await expectCode(rotation(Buffer.from('{"schema":"glassbox.trust/v1"}'), pkiSigners(pki, [0, 1])), 'THRESHOLD_NOT_MET');
    expect(report.reason).toContain('not a valid trust policy');
  });

  test('the new policy revokes a signer: the new judgement fails', () =>
    expectCode(rotation(trustPolicyBytes([pki.root.pem], 2, { keys: [spkiSha256(pki.signers[0]!.cert)] }), pkiSigners(pki, [0, 1])), 'SIGNER_UNTRUSTED'));

  test('the sink aborts the trust artifact when the new policy is not met', async () => {
    const calls: string[] = [];
    const sink: ArtifactSink = {
      async begin(a) {
        return { write: async () => undefined, finish: async () => void calls.push(`finish ${a.name}`), abort: async () => void calls.push(`abort ${a.name}`) };
      },
    };
    await verify(rotation(next.policyBytes, pkiSigners(pki, [0, 1])), {}, sink);
    expect(calls.at(-1)).toBe('abort trust.json');
  });
});

describe.skipIf(requireSystem(['tar']))('bundles made by GNU tar', () => {
  async function gnuTar(format: string): Promise<Buffer> {
    const dir = await mkdtemp(join(tmpdir(), 'gbx-gnutar-'));
    try {
      const b = bundle();
      await mkdir(join(dir, 'signatures'));
      await mkdir(join(dir, 'artifacts'));
      for (const e of b.entries) await writeFile(join(dir, e.path), e.data);
      execFileSync('tar', [`--format=${format}`, '-C', dir, '-cf', join(dir, 'out.tar'), ...b.entries.map((e) => e.path)]);
      return await readFile(join(dir, 'out.tar'));
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  }

  test('--format=posix (pax headers with atime/ctime) and --format=ustar are accepted', async () => {
    for (const format of ['posix', 'ustar']) {
      const report = await verify(await gnuTar(format));
      expect(report.ok, `${format}: ${report.reason}`).toBe(true);
    }
  });

  test('--format=gnu is BUNDLE_FORMAT (not POSIX)', async () => {
    const report = await expectCode(await gnuTar('gnu'), 'BUNDLE_FORMAT');
    expect(report.reason).toContain('GNU tar format');
  });
});
