import { describe, expect, it, beforeAll, afterAll } from 'vitest';
import { constants, sign } from 'node:crypto';
import { spawnSync } from 'node:child_process';
import { rm, writeFile, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { verifySignature, SIGNATURE_MAX_BYTES } from '../../src/trust/signature.js';
import { createLeaf, type CertifiedKey } from '../../src/pki/certs.js';
import { privateKeyPem, type KeyAlgorithm } from '../../src/pki/keys.js';
import { requireSystem } from '../helpers/system.js';
import { makeTestPki, signWith, tempDir, testKey, type TestPki } from '../helpers/pki.js';

const DATA = Buffer.from('{"schema":"glassbox.manifest/v1","version":"1.2.3"}');

let pki: TestPki;
const leaves = new Map<KeyAlgorithm, CertifiedKey>();
async function leafFor(alg: KeyAlgorithm): Promise<CertifiedKey> {
  let l = leaves.get(alg);
  if (!l) {
    l = await createLeaf(pki.releaseCa, { key: await testKey(alg, 'sig'), subject: `CN=${alg} signer`, purpose: 'codeSigning', now: pki.now });
    leaves.set(alg, l);
  }
  return l;
}

beforeAll(async () => {
  pki = await makeTestPki({ signers: 1, threshold: 1 });
});

describe('when the algorithm is accepted', () => {
  const cases: Array<[KeyAlgorithm, 'pkcs1' | 'pss' | undefined, string]> = [
    ['ecdsa-p256', undefined, 'ecdsa-p256-sha256'],
    ['ecdsa-p384', undefined, 'ecdsa-p384-sha384'],
    ['rsa-3072', 'pkcs1', 'rsa-pkcs1v15-sha256'],
    ['rsa-3072', 'pss', 'rsa-pss-sha256'],
    ['rsa-4096', 'pkcs1', 'rsa-pkcs1v15-sha256'],
  ];
  it.each(cases)('a %s signature (%s) verifies and names its algorithm', async (alg, padding, expected) => {
    const leaf = await leafFor(alg);
    const sig = signWith(leaf, DATA, padding ? { rsaPadding: padding } : {});
    expect(verifySignature(leaf.cert, DATA, sig)).toEqual({ ok: true, algorithm: expected });
  });

  it.each(['ecdsa-p256', 'ecdsa-p384', 'rsa-3072'] as const)('a %s signature over other bytes does not verify', async (alg) => {
    const leaf = await leafFor(alg);
    const sig = signWith(leaf, DATA);
    const tampered = Buffer.from(DATA);
    tampered[5] = (tampered[5] ?? 0) ^ 1;
    expect(verifySignature(leaf.cert, tampered, sig).ok).toBe(false);
  });
});

describe('when the hash does not match the curve', () => {
  it('refuses P-256 with SHA-384 and P-384 with SHA-256', async () => {
    const p256 = await leafFor('ecdsa-p256');
    const p384 = await leafFor('ecdsa-p384');
    expect(verifySignature(p256.cert, DATA, sign('sha384', DATA, { key: p256.key.privateKey, dsaEncoding: 'der' })).ok).toBe(false);
    expect(verifySignature(p384.cert, DATA, sign('sha256', DATA, { key: p384.key.privateKey, dsaEncoding: 'der' })).ok).toBe(false);
  });
  it('refuses RSA PKCS #1 v1.5 with SHA-512', async () => {
    const rsa = await leafFor('rsa-3072');
    expect(verifySignature(rsa.cert, DATA, sign('sha512', DATA, { key: rsa.key.privateKey, padding: constants.RSA_PKCS1_PADDING })).ok).toBe(false);
  });
});

describe('when the signature encoding is not DER', () => {
  it('refuses an IEEE P1363 (r||s) ECDSA signature', async () => {
    const leaf = await leafFor('ecdsa-p256');
    const raw = sign('sha256', DATA, { key: leaf.key.privateKey, dsaEncoding: 'ieee-p1363' });
    expect(verifySignature(leaf.cert, DATA, raw).ok).toBe(false);
  });
  it('refuses empty, truncated and oversized signatures', async () => {
    const leaf = await leafFor('ecdsa-p256');
    const sig = signWith(leaf, DATA);
    expect(verifySignature(leaf.cert, DATA, Buffer.alloc(0))).toMatchObject({ ok: false, reason: expect.stringMatching(/empty/) });
    expect(verifySignature(leaf.cert, DATA, sig.subarray(0, sig.length - 1)).ok).toBe(false);
    expect(verifySignature(leaf.cert, DATA, Buffer.concat([sig, Buffer.alloc(SIGNATURE_MAX_BYTES)]))).toMatchObject({ ok: false, reason: expect.stringMatching(/limit/) });
  });
});

describe('when the PSS salt length is not 32', () => {
  it.each([0, 20, 64])('refuses a PSS signature with salt length %i made by node', async (salt) => {
    const leaf = await leafFor('rsa-3072');
    const sig = signWith(leaf, DATA, { rsaPadding: 'pss', pssSaltLength: salt });
    // the same bytes do verify when the verifier is told that salt length: the refusal is the salt rule
    expect(
      (await import('node:crypto')).verify('sha256', DATA, { key: leaf.cert.publicKey, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: salt }, sig),
    ).toBe(true);
    expect(verifySignature(leaf.cert, DATA, sig).ok).toBe(false);
  });
});

describe('when the algorithm is refused', () => {
  const refused: Array<[KeyAlgorithm, RegExp]> = [
    ['rsa-2048', /RSA-2048 \(e=65537\) is not an accepted algorithm \(fewer than 3072 bits\)/],
    ['rsa-3072-e3', /RSA-3072 \(e=3\) is not an accepted algorithm \(public exponent is not 65537\)/],
    ['ecdsa-p521', /ECDSA P-521 is not an accepted algorithm/],
    ['ed25519', /Ed25519 is not an accepted algorithm/],
  ];
  it.each(refused)('refuses a correct %s signature, naming the algorithm', async (alg, pattern) => {
    const leaf = await leafFor(alg);
    const sig = signWith(leaf, DATA);
    const r = verifySignature(leaf.cert, DATA, sig);
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.reason).toMatch(pattern);
  });
});

