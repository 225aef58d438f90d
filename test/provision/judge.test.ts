import { beforeAll, describe, expect, it } from 'vitest';
import { createDeviceCert, createIntermediateCa, createRootCa, type CertifiedKey } from '../../src/pki/certs.js';
import { spkiSha256 } from '../../src/trust/fingerprint.js';
import { describeGap, judgeCertificate, type CertificateToJudge } from '../../src/provision/judge.js';
import { isProvisionError } from '../../src/provision/errors.js';
import { makeTestPki, testKey, TEST_NOW, DAY, type TestPki } from '../helpers/pki.js';
import type { KeyPair } from '../../src/pki/keys.js';

let pki: TestPki;
let key: KeyPair;
let good: string;

beforeAll(async () => {
  pki = await makeTestPki();
  key = await testKey('ecdsa-p256', 'recorder');
  good = (await createDeviceCert(pki.deviceCa, { deviceId: 'rec-0042', hardwareModel: 'HSS-NVR-8', publicKey: key.publicKey, now: TEST_NOW })).pem;
});

function input(over: Partial<CertificateToJudge> = {}): CertificateToJudge {
  return {
    certPem: Buffer.from(good),
    chainPem: Buffer.from(pki.deviceCa.pem),
    anchors: pki.anchors,
    keySpkiSha256: spkiSha256(key.publicKey),
    deviceId: 'rec-0042',
    hardware: 'HSS-NVR-8',
    now: TEST_NOW,
    files: { cert: 'rec-0042.crt', chain: 'device-ca.pem', trust: 'trust-policy.json' },
    ...over,
  };
}

function codeOf(f: () => unknown): string | null {
  try {
    f();
    return null;
  } catch (err) {
    if (isProvisionError(err)) return err.code;
    throw err;
  }
}

function messageOf(f: () => unknown): string {
  try {
    f();
  } catch (err) {
    return (err as Error).message;
  }
  return '';
}

describe('judging the certificate brought to the recorder', () => {
  it('accepts the certificate for this key and id under the device CA, and returns the path to the root', () => {
    const j = judgeCertificate(input());
    expect(j.path).toHaveLength(3);
    expect(j.chainPem).toBe(pki.deviceCa.pem);
    expect(j.serial).toMatch(/^[0-9a-f]+$/);
  });

  it('tolerates the root in the chain file and the CA inside the certificate file', () => {
    expect(judgeCertificate(input({ chainPem: Buffer.from(pki.deviceCa.pem + pki.root.pem) })).chainPem).toBe(pki.deviceCa.pem);
    expect(judgeCertificate(input({ certPem: Buffer.from(good + pki.deviceCa.pem), chainPem: Buffer.from('') })).chainPem).toBe(pki.deviceCa.pem);
  });

  describe('when the certificate is for another key', () => {
    it('is CERT_KEY_MISMATCH naming both fingerprints', async () => {
      const other = await testKey('ecdsa-p256', 'other-recorder');
      const f = () => judgeCertificate(input({ keySpkiSha256: spkiSha256(other.publicKey) }));
      expect(codeOf(f)).toBe('CERT_KEY_MISMATCH');
      expect(messageOf(f)).toContain(spkiSha256(other.publicKey).slice(0, 16));
      expect(messageOf(f)).toMatch(/\n {2}fix: /);
    });
  });

  describe('when the certificate names another device id', () => {
    it('is CERT_DEVICE_ID', async () => {
      const pem = (await createDeviceCert(pki.deviceCa, { deviceId: 'rec-0099', hardwareModel: 'HSS-NVR-8', publicKey: key.publicKey, now: TEST_NOW })).pem;
      const f = () => judgeCertificate(input({ certPem: Buffer.from(pem) }));
      expect(codeOf(f)).toBe('CERT_DEVICE_ID');
      expect(messageOf(f)).toContain('rec-0099');
    });
  });

  describe('when the recorder clock is before the certificate', () => {
    it('is CLOCK_SKEW saying by how many hours', () => {
      const f = () => judgeCertificate(input({ now: new Date(TEST_NOW.getTime() - 5 * 3600_000) }));
      expect(codeOf(f)).toBe('CLOCK_SKEW');
      expect(messageOf(f)).toContain('4 hours before'); // certificates are backdated one hour
    });
  });

  describe('when the certificate has expired', () => {
    it('is CERT_EXPIRED', async () => {
      const pem = (
        await createDeviceCert(pki.deviceCa, { deviceId: 'rec-0042', hardwareModel: 'HSS-NVR-8', publicKey: key.publicKey }, { notBefore: new Date(TEST_NOW.getTime() - 400 * DAY), notAfter: new Date(TEST_NOW.getTime() - 2 * DAY) })
      ).pem;
      expect(codeOf(() => judgeCertificate(input({ certPem: Buffer.from(pem) })))).toBe('CERT_EXPIRED');
    });
  });

  describe('when the certificate comes from another CA', () => {
    let otherRoot: CertifiedKey;
    let otherDeviceCa: CertifiedKey;
    let foreign: string;
    beforeAll(async () => {
      otherRoot = await createRootCa({ key: await testKey('ecdsa-p256', 'other-root'), subject: 'CN=other fleet root', now: TEST_NOW });
      otherDeviceCa = await createIntermediateCa(otherRoot, { key: await testKey('ecdsa-p256', 'other-device-ca'), subject: 'CN=other fleet device CA', now: TEST_NOW });
      foreign = (await createDeviceCert(otherDeviceCa, { deviceId: 'rec-0042', hardwareModel: 'HSS-NVR-8', publicKey: key.publicKey, now: TEST_NOW })).pem;
    });

    it('is CERT_WRONG_CA naming the issuer, with this fleet device CA as chain', () => {
      const f = () => judgeCertificate(input({ certPem: Buffer.from(foreign) }));
      expect(codeOf(f)).toBe('CERT_WRONG_CA');
      expect(messageOf(f)).toContain('other fleet device CA');
    });

    it('is CERT_WRONG_CA when the chain given is the other device CA, which is not under the trust roots', () => {
      const f = () => judgeCertificate(input({ certPem: Buffer.from(foreign), chainPem: Buffer.from(otherDeviceCa.pem) }));
      expect(codeOf(f)).toBe('CERT_WRONG_CA');
      expect(messageOf(f)).toContain('does not chain to any root of the trust policy');
    });
  });

  it('is CERT_USAGE for a certificate of this key that is not for client authentication', async () => {
    const pem = (await createDeviceCert(pki.deviceCa, { deviceId: 'rec-0042', hardwareModel: 'HSS-NVR-8', publicKey: key.publicKey, now: TEST_NOW }, { extendedKeyUsage: ['1.3.6.1.5.5.7.3.3'] })).pem;
    expect(codeOf(() => judgeCertificate(input({ certPem: Buffer.from(pem) })))).toBe('CERT_USAGE');
  });

  it('is CERT_INVALID for a file that is not a certificate', () => {
    expect(codeOf(() => judgeCertificate(input({ certPem: Buffer.from('hello') })))).toBe('CERT_INVALID');
  });

  it('describes time gaps for people', () => {
    expect(describeGap(3 * 3600_000)).toBe('3 hours');
    expect(describeGap(40 * 60_000)).toBe('40 minutes');
    expect(describeGap(5 * DAY)).toBe('5 days');
  });
});
