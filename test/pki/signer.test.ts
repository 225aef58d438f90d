import { describe, expect, it, beforeAll, afterAll } from 'vitest';
import { spawnSync } from 'node:child_process';
import { readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { FileKeySigner, type RsaPadding } from '../../src/pki/signer.js';
import { createDevPki, type DevPki } from '../../src/pki/devpki.js';
import { verifySignature } from '../../src/trust/signature.js';
import { judgeSigners } from '../../src/trust/signers.js';
import { loadTrustAnchors } from '../../src/trust/policy.js';
import { GlassboxError } from '../../src/errors.js';
import { X509Certificate } from 'node:crypto';
import { requireSystem } from '../helpers/system.js';
import { hostileSigner, makeTestPki, tempDir } from '../helpers/pki.js';
import { privateKeyPem } from '../../src/pki/keys.js';

const NOW = new Date('2026-06-01T00:00:00Z');
const MANIFEST = Buffer.from('{"artifacts":[],"schema":"glassbox.manifest/v1"}');
let base: string;
let pki: DevPki;

beforeAll(async () => {
  base = await tempDir('glassbox-signer-');
  pki = await createDevPki(join(base, 'pki'), { signerAlgorithms: ['ecdsa-p256', 'ecdsa-p384', 'rsa-3072'], threshold: 3, now: NOW });
  await writeFile(join(base, 'manifest.json'), MANIFEST);
});
afterAll(async () => {
  if (base) await rm(base, { recursive: true, force: true });
});

const signerFor = (i: number, rsaPadding?: RsaPadding) => {
  const s = pki.signers[i];
  if (!s) throw new Error('no signer');
  return FileKeySigner.fromFiles(s.key, s.chain, rsaPadding ? { rsaPadding } : {});
};

describe('when a file signer signs', () => {
  it.each([
    [0, undefined, 'ecdsa-p256-sha256'],
    [1, undefined, 'ecdsa-p384-sha384'],
    [2, 'pkcs1', 'rsa-pkcs1v15-sha256'],
    [2, 'pss', 'rsa-pss-sha256'],
  ] as const)('signer %i (%s) produces a signature glassbox verifies as %s', async (i, padding, algorithm) => {
    const signer = await signerFor(i, padding);
    expect(signer.algorithm).toBe(algorithm);
    const sig = await signer.sign(MANIFEST);
    const leaf = new X509Certificate(signer.chainPem);
    expect(verifySignature(leaf, MANIFEST, sig)).toEqual({ ok: true, algorithm });
    expect(signer.spkiSha256).toBe(pki.signers[i]?.spkiSha256);
  });

  it('gives a chain of leaf then intermediate, without the root', async () => {
    const signer = await signerFor(0);
    const root = (await readFile(pki.root.cert, 'utf8')).trim();
    expect(signer.chainPem).not.toContain(root);
    expect(signer.chainPem.match(/BEGIN CERTIFICATE/g)).toHaveLength(2);
    expect(signer.chainPem.startsWith((await readFile(pki.signers[0]?.cert ?? '', 'utf8')).trim())).toBe(true);
  });

  it('three file signers meet threshold 3 in judgeSigners', async () => {
    const anchors = loadTrustAnchors(await readFile(pki.trustPolicy));
    const entries = [];
    for (const [k, pad] of [[0, undefined], [1, undefined], [2, 'pss']] as const) {
      const s = await signerFor(k, pad);
      entries.push({ index: k + 1, signature: await s.sign(MANIFEST), chainPem: Buffer.from(s.chainPem) });
    }
    expect(judgeSigners(MANIFEST, entries, anchors, NOW)).toMatchObject({ code: null, distinctValid: 3 });
  });
});

describe('when the key or chain files are wrong', () => {
  const codeOf = async (p: Promise<unknown>) => ((await p.then(() => null, (e: unknown) => e)) as GlassboxError | null)?.code;

  it('refuses a key that does not match the chain leaf', async () => {
    expect(await codeOf(FileKeySigner.fromFiles(pki.signers[0]?.key ?? '', pki.signers[1]?.chain ?? ''))).toBe('SIGNER_INVALID');
  });
  it('refuses a chain with the root in it', async () => {
    const chain = join(base, 'with-root.pem');
    await writeFile(chain, (await readFile(pki.signers[0]?.chain ?? '', 'utf8')) + (await readFile(pki.root.cert, 'utf8')));
    await expect(FileKeySigner.fromFiles(pki.signers[0]?.key ?? '', chain)).rejects.toThrow(/self-signed/);
  });
  it('refuses rsaPadding on an ECDSA key', async () => {
    expect(await codeOf(signerFor(0, 'pss'))).toBe('SIGNER_INVALID');
  });
  it('refuses a refused key algorithm (RSA-2048)', async () => {
    const t = await makeTestPki({ signers: 1, threshold: 1 });
    const weak = await hostileSigner(t, 'rsa-2048');
    expect(() => FileKeySigner.fromPem(privateKeyPem(weak.signer.key), weak.chainPem)).toThrow(/RSA-2048/);
  });
  it('reports a missing file as an I/O error', async () => {
    expect(await codeOf(FileKeySigner.fromFiles(join(base, 'nope.key'), pki.signers[0]?.chain ?? ''))).toBe('IO');
  });
  it('refuses an oversized file', async () => {
    const big = join(base, 'big.pem');
    await writeFile(big, 'A'.repeat(70_000));
    expect(await codeOf(FileKeySigner.fromFiles(pki.signers[0]?.key ?? '', big))).toBe('SIGNER_INVALID');
  });
});

const missing = requireSystem(['openssl']);

describe.skipIf(missing)(`when openssl dgst checks the signatures${missing ? ` (skipped: ${missing})` : ''}`, () => {
  it.each([
    [0, undefined, ['-sha256']],
    [1, undefined, ['-sha384']],
    [2, 'pkcs1', ['-sha256']],
    [2, 'pss', ['-sha256', '-sigopt', 'rsa_padding_mode:pss', '-sigopt', 'rsa_pss_saltlen:32']],
  ] as const)('signer %i (%s) verifies with openssl dgst %j', async (i, padding, args) => {
    const signer = await signerFor(i, padding);
    const sigPath = join(base, `sig-${i}-${padding ?? 'ec'}`);
    await writeFile(sigPath, await signer.sign(MANIFEST));
    const pub = join(base, `pub-${i}.pem`);
    const x = spawnSync('openssl', ['x509', '-in', pki.signers[i]?.cert ?? '', '-pubkey', '-noout', '-out', pub], { encoding: 'utf8' });
    expect(x.status, x.stderr).toBe(0);
    const r = spawnSync('openssl', ['dgst', ...args, '-verify', pub, '-signature', sigPath, join(base, 'manifest.json')], { encoding: 'utf8' });
    expect(r.status, r.stdout + r.stderr).toBe(0);
    expect(r.stdout).toMatch(/Verified OK/);
    // and the same signature over altered bytes fails in openssl too: the check can fail
    await writeFile(join(base, 'altered.json'), Buffer.concat([MANIFEST, Buffer.from(' ')]));
    const bad = spawnSync('openssl', ['dgst', ...args, '-verify', pub, '-signature', sigPath, join(base, 'altered.json')], { encoding: 'utf8' });
    expect(bad.status).not.toBe(0);
  });
});
