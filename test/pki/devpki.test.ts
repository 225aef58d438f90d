import { describe, expect, it, beforeAll, afterAll } from 'vitest';
import { spawnSync } from 'node:child_process';
import { readFile, rm, stat, writeFile, mkdir } from 'node:fs/promises';
import { join, dirname } from 'node:path';
import { createDevPki, type DevPki } from '../../src/pki/devpki.js';
import { loadTrustAnchors } from '../../src/trust/policy.js';
import { validateChain } from '../../src/trust/chain.js';
import { checkCanonical } from '../../src/manifest/canonical.js';
import { keyPairFromPem } from '../../src/pki/keys.js';
import { spkiSha256 } from '../../src/trust/fingerprint.js';
import { GlassboxError } from '../../src/errors.js';
import { requireSystem } from '../helpers/system.js';
import { tempDir } from '../helpers/pki.js';

let base: string;
let pki: DevPki;
const NOW = new Date('2026-06-01T00:00:00Z');

beforeAll(async () => {
  base = await tempDir('glassbox-devpki-');
  pki = await createDevPki(join(base, 'pki'), { now: NOW });
});
afterAll(async () => {
  if (base) await rm(base, { recursive: true, force: true });
});

describe('when a default development PKI is written', () => {
  it('writes a canonical trust policy with the root and threshold 2 that loads', async () => {
    const bytes = await readFile(pki.trustPolicy);
    expect(checkCanonical(bytes).ok).toBe(true);
    const anchors = loadTrustAnchors(bytes);
    expect(anchors.policy.threshold).toBe(2);
    expect(anchors.roots).toHaveLength(1);
    expect(anchors.roots[0]?.toString().trim()).toBe((await readFile(pki.root.cert, 'utf8')).trim());
    expect(anchors.sha256).toBe(pki.trustPolicySha256);
  });

  it('makes three ECDSA P-256 release signers whose chains validate for code signing', async () => {
    const anchors = loadTrustAnchors(await readFile(pki.trustPolicy));
    expect(pki.signers.map((s) => s.algorithm)).toEqual(['ecdsa-p256', 'ecdsa-p256', 'ecdsa-p256']);
    for (const s of pki.signers) {
      const r = validateChain(await readFile(s.chain), anchors, NOW, 'codeSigning');
      expect(r.ok, r.ok ? '' : r.reason).toBe(true);
      if (r.ok) expect(r.spkiSha256).toBe(s.spkiSha256);
      expect(spkiSha256(keyPairFromPem(await readFile(s.key)).publicKey)).toBe(s.spkiSha256);
    }
    expect(new Set(pki.signers.map((s) => s.spkiSha256)).size).toBe(3);
  });

  it('writes private keys with mode 0600 and certificates 0644', async () => {
    for (const f of [pki.root, pki.releaseCa, pki.deviceCa, ...pki.signers]) {
      expect((await stat(f.key)).mode & 0o777).toBe(0o600);
      expect((await stat(f.cert)).mode & 0o777).toBe(0o644);
    }
  });

  it('never puts the root into a signer chain file', async () => {
    const root = (await readFile(pki.root.cert, 'utf8')).trim();
    for (const s of pki.signers) expect(await readFile(s.chain, 'utf8')).not.toContain(root);
  });

  it('writes pki.json describing every file with relative paths', async () => {
    const index = JSON.parse(await readFile(pki.index, 'utf8'));
    expect(index).toMatchObject({
      schema: 'glassbox.devpki/v1',
      trustPolicy: { path: 'trust-policy.json', sha256: pki.trustPolicySha256, threshold: 2 },
      root: { cert: 'root-ca.pem', key: 'root-ca.key', algorithm: 'ecdsa-p384' },
      deviceCa: { cert: 'device-ca.pem', key: 'device-ca.key' },
    });
    expect(index.signers.map((s: { chain: string }) => s.chain)).toEqual(['signer-1.chain.pem', 'signer-2.chain.pem', 'signer-3.chain.pem']);
    for (const s of index.signers) await stat(join(pki.dir, s.key));
  });

  it('refuses to write over an existing PKI and leaves it intact', async () => {
    const before = await readFile(pki.root.key);
    await expect(createDevPki(pki.dir, { now: NOW })).rejects.toMatchObject({ code: 'IO' });
    expect((await readFile(pki.root.key)).equals(before)).toBe(true);
  });

  it('refuses before writing anything when only one target file exists', async () => {
    const dir = join(base, 'partial');
    await mkdir(dir);
    await writeFile(join(dir, 'signer-2.key'), 'precious');
    await expect(createDevPki(dir, { now: NOW })).rejects.toThrow(/signer-2\.key/);
    await expect(stat(join(dir, 'root-ca.key'))).rejects.toMatchObject({ code: 'ENOENT' });
    expect(await readFile(join(dir, 'signer-2.key'), 'utf8')).toBe('precious');
  });
});

describe('when options are given', () => {
  it('mixes algorithms and sets the threshold', async () => {
    const mixed = await createDevPki(join(base, 'mixed'), { signerAlgorithms: ['ecdsa-p384', 'rsa-3072'], threshold: 1, now: NOW });
    expect(mixed.signers.map((s) => s.algorithm)).toEqual(['ecdsa-p384', 'rsa-3072']);
    expect(mixed.threshold).toBe(1);
    const anchors = loadTrustAnchors(await readFile(mixed.trustPolicy));
    for (const s of mixed.signers) expect(validateChain(await readFile(s.chain), anchors, NOW, 'codeSigning').ok).toBe(true);
  });

  it.each([
    [{ threshold: 4 }, /threshold must be 1\.\.3/],
    [{ threshold: 0 }, /threshold/],
    [{ signers: 0 }, /signer count/],
    [{ signers: 17 }, /signer count/],
    [{ signerAlgorithms: ['rsa-2048'] as never }, /rsa-2048 is not accepted/],
    [{ signers: 1, signerAlgorithms: ['ecdsa-p256', 'ecdsa-p384'] as const }, /2 signer algorithms given for 1 signers/],
  ])('refuses %j with a usage error before writing', async (opts, pattern) => {
    const dir = join(base, `bad-${Math.random().toString(16).slice(2)}`);
    const err = await createDevPki(dir, opts).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(GlassboxError);
    expect((err as GlassboxError).code).toBe('USAGE');
    expect((err as GlassboxError).message).toMatch(pattern);
    await expect(stat(dir)).rejects.toMatchObject({ code: 'ENOENT' });
  });
});

const missing = requireSystem(['openssl']);

describe.skipIf(missing)(`when openssl checks the written files${missing ? ` (skipped: ${missing})` : ''}`, () => {
  it('verifies every signer chain and the device CA against the root', () => {
    for (const s of pki.signers) {
      const leaf = s.cert;
      const r = spawnSync('openssl', ['verify', '-x509_strict', '-attime', String(NOW.getTime() / 1000), '-CAfile', pki.root.cert, '-untrusted', pki.releaseCa.cert, leaf], { encoding: 'utf8' });
      expect(r.status, r.stdout + r.stderr).toBe(0);
    }
    const d = spawnSync('openssl', ['verify', '-x509_strict', '-attime', String(NOW.getTime() / 1000), '-CAfile', pki.root.cert, pki.deviceCa.cert], { encoding: 'utf8' });
    expect(d.status, d.stdout + d.stderr).toBe(0);
    expect(dirname(pki.root.cert)).toBe(pki.dir);
  });
});
