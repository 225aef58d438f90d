import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtemp, readFile, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseCsr, verifyCsr } from '../../src/pki/certs.js';
import { keyPairFromPem } from '../../src/pki/keys.js';
import { spkiSha256 } from '../../src/trust/fingerprint.js';
import { provisionInit, type InitRequest } from '../../src/provision/init.js';
import { identityPaths, parseIdentityMeta, serializeIdentityMeta } from '../../src/provision/identity.js';
import { isProvisionError } from '../../src/provision/errors.js';
import { parseOwnerSpec, resolveOwner } from '../../src/provision/owner.js';
import { snapshot } from './fixtures.js';

const me = { uid: process.getuid?.() ?? 0, gid: process.getgid?.() ?? 0 };
let root: string;

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'glassbox-init-'));
});

afterAll(async () => {
  if (root) await rm(root, { recursive: true, force: true });
});

async function fresh(): Promise<string> {
  return mkdtemp(join(root, 'state-'));
}

function req(stateDir: string, over: Partial<InitRequest> = {}): InitRequest {
  return { stateDir, deviceId: 'rec-0042', hardware: 'HSS-NVR-8', keyAlgorithm: 'ecdsa-p256', owner: me, force: false, outCsr: null, now: new Date('2026-06-01T12:00:00Z'), ...over };
}

async function codeOf(p: Promise<unknown>): Promise<string | null> {
  try {
    await p;
    return null;
  } catch (err) {
    if (isProvisionError(err)) return err.code;
    throw err;
  }
}

