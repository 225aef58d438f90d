import { describe, expect, it, beforeAll, afterAll } from 'vitest';
import { spawnSync } from 'node:child_process';
import { readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import {
  createCsr,
  createDeviceCert,
  createIntermediateCa,
  createRootCa,
  deviceIdOf,
  deviceSubject,
  issueDeviceCertFromCsr,
  parseCsr,
  verifyCsr,
  CSR_MAX_BYTES,
} from '../../src/pki/certs.js';
import { privateKeyPem } from '../../src/pki/keys.js';
import { x509 } from '../../src/pki/x509.js';
import { validateChain } from '../../src/trust/chain.js';
import { GlassboxError } from '../../src/errors.js';
import { requireSystem } from '../helpers/system.js';
import { makeTestPki, tempDir, testKey, type TestPki } from '../helpers/pki.js';

let pki: TestPki;
beforeAll(async () => {
  pki = await makeTestPki({ signers: 1, threshold: 1 });
});

function code(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (e) {
    return e instanceof GlassboxError ? e.code : 'not a GlassboxError';
  }
  return undefined;
}

describe('when CA certificates are built', () => {
  it('gives the root CA:TRUE critical, keyCertSign, a SKI, and no AKI', () => {
    const c = new x509.X509Certificate(pki.root.cert.raw);
    const bc = c.getExtension(x509.BasicConstraintsExtension);
    expect(bc?.ca).toBe(true);
    expect(bc?.critical).toBe(true);
    expect((c.getExtension(x509.KeyUsagesExtension)?.usages ?? 0) & x509.KeyUsageFlags.keyCertSign).toBeTruthy();
    expect(c.getExtension(x509.SubjectKeyIdentifierExtension)).not.toBeNull();
    expect(c.getExtension(x509.AuthorityKeyIdentifierExtension)).toBeNull();
    expect(c.signatureAlgorithm).toMatchObject({ name: 'ECDSA', hash: { name: 'SHA-384' } });
  });

  it('gives an intermediate pathLen 0 by default and the pathLen asked for', async () => {
    expect(new x509.X509Certificate(pki.releaseCa.cert.raw).getExtension(x509.BasicConstraintsExtension)?.pathLength).toBe(0);
    const two = await createIntermediateCa(pki.root, { key: await testKey('ecdsa-p256', 'pl2'), subject: 'CN=pl2', pathLen: 2, now: pki.now });
    expect(new x509.X509Certificate(two.cert.raw).getExtension(x509.BasicConstraintsExtension)?.pathLength).toBe(2);
    const none = await createIntermediateCa(pki.root, { key: await testKey('ecdsa-p256', 'plnone'), subject: 'CN=plnone', pathLen: null, now: pki.now });
    expect(new x509.X509Certificate(none.cert.raw).getExtension(x509.BasicConstraintsExtension)?.pathLength).toBeUndefined();
  });

  it('signs with RSA issuers too', async () => {
    const root = await createRootCa({ key: await testKey('rsa-3072', 'rsaroot'), subject: 'CN=rsa root', now: pki.now });
    expect(root.cert.verify(root.cert.publicKey)).toBe(true);
    expect(new x509.X509Certificate(root.cert.raw).signatureAlgorithm).toMatchObject({ name: 'RSASSA-PKCS1-v1_5', hash: { name: 'SHA-256' } });
  });
});

describe('when device identities are named', () => {
  it('puts the device id in CN and the model in OU', async () => {
    const key = await testKey('ecdsa-p256', 'dev');
    const dev = await createDeviceCert(pki.deviceCa, { deviceId: 'NVR-00A1', hardwareModel: 'hss-nvr-8', publicKey: key.publicKey, now: pki.now });
    expect(dev.cert.subject.split('\n')).toEqual(['CN=NVR-00A1', 'OU=hss-nvr-8', 'O=Homeland Safety Systems']);
    expect(deviceIdOf(dev.cert)).toBe('NVR-00A1');
    expect(validateChain(dev.pem + pki.deviceCa.pem, pki.anchors, pki.now, 'clientAuth').ok).toBe(true);
  });

  it.each(['', 'a,b', 'CN=evil', '../x', 'x'.repeat(65), 'with space', 'ünï'])('refuses the device id %j', (id) => {
    expect(code(() => deviceSubject(id))).toBe('DEVICE_ID_INVALID');
  });

  it('returns null for a certificate whose CN is not a device id', () => {
    expect(deviceIdOf(pki.root.cert)).toBeNull();
  });
});

describe('when a CSR is made and checked', () => {
  it('verifies its own CSR and issues a device certificate from it', async () => {
    const key = await testKey('ecdsa-p384', 'csr');
    const pem = await createCsr(key, deviceSubject('NVR-9'));
    const csr = parseCsr(pem);
    expect(await verifyCsr(csr)).toBe(true);
    const issued = await issueDeviceCertFromCsr(pki.deviceCa, pem, { deviceId: 'NVR-9', now: pki.now });
    expect(deviceIdOf(issued.cert)).toBe('NVR-9');
    expect(issued.cert.publicKey.export({ type: 'spki', format: 'der' }).equals(key.publicKey.export({ type: 'spki', format: 'der' }))).toBe(true);
  });

  it('takes the device id from the caller, not from the CSR subject', async () => {
    const pem = await createCsr(await testKey('ecdsa-p256', 'csr2'), 'CN=I am someone else');
    const issued = await issueDeviceCertFromCsr(pki.deviceCa, pem, { deviceId: 'NVR-10', now: pki.now });
    expect(deviceIdOf(issued.cert)).toBe('NVR-10');
  });

  it('refuses a CSR whose signature was tampered with', async () => {
    const pem = await createCsr(await testKey('ecdsa-p256', 'csr3'), 'CN=x');
    const der = Buffer.from(parseCsr(pem).rawData);
    der[der.length - 3] = (der[der.length - 3] ?? 0) ^ 0xff;
    expect(await verifyCsr(parseCsr(der))).toBe(false);
    await expect(issueDeviceCertFromCsr(pki.deviceCa, der, { deviceId: 'NVR-11', now: pki.now })).rejects.toMatchObject({ code: 'CSR_INVALID' });
  });

  it.each([
    ['garbage', 'hello'],
    ['two PEM blocks', '-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n'.repeat(2)],
    ['a certificate instead', '-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n'],
    ['an oversized input', 'A'.repeat(CSR_MAX_BYTES + 1)],
  ])('refuses %s with CSR_INVALID', (_n, input) => {
    expect(code(() => parseCsr(input))).toBe('CSR_INVALID');
  });
});

const missing = requireSystem(['openssl']);

describe.skipIf(missing)(`when openssl reads or writes the CSR${missing ? ` (skipped: ${missing})` : ''}`, () => {
  let dir: string;
  beforeAll(async () => {
    dir = await tempDir('glassbox-csr-');
  });
  afterAll(async () => {
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('openssl req -verify accepts a glassbox CSR', async () => {
    await writeFile(join(dir, 'g.csr'), await createCsr(await testKey('rsa-3072', 'csr-rsa'), deviceSubject('NVR-12', 'hss-nvr-4')));
    const r = spawnSync('openssl', ['req', '-in', join(dir, 'g.csr'), '-noout', '-verify', '-subject'], { encoding: 'utf8' });
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout + r.stderr).toMatch(/verify OK/i);
    expect(r.stdout).toMatch(/CN\s*=\s*NVR-12/);
  });

  it('verifyCsr accepts a CSR made by openssl req and refuses it once altered', async () => {
    const key = await testKey('ecdsa-p256', 'csr-ossl');
    await writeFile(join(dir, 'k.pem'), privateKeyPem(key), { mode: 0o600 });
    const r = spawnSync('openssl', ['req', '-new', '-key', join(dir, 'k.pem'), '-subj', '/CN=NVR-13', '-out', join(dir, 'o.csr')], { encoding: 'utf8' });
    expect(r.status, r.stderr).toBe(0);
    const pem = await readFile(join(dir, 'o.csr'));
    expect(await verifyCsr(parseCsr(pem))).toBe(true);
    const der = Buffer.from(parseCsr(pem).rawData);
    const at = der.indexOf(Buffer.from('NVR-13'));
    der[at + 5] = 0x34; // NVR-14: the subject no longer matches what was signed
    expect(await verifyCsr(parseCsr(der))).toBe(false);
  });
});
