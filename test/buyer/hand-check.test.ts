/**
 * The buyer's by-hand check (bundle-v1 section 6): docs/buyers.md shows
 * scripts/buyer-check.sh verbatim, and this test runs exactly that script
 * (tar, openssl, sha256sum, sed, awk) against bundles made by the release
 * tooling, and against altered ones. Every verdict is compared with
 * glassbox's own verifier on the same bundle and policy.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { copyFile, readFile, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { createDevPki, type DevPki } from '../../src/pki/devpki.js';
import { verifyBundleFile } from '../../src/bundle/verify.js';
import { loadTrustAnchors } from '../../src/trust/policy.js';
import { canonicalBytes } from '../../src/manifest/canonical.js';
import { writeBundle } from '../../src/bundle/writer.js';
import { inspectBundle } from '../../src/release/inspect.js';
import { readTar } from '../../src/bundle/reader.js';
import { createReadStream } from 'node:fs';
import { entry, file, tarOf } from '../helpers/bundle.js';
import { tempDir, removeTempDirs } from '../release/fixtures.js';

afterAll(removeTempDirs);

const MAIN = resolve('dist/cli/main.js');
const SCRIPT = resolve('scripts/buyer-check.sh');
const DOC = resolve('docs/buyers.md');

function run(cmd: string, args: string[], cwd: string): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(cmd, args, { cwd, encoding: 'utf8', timeout: 120_000 });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

function glassbox(args: string[], cwd: string): void {
  const r = run(process.execPath, [MAIN, ...args], cwd);
  if (r.status !== 0) throw new Error(`glassbox ${args.join(' ')} failed (${r.status}): ${r.stderr}`);
}

/** Runs the by-hand check exactly as documented. */
function handCheck(bundle: string, policy: string, cwd: string): { status: number | null; out: string } {
  const r = run('bash', [SCRIPT, bundle, policy], cwd);
  return { status: r.status, out: r.stdout + r.stderr };
}

async function glassboxVerdict(bundle: string, policy: string): Promise<{ ok: boolean; code: string | null }> {
  const report = await verifyBundleFile(bundle, { trust: loadTrustAnchors(await readFile(policy)), at: new Date(), securityFloor: 0 });
  return { ok: report.ok, code: report.code };
}

/** The bodies of the signature entries of a bundle, by path. */
async function bodies(bundle: string): Promise<Map<string, Buffer>> {
  const out = new Map<string, Buffer>();
  let current = '';
  for await (const ev of readTar(createReadStream(bundle))) {
    if (ev.kind === 'entry') {
      current = ev.path;
      out.set(current, Buffer.alloc(0));
    } else if (ev.kind === 'data') out.set(current, Buffer.concat([out.get(current)!, ev.chunk]));
  }
  return out;
}

async function flipByte(from: string, to: string, find: Buffer, delta = 0): Promise<void> {
  await copyFile(from, to);
  const bytes = await readFile(to);
  const at = bytes.indexOf(find);
  if (at < 0) throw new Error('marker not found');
  bytes[at + delta] = bytes[at + delta]! ^ 0x01;
  await writeFile(to, bytes);
}

const TEMPLATE = {
  schema: 'glassbox.manifest/v1',
  product: 'hss-nvr',
  hardware: ['nvr-8p'],
  version: '4.2.0',
  securityVersion: 3,
  released: '2025-03-01T12:00:00Z',
  expires: '2099-03-01T12:00:00Z',
  egress: [{ id: 'ntp', purpose: 'Time synchronisation', proto: 'udp', host: 'ntp.hss.example', port: 123 }],
  provenance: {
    sourceRepository: 'https://git.hss.example/nvr/firmware',
    sourceCommit: '0123456789abcdef0123456789abcdef01234567',
    builder: 'https://ci.hss.example/builders/release',
    buildFinished: '2025-03-01T11:00:00Z',
  },
  notes: 'Example release for the hand check.',
};
const ROOTFS = Buffer.from('ROOTFS-MARKER ' + 'squashfs image bytes '.repeat(5000));

let dir: string;
let pki: DevPki;
let good: string;