describe('provision init', () => {
  it('creates the key (0600, in a 0700 directory), a CSR naming the device and model, and the identity record', async () => {
    const state = await fresh();
    const r = await provisionInit(req(state));
    const p = identityPaths(state);
    expect((await stat(p.dir)).mode & 0o777).toBe(0o700);
    const keySt = await stat(p.key);
    expect(keySt.mode & 0o777).toBe(0o600);
    expect([keySt.uid, keySt.gid]).toEqual([me.uid, me.gid]);
    const key = keyPairFromPem(await readFile(p.key));
    expect(spkiSha256(key.publicKey)).toBe(r.spkiSha256);
    const csr = parseCsr(await readFile(p.csr));
    expect(await verifyCsr(csr)).toBe(true);
    expect(csr.subjectName.getField('CN')).toEqual(['rec-0042']);
    expect(csr.subjectName.getField('OU')).toEqual(['HSS-NVR-8']);
    const meta = parseIdentityMeta(await readFile(p.meta), p.meta);
    expect(meta).toMatchObject({ deviceId: 'rec-0042', hardware: 'HSS-NVR-8', spkiSha256: r.spkiSha256, certificate: null });
    // nothing but the three files (no temp leftovers)
    expect((await readdir(p.dir)).sort()).toEqual(['device.csr', 'device.key', 'identity.json']);
    expect((await readdir(state)).sort()).toEqual(['identity']);
  });

  it('writes the CSR copy into a directory (a USB stick) as <deviceId>.csr, and never the key', async () => {
    const state = await fresh();
    const usb = await mkdtemp(join(root, 'usb-'));
    const r = await provisionInit(req(state, { outCsr: usb }));
    expect(r.outCsr).toBe(join(usb, 'rec-0042.csr'));
    expect(await readdir(usb)).toEqual(['rec-0042.csr']);
    expect(await readFile(join(usb, 'rec-0042.csr'), 'utf8')).toBe(await readFile(identityPaths(state).csr, 'utf8'));
  });

  it('is idempotent before import: same device, same key, CSR written again', async () => {
    const state = await fresh();
    const a = await provisionInit(req(state));
    const b = await provisionInit(req(state));
    expect(b.reusedKey).toBe(true);
    expect(b.spkiSha256).toBe(a.spkiSha256);
  });

  describe('when an identity exists', () => {
    it('refuses another device id without --force, leaving every file as it was (ALREADY_PROVISIONED)', async () => {
      const state = await fresh();
      await provisionInit(req(state));
      const before = await snapshot(state);
      expect(await codeOf(provisionInit(req(state, { deviceId: 'rec-0043' })))).toBe('ALREADY_PROVISIONED');
      expect(await snapshot(state)).toEqual(before);
    });

    it('refuses once a certificate was imported, and with --force keeps the old identity aside', async () => {
      const state = await fresh();
      const first = await provisionInit(req(state));
      const p = identityPaths(state);
      const meta = parseIdentityMeta(await readFile(p.meta), p.meta);
      const imported = { ...meta, certificate: { sha256: 'a'.repeat(64), serial: '01', issuer: 'CN=x', notBefore: '2026-01-01T00:00:00Z', notAfter: '2027-01-01T00:00:00Z', importedAt: '2026-01-02T00:00:00Z', trustPolicySha256: 'b'.repeat(64) } };
      await writeFile(p.meta, serializeIdentityMeta(imported));
      const before = await snapshot(state);
      expect(await codeOf(provisionInit(req(state)))).toBe('ALREADY_PROVISIONED');
      expect(await snapshot(state)).toEqual(before);
      const forced = await provisionInit(req(state, { force: true }));
      expect(forced.spkiSha256).not.toBe(first.spkiSha256);
      expect(forced.replacedTo).toMatch(/identity\.replaced-20260601T120000Z$/);
      const kept = await readdir(forced.replacedTo as string);
      expect(kept.sort()).toEqual(['device.csr', 'device.key', 'identity.json']);
      expect((await stat(join(forced.replacedTo as string, 'device.key'))).mode & 0o777).toBe(0o600);
    });
  });

  it('refuses a bad device id or model and creates nothing (DEVICE_ID_INVALID)', async () => {
    const state = await fresh();
    expect(await codeOf(provisionInit(req(state, { deviceId: '../etc' })))).toBe('DEVICE_ID_INVALID');
    expect(await codeOf(provisionInit(req(state, { hardware: 'HSS NVR' })))).toBe('DEVICE_ID_INVALID');
    expect(await readdir(state)).toEqual([]);
  });

  it('leaves no identity when a step fails (the CSR copy cannot be written)', async () => {
    const state = await fresh();
    const file = join(root, `not-a-dir-${Date.now()}`);
    await writeFile(file, 'x');
    await expect(provisionInit(req(state, { outCsr: join(file, 'sub', 'x.csr') }))).rejects.toThrow();
    expect(await readdir(state)).toEqual([]);
  });

  it('replaces nothing when --force fails half-way: the old identity stays in place', async () => {
    const state = await fresh();
    const first = await provisionInit(req(state));
    const before = await snapshot(state);
    const file = join(root, `blocker-${Date.now()}`);
    await writeFile(file, 'x');
    await expect(provisionInit(req(state, { force: true, outCsr: join(file, 'x.csr') }))).rejects.toThrow();
    expect(await snapshot(state)).toEqual(before);
    expect(parseIdentityMeta(await readFile(identityPaths(state).meta), 'm').spkiSha256).toBe(first.spkiSha256);
  });
});

describe('the owner of the identity', () => {
  const passwd = 'root:x:0:0:root:/root:/bin/bash\nglassbox:x:998:997::/var/lib/glassbox:/usr/sbin/nologin\nnobody:x:65534:65534::/:/usr/sbin/nologin\n';
  const group = 'root:x:0:\nglassbox:x:997:\nvideo:x:44:glassbox\n';

  it('resolves names and numbers from passwd and group', () => {
    expect(resolveOwner(parseOwnerSpec('glassbox'), passwd, group)).toEqual({ uid: 998, gid: 997 });
    expect(resolveOwner(parseOwnerSpec('glassbox:video'), passwd, group)).toEqual({ uid: 998, gid: 44 });
    expect(resolveOwner(parseOwnerSpec('1234:55'), passwd, group)).toEqual({ uid: 1234, gid: 55 });
  });

  it('refuses an unknown account with OWNER_UNKNOWN', () => {
    for (const spec of ['daemon', 'glassbox:nogroup', 'a:b:c', '']) {
      let code: string | null = null;
      try {
        resolveOwner(parseOwnerSpec(spec), passwd, group);
      } catch (err) {
        code = isProvisionError(err) ? err.code : 'other';
      }
      expect(code, spec).toBe('OWNER_UNKNOWN');
    }
  });
});

