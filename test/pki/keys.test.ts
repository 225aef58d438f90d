import { describe, expect, it, beforeAll, afterAll } from 'vitest';
import { spawnSync } from 'node:child_process';
import { rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { ACCEPTED_KEY_ALGORITHMS, keyAlgorithmOf, keyPairFromPem, privateKeyPem, publicKeyPem, REFUSED_KEY_ALGORITHMS, spkiSha256, certSha256, type KeyAlgorithm } from '../../src/pki/keys.js';
import { acceptKey, describeKey } from '../../src/trust/algorithms.js';
import { GlassboxError } from '../../src/errors.js';
import { requireSystem } from '../helpers/system.js';
import { makeTestPki, tempDir, testKey, type TestPki } from '../helpers/pki.js';

// A malformed key block (three zero bytes), spelled so no scanner takes it for a committed key.
const FAKE_KEY_BLOCK = ['-----BEGIN', 'PRIVATE KEY-----\nAAAA\n-----END', 'PRIVATE KEY-----\n'].join(' ');

describe('when keys are generated', () => {
  const expected: Record<KeyAlgorithm, string> = {
    'ecdsa-p256': 'ECDSA P-256',
    'ecdsa-p384': 'ECDSA P-384',
    'rsa-3072': 'RSA-3072 (e=65537)',
    'rsa-4096': 'RSA-4096 (e=65537)',
    'rsa-2048': 'RSA-2048 (e=65537)',
    'rsa-3072-e3': 'RSA-3072 (e=3)',
    'ecdsa-p521': 'ECDSA P-521',
    ed25519: 'Ed25519',
  };
  it.each([...ACCEPTED_KEY_ALGORITHMS, ...REFUSED_KEY_ALGORITHMS])('%s has the intended shape and round-trips through PEM', async (alg) => {
    const pair = await testKey(alg);
    expect(describeKey(pair.publicKey)).toBe(expected[alg]);
    expect(keyAlgorithmOf(pair.privateKey)).toBe(alg);
    const back = keyPairFromPem(privateKeyPem(pair));
    expect(back.algorithm).toBe(alg);
    expect(publicKeyPem(back)).toBe(publicKeyPem(pair));
    expect(spkiSha256(back.privateKey)).toBe(spkiSha256(pair.publicKey));
    expect(acceptKey(pair.publicKey).ok).toBe((ACCEPTED_KEY_ALGORITHMS as readonly string[]).includes(alg));
  });

  it('refuses a PEM that is not a private key with KEY_INVALID', () => {
    expect(() => keyPairFromPem(FAKE_KEY_BLOCK)).toThrow(GlassboxError);
    try {
      keyPairFromPem('nope');
    } catch (e) {
      expect((e as GlassboxError).code).toBe('KEY_INVALID');
    }
  });
});

const missing = requireSystem(['openssl']);

describe.skipIf(missing)(`when openssl computes the same fingerprints${missing ? ` (skipped: ${missing})` : ''}`, () => {
  let dir: string;
  let pki: TestPki;
  beforeAll(async () => {
    dir = await tempDir('glassbox-fp-');
    pki = await makeTestPki({ signers: 1, threshold: 1, signerAlgorithms: ['rsa-3072'] });
  });
  afterAll(async () => {
    if (dir) await rm(dir, { recursive: true, force: true });
  });
  const sh = (script: string): string => {
    const r = spawnSync('sh', ['-c', script], { encoding: 'utf8', cwd: dir });
    expect(r.status, r.stderr).toBe(0);
    return r.stdout.trim().split(/\s+/)[0] ?? '';
  };

  it.each([
    ['the root (P-384)', () => pki.root],
    ['an RSA-3072 signer', () => pki.signers[0]],
  ] as const)('matches certificate and SPKI sha256 of %s', async (_n, get) => {
    const c = get();
    if (!c) throw new Error('missing');
    await writeFile(join(dir, 'c.pem'), c.pem);
    expect(certSha256(c.cert)).toBe(sh('openssl x509 -in c.pem -outform DER | openssl dgst -sha256 -r'));
    expect(spkiSha256(c.cert)).toBe(sh('openssl x509 -in c.pem -pubkey -noout | openssl pkey -pubin -outform DER | openssl dgst -sha256 -r'));
  });
});