beforeAll(async () => {
  if (!existsSync(MAIN)) throw new Error(`${MAIN} is missing: run npm run build first`);
  dir = await tempDir('buyer');
  // the same function `glassbox release pki` runs, with one signer per accepted algorithm family
  pki = await createDevPki(join(dir, 'pki'), { signerAlgorithms: ['ecdsa-p256', 'ecdsa-p384', 'rsa-3072'], threshold: 2 });
  await writeFile(join(dir, 'template.json'), JSON.stringify(TEMPLATE, null, 2));
  await writeFile(join(dir, 'rootfs.img'), ROOTFS);
  await writeFile(join(dir, 'recorder.conf'), 'retention_days = 30\n');
  glassbox(['release', 'build', '--template', 'template.json', '--artifact', 'rootfs.img=rootfs:rootfs.img', '--artifact', 'recorder.conf=config:recorder.conf', '--out', 'good.bundle'], dir);
  const [s1, s2, s3] = pki.signers;
  glassbox(['release', 'sign', 'good.bundle', '--key', s1!.key, '--chain', s1!.chain], dir);
  glassbox(['release', 'sign', 'good.bundle', '--key', s2!.key, '--chain', s2!.chain], dir);
  glassbox(['release', 'sign', 'good.bundle', '--key', s3!.key, '--chain', s3!.chain, '--pss'], dir);
  good = join(dir, 'good.bundle');
}, 120_000);

describe('docs/buyers.md', () => {
  it('shows scripts/buyer-check.sh verbatim: its bash blocks, in order, are the script', async () => {
    const doc = await readFile(DOC, 'utf8');
    const blocks = [...doc.matchAll(/^```bash\n([\s\S]*?)\n```$/gm)].map((m) => m[1]);
    expect(blocks.length).toBeGreaterThan(5);
    expect(blocks.join('\n\n') + '\n').toBe(await readFile(SCRIPT, 'utf8'));
  });

  it('names the section-6 commands a buyer runs', async () => {
    const doc = await readFile(DOC, 'utf8');
    for (const command of [
      'tar -tvf "$BUNDLE"',
      'openssl verify -x509_strict -CAfile root.pem -untrusted "signatures/$k.pem" "leaf-$k.pem"',
      'openssl x509 -in "leaf-$k.pem" -noout -ext extendedKeyUsage',
      'openssl dgst -sha256 -verify "pub-$k.pem" -signature "signatures/$k.sig" manifest.json',
      'openssl dgst -sha384 -verify',
      '-sigopt rsa_padding_mode:pss -sigopt rsa_pss_saltlen:32',
      'sha256sum -c artifacts.sha256',
    ]) {
      expect(doc).toContain(command);
    }
  });
});