const missing = requireSystem(['openssl']);

describe.skipIf(missing)(`when openssl dgst made the signature${missing ? ` (skipped: ${missing})` : ''}`, () => {
  let dir: string;
  beforeAll(async () => {
    dir = await tempDir('glassbox-sig-');
    await writeFile(join(dir, 'data'), DATA);
  });
  afterAll(async () => {
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  async function opensslSign(alg: KeyAlgorithm, args: string[]): Promise<Buffer> {
    const leaf = await leafFor(alg);
    const keyPath = join(dir, `${alg}.key`);
    await writeFile(keyPath, privateKeyPem(leaf.key), { mode: 0o600 });
    const out = join(dir, `${alg}-${args.join('_').replace(/[^a-z0-9]/gi, '')}.sig`);
    const r = spawnSync('openssl', ['dgst', ...args, '-sign', keyPath, '-out', out, join(dir, 'data')], { encoding: 'utf8' });
    expect(r.status, r.stderr).toBe(0);
    return readFile(out);
  }

  const accepted: Array<[KeyAlgorithm, string[], string]> = [
    ['ecdsa-p256', ['-sha256'], 'ecdsa-p256-sha256'],
    ['ecdsa-p384', ['-sha384'], 'ecdsa-p384-sha384'],
    ['rsa-3072', ['-sha256'], 'rsa-pkcs1v15-sha256'],
    ['rsa-3072', ['-sha256', '-sigopt', 'rsa_padding_mode:pss', '-sigopt', 'rsa_pss_saltlen:32'], 'rsa-pss-sha256'],
    ['rsa-3072', ['-sha256', '-sigopt', 'rsa_padding_mode:pss', '-sigopt', 'rsa_pss_saltlen:digest'], 'rsa-pss-sha256'],
  ];
  it.each(accepted)('a %s signature made with %j verifies', async (alg, args, expected) => {
    const sig = await opensslSign(alg, args);
    expect(verifySignature((await leafFor(alg)).cert, DATA, sig)).toEqual({ ok: true, algorithm: expected });
  });

  it.each([['64'], ['max'], ['0']])('a PSS signature with salt length %s is refused', async (salt) => {
    const sig = await opensslSign('rsa-3072', ['-sha256', '-sigopt', 'rsa_padding_mode:pss', '-sigopt', `rsa_pss_saltlen:${salt}`]);
    expect(verifySignature((await leafFor('rsa-3072')).cert, DATA, sig).ok).toBe(false);
  });

  it('a P-256 key signing with -sha384 is refused', async () => {
    const sig = await opensslSign('ecdsa-p256', ['-sha384']);
    expect(verifySignature((await leafFor('ecdsa-p256')).cert, DATA, sig).ok).toBe(false);
  });
});
