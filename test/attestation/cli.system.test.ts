/**
 * `glassbox verify-attestation` and the buyer's stock-tools check
 * (scripts/check-attestation.sh) on the same envelopes: both accept a fresh
 * one and refuse each kind of bad one, saying why. Needs `npm run build`.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { requireSystem } from '../helpers/system.js';
import type { TestPki } from '../helpers/pki.js';
import { NONCE, deviceOf, envelopeFor, pkis, type Device } from './fixtures.js';

const CLI = resolve('dist/cli/main.js');
const SCRIPT = resolve('scripts/check-attestation.sh');
const missing = requireSystem(['openssl', 'base64', 'sha256sum', 'sed', 'date']) ?? (existsSync(CLI) ? null : `missing: ${CLI} (run npm run build)`);

describe.skipIf(missing)(`verify-attestation and the stock-tools check${missing ? ` (skipped: ${missing})` : ''}`, () => {
  let dir: string;
  let pki: TestPki;
  let other: TestPki;
  let device: Device;
  let policy: string;
  const now = new Date();

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'glassbox-att-'));
    ({ pki, other } = await pkis());
    device = await deviceOf(pki, 'nvr-0001');
    policy = join(dir, 'policy.json');
    await writeFile(policy, pki.policyBytes);
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  async function save(name: string, bytes: Buffer): Promise<string> {
    const p = join(dir, name);
    await writeFile(p, bytes);
    return p;
  }
  const cli = (...args: string[]) => spawnSync(process.execPath, [CLI, 'verify-attestation', ...args], { encoding: 'utf8' });
  const stock = (file: string, nonce = NONCE, trust = policy) => spawnSync('sh', [SCRIPT, file, trust, nonce], { encoding: 'utf8' });

  it('accepts a fresh envelope (exit 0), printing the verdict and the undeclared flows', async () => {
    const f = await save('fresh.json', await envelopeFor(device, { issuedAt: now }));
    const r = cli(f, '--trust', policy, '--nonce', NONCE);
    expect(r.status).toBe(0);
    expect(r.stdout).toContain('authentic and fresh: device nvr-0001');
    expect(r.stdout).toContain('verdict: undeclared-egress');
    expect(r.stdout).toMatch(/local tcp 192\.0\.2\.1 -> 203\.0\.113\.66:7000 {2}x2 {2}uid 65534/);
    const j = cli(f, '--trust', policy, '--nonce', NONCE, '--json');
    expect(JSON.parse(j.stdout)).toMatchObject({ ok: true, code: null, verdict: 'undeclared-egress', undeclared: 2 });
    const s = stock(f);
    expect(s.stdout).toContain('AUTHENTIC AND FRESH: device nvr-0001, verdict undeclared-egress, undeclared flows 2');
    expect(s.status).toBe(0);
    // The script also takes the root as a PEM file.
    const rootPem = await save('root.pem', Buffer.from(pki.root.pem));
    expect(stock(f, NONCE, rootPem).status).toBe(0);
  });

  const cases: Array<{ name: string; code: string; stockSays: RegExp; make: () => Promise<Buffer>; nonce?: string }> = [
    {
      name: 'a tampered payload',
      code: 'SIGNATURE_INVALID',
      stockSays: /FAIL: signature does not verify/,
      make: async () => {
        const env = JSON.parse((await envelopeFor(device, { issuedAt: now })).toString()) as { payload: string };
        env.payload = Buffer.from(Buffer.from(env.payload, 'base64').toString().replace('"verdict":"undeclared-egress"', '"verdict":"clean"')).toString('base64');
        return Buffer.from(JSON.stringify(env));
      },
    },
    { name: 'a wrong nonce', code: 'NONCE_MISMATCH', stockSays: /FAIL: the document's nonce/, make: () => envelopeFor(device, { issuedAt: now, nonce: 'not-the-verifiers-nonce' }) },
    { name: 'a stale issuedAt', code: 'STALE', stockSays: /FAIL: issued \d+ s ago/, make: () => envelopeFor(device, { issuedAt: new Date(now.getTime() - 3600_000) }) },
    { name: 'a certificate of another device', code: 'DEVICE_MISMATCH', stockSays: /FAIL: certificate CN 'nvr-0666' is not the document's device 'nvr-0001'/, make: async () => envelopeFor(await deviceOf(pki, 'nvr-0666'), { issuedAt: now, claimed: device }) },
    {
      name: 'an expired device certificate',
      code: 'CERTIFICATE_EXPIRED',
      stockSays: /FAIL: chain does not verify.*expired/s,
      make: async () => envelopeFor(await deviceOf(pki, 'nvr-0001', { notBefore: new Date(now.getTime() - 30 * 86400_000), notAfter: new Date(now.getTime() - 86400_000) }), { issuedAt: now }),
    },
    { name: 'a chain to another root', code: 'CHAIN_UNTRUSTED', stockSays: /FAIL: chain does not verify/, make: async () => envelopeFor(await deviceOf(other, 'nvr-0001'), { issuedAt: now }) },
  ];

  for (const c of cases) {
    it(`refuses ${c.name} (exit 1, ${c.code}), and so does the stock-tools check`, async () => {
      const f = await save(`${c.code}.json`, await c.make());
      const r = cli(f, '--trust', policy, '--nonce', NONCE, '--json');
      expect(r.status).toBe(1);
      expect(JSON.parse(r.stdout).code).toBe(c.code);
      if (c.code === 'SIGNATURE_INVALID') {
        const human = cli(f, '--trust', policy, '--nonce', NONCE);
        expect(human.status).toBe(1);
        expect(human.stderr).toContain(`REJECTED (${c.code})`);
      }
      const s = stock(f);
      expect(s.status).toBe(1);
      expect(s.stdout).toMatch(c.stockSays);
    });
  }

  it('exits 2 for usage and I/O errors', async () => {
    expect(cli(join(dir, 'nope.json'), '--trust', policy, '--nonce', NONCE).status).toBe(2);
    const f = await save('u.json', await envelopeFor(device, { issuedAt: now }));
    expect(cli(f, '--trust', policy, '--nonce', 'bad nonce').status).toBe(2);
    expect(cli(f, '--trust', join(dir, 'no-policy.json'), '--nonce', NONCE).status).toBe(2);
    expect(spawnSync('sh', [SCRIPT, f], { encoding: 'utf8' }).status).toBe(2);
  });
});