describe('scripts/buyer-check.sh on bundles from the release tooling', () => {
  it('passes a bundle signed by P-256, P-384 and RSA-3072-PSS signers, as glassbox verify does', async () => {
    const r = handCheck(good, pki.trustPolicy, dir);
    expect(r.out).toContain('leaf-1.pem: OK');
    expect(r.out).toContain('Code Signing');
    expect(r.out).toMatch(/signer 1: valid[\s\S]*signer 2: valid[\s\S]*RSA-3072: PKCS #1 v1\.5 first[\s\S]*signer 3: valid/);
    expect(r.out).toContain('3 distinct valid signer keys; the policy requires 2');
    expect(r.out).toContain('artifacts/rootfs.img: OK');
    expect(r.out).toContain('built by https://ci.hss.example/builders/release from https://git.hss.example/nvr/firmware at commit 0123456789abcdef0123456789abcdef01234567');
    expect(r.out).toContain(`OK: ${good} passed every check`);
    expect(r.status).toBe(0);
    expect(await glassboxVerdict(good, pki.trustPolicy)).toEqual({ ok: true, code: null });
  });

  it('passes an RSA-3072 PKCS #1 v1.5 signer', async () => {
    const b = join(dir, 'rsa.bundle');
    glassbox(['release', 'build', '--template', 'template.json', '--artifact', 'rootfs.img=rootfs:rootfs.img', '--out', 'rsa.bundle'], dir);
    for (const s of [pki.signers[2]!, pki.signers[0]!]) glassbox(['release', 'sign', 'rsa.bundle', '--key', s.key, '--chain', s.chain], dir);
    const r = handCheck(b, pki.trustPolicy, dir);
    expect(r.out).toContain('2 distinct valid signer keys');
    expect(r.status).toBe(0);
  });

  describe('fails (exit 1) where a recorder refuses', () => {
    it('one flipped bit in an artifact: sha256sum reports it', async () => {
      const b = join(dir, 'tampered-artifact.bundle');
      await flipByte(good, b, Buffer.from('ROOTFS-MARKER'), 2000);
      const r = handCheck(b, pki.trustPolicy, dir);
      expect(r.out).toContain('artifacts/rootfs.img: FAILED');
      expect(r.out).toContain('FAIL: an artifact differs from its manifest sha256');
      expect(r.status).toBe(1);
      expect(await glassboxVerdict(b, pki.trustPolicy)).toEqual({ ok: false, code: 'ARTIFACT_DIGEST' });
    });

    it('one changed byte in manifest.json: every signature fails, threshold not met', async () => {
      const b = join(dir, 'tampered-manifest.bundle');
      await flipByte(good, b, Buffer.from('"product":"hss-nvr"'), 17); // hss-nvr -> hss-nvs
      const r = handCheck(b, pki.trustPolicy, dir);
      expect(r.out).toContain('Verification failure');
      expect(r.out).toContain('FAIL: only 0 distinct valid signers, 2 required');
      expect(r.status).toBe(1);
      expect((await glassboxVerdict(b, pki.trustPolicy)).code).toBe('SIGNATURE_INVALID');
    });

    it('too few signers: the unsigned build and a one-signer bundle', async () => {
      glassbox(['release', 'build', '--template', 'template.json', '--artifact', 'rootfs.img=rootfs:rootfs.img', '--out', 'one.bundle'], dir);
      const unsigned = handCheck(join(dir, 'one.bundle'), pki.trustPolicy, dir);
      expect(unsigned.out).toContain('FAIL: only 0 distinct valid signers, 2 required');
      expect(unsigned.status).toBe(1);
      glassbox(['release', 'sign', 'one.bundle', '--key', pki.signers[1]!.key, '--chain', pki.signers[1]!.chain], dir);
      const one = handCheck(join(dir, 'one.bundle'), pki.trustPolicy, dir);
      expect(one.out).toContain('FAIL: only 1 distinct valid signers, 2 required');
      expect(one.status).toBe(1);
      expect((await glassboxVerdict(join(dir, 'one.bundle'), pki.trustPolicy)).code).toBe('THRESHOLD_NOT_MET');
    });

    it('the same key twice counts once', async () => {
      const b = join(dir, 'twice.bundle');
      const sigs = await bodies(good);
      const report = await inspectBundle(good);
      const built = await readFile(join(dir, 'good.bundle'));
      expect(built.length).toBeGreaterThan(0);
      const manifestBytes = sigs.get('manifest.json')!;
      const pair = { sig: sigs.get('signatures/1.sig')!, chainPem: sigs.get('signatures/1.pem')! };
      // writeBundle takes files; put the artifacts of the good bundle on disk
      const artifacts = [];
      for (const a of report.manifest!.artifacts) {
        const p = join(dir, `twice-${a.name}`);
        await writeFile(p, sigs.get(`artifacts/${a.name}`)!);
        artifacts.push({ name: a.name, path: p });
      }
      await writeBundle(b, { manifestBytes, signatures: [pair, pair], artifacts });
      const r = handCheck(b, pki.trustPolicy, dir);
      expect(r.out).toMatch(/signer 1: valid[\s\S]*signer 2: valid/);
      expect(r.out).toContain('FAIL: only 1 distinct valid signers, 2 required');
      expect(r.status).toBe(1);
      expect((await glassboxVerdict(b, pki.trustPolicy)).code).toBe('THRESHOLD_NOT_MET');
    });

    it('a signer whose key the policy revokes is not counted', async () => {
      const policy = JSON.parse(await readFile(pki.trustPolicy, 'utf8')) as { revoked: { keys: string[] } };
      policy.revoked.keys = [pki.signers[0]!.spkiSha256, pki.signers[1]!.spkiSha256].sort();
      const revokedPolicy = join(dir, 'revoked-policy.json');
      await writeFile(revokedPolicy, canonicalBytes(policy));
      const r = handCheck(good, revokedPolicy, dir);
      expect(r.out).toContain('chain-cert-1.pem is revoked');
      expect(r.out).toContain('FAIL: only 1 distinct valid signers, 2 required');
      expect(r.status).toBe(1);
      expect((await glassboxVerdict(good, revokedPolicy)).code).toBe('SIGNER_UNTRUSTED');
    });

    it('signers from a root the policy does not trust', async () => {
      const other = await createDevPki(join(dir, 'other-pki'), { signers: 2 });
      const r = handCheck(good, other.trustPolicy, dir);
      expect(r.out).toContain('unable to get local issuer certificate');
      expect(r.out).toContain('FAIL: only 0 distinct valid signers, 2 required');
      expect(r.status).toBe(1);
      expect((await glassboxVerdict(good, other.trustPolicy)).code).toBe('SIGNER_UNTRUSTED');
    });

    it('an entry that is not a regular file, or an entry out of place', async () => {
      const sigs = await bodies(good);
      const manifest = sigs.get('manifest.json')!;
      const symlink = join(dir, 'symlink.bundle');
      await writeFile(symlink, tarOf([file('manifest.json', manifest), entry({ path: 'artifacts/rootfs.img', type: 'SymbolicLink', linkpath: '/etc/passwd' })]));
      const r1 = handCheck(symlink, pki.trustPolicy, dir);
      expect(r1.out).toContain('FAIL: the lines above are not regular files');
      expect(r1.status).toBe(1);
      expect((await glassboxVerdict(symlink, pki.trustPolicy)).code).toBe('BUNDLE_FORMAT');

      const extra = join(dir, 'extra.bundle');
      const parts = [...sigs.entries()].map(([p, body]) => file(p, body));
      await writeFile(extra, tarOf([...parts, file('artifacts/backdoor.sh', '#!/bin/sh\n')]));
      const r2 = handCheck(extra, pki.trustPolicy, dir);
      expect(r2.out).toContain('> artifacts/backdoor.sh');
      expect(r2.out).toContain('FAIL: the entries (right) differ');
      expect(r2.status).toBe(1);
      expect((await glassboxVerdict(extra, pki.trustPolicy)).code).toBe('ARTIFACT_UNEXPECTED');
    });

    it('an expired manifest', async () => {
      await writeFile(join(dir, 'old-template.json'), JSON.stringify({ ...TEMPLATE, released: '2020-01-01T00:00:00Z', expires: '2020-06-01T00:00:00Z', provenance: { ...TEMPLATE.provenance, buildFinished: '2020-01-01T00:00:00Z' } }));
      glassbox(['release', 'build', '--template', 'old-template.json', '--artifact', 'rootfs.img=rootfs:rootfs.img', '--out', 'old.bundle', '--now', '2020-01-01T00:00:00Z'], dir);
      for (const s of pki.signers.slice(0, 2)) glassbox(['release', 'sign', 'old.bundle', '--key', s.key, '--chain', s.chain], dir);
      const r = handCheck(join(dir, 'old.bundle'), pki.trustPolicy, dir);
      expect(r.out).toContain('FAIL: the manifest expired at 2020-06-01T00:00:00Z');
      expect(r.status).toBe(1);
      expect((await glassboxVerdict(join(dir, 'old.bundle'), pki.trustPolicy)).code).toBe('MANIFEST_EXPIRED');
    });
  });

  it('exits 2 on wrong arguments', () => {
    expect(run('bash', [SCRIPT], dir).status).toBe(2);
    expect(run('bash', [SCRIPT, join(dir, 'nope.bundle'), pki.trustPolicy], dir).status).toBe(2);
  });
});
