import { afterAll, describe, expect, it, beforeAll } from 'vitest';
import { readFile, rm, writeFile, mkdtemp, stat } from 'node:fs/promises';
import { X509Certificate } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createCsr, createLeaf, deviceSubject } from '../../src/pki/certs.js';
import { generateKey, privateKeyPem } from '../../src/pki/keys.js';
import { x509 } from '../../src/pki/x509.js';
import { issueDevice, type IssueDeviceRequest } from '../../src/ca/issue.js';
import { parseIssuanceLog } from '../../src/ca/log.js';
import { validateChain } from '../../src/trust/chain.js';
import { spkiSha256 } from '../../src/trust/fingerprint.js';
import { makeTestPki, testKey, TEST_NOW, DAY, type TestPki } from '../helpers/pki.js';
import { isProvisionError } from '../../src/provision/errors.js';

let pki: TestPki;
let dir: string;

beforeAll(async () => {
  pki = await makeTestPki();
  dir = await mkdtemp(join(tmpdir(), 'glassbox-ca-'));
});

afterAll(async () => {
  if (dir) await rm(dir, { recursive: true, force: true });
});

async function request(csrPem: string, over: Partial<IssueDeviceRequest> = {}): Promise<IssueDeviceRequest> {
  const d = await mkdtemp(join(dir, 'r-'));
  return {
    csr: Buffer.from(csrPem),
    caCert: Buffer.from(pki.deviceCa.pem),
    caKey: Buffer.from(privateKeyPem(pki.deviceCa.key)),
    days: 365,
    now: TEST_NOW,
    logPath: join(d, 'issued.jsonl'),
    allowReissue: false,
    outPath: join(d, 'device.crt'),
    ...over,
  };
}

async function csrFor(deviceId: string, hardware = 'HSS-NVR-8', slot = deviceId): Promise<string> {
  return createCsr(await testKey('ecdsa-p256', `csr-${slot}`), deviceSubject(deviceId, hardware));
}

async function expectCode(p: Promise<unknown>, code: string): Promise<void> {
  const err = await p.then(
    () => null,
    (e: unknown) => e,
  );
  expect(isProvisionError(err) ? err.code : err).toBe(code);
}

async function exists(path: string): Promise<boolean> {
  return stat(path).then(
    () => true,
    () => false,
  );
}

describe('ca issue-device', () => {
  it('issues a clientAuth, non-CA certificate for the CSR key, valid N days, and logs it', async () => {
    const req = await request(await csrFor('rec-0042'));
    const r = await issueDevice(req);
    const cert = new X509Certificate(await readFile(req.outPath));
    const lib = new x509.X509Certificate(cert.raw);
    expect(lib.subjectName.getField('CN')).toEqual(['rec-0042']);
    expect(lib.subjectName.getField('OU')).toEqual(['HSS-NVR-8']);
    expect(cert.ca).toBe(false);
    expect(lib.getExtension(x509.ExtendedKeyUsageExtension)?.usages).toEqual(['1.3.6.1.5.5.7.3.2']);
    expect(spkiSha256(cert)).toBe(spkiSha256((await testKey('ecdsa-p256', 'csr-rec-0042')).publicKey));
    expect(lib.notAfter.getTime() - TEST_NOW.getTime()).toBe(365 * DAY);
    // chains to the fleet root for client authentication
    const chain = validateChain(cert.toString() + pki.deviceCa.pem, pki.anchors, TEST_NOW, 'clientAuth');
    expect(chain.ok).toBe(true);
    const log = parseIssuanceLog(await readFile(req.logPath, 'utf8'), req.logPath);
    expect(log).toHaveLength(1);
    expect(log[0]).toMatchObject({ deviceId: 'rec-0042', hardware: 'HSS-NVR-8', serial: r.serial, certSha256: r.certSha256, spkiSha256: r.spkiSha256, reissue: false });
    expect(log[0]?.notAfter).toBe(lib.notAfter.toISOString());
  });

  describe('when the CSR was altered after the recorder signed it', () => {
    it('refuses with CSR_SIGNATURE, writes no certificate and no log line', async () => {
      const der = Buffer.from(
        (await csrFor('rec-0043'))
          .replace(/-----[A-Z ]+-----/g, '')
          .replace(/\s+/g, ''),
        'base64',
      );
      const at = der.indexOf(Buffer.from('rec-0043'));
      expect(at).toBeGreaterThan(0);
      der.write('rec-9999', at, 'latin1'); // a different device id, same length
      const tampered = `-----BEGIN CERTIFICATE REQUEST-----\n${der.toString('base64').replace(/(.{64})/g, '$1\n')}\n-----END CERTIFICATE REQUEST-----\n`;
      const req = await request(tampered);
      await expectCode(issueDevice(req), 'CSR_SIGNATURE');
      expect(await exists(req.outPath)).toBe(false);
      expect(await exists(req.logPath)).toBe(false);
    });
  });

  it('refuses a CSR whose key is not an accepted algorithm (CSR_KEY_ALGORITHM)', async () => {
    const csr = await createCsr(await generateKey('rsa-2048'), deviceSubject('rec-0044', 'HSS-NVR-8'));
    await expectCode(issueDevice(await request(csr)), 'CSR_KEY_ALGORITHM');
  });

  it('refuses a CSR without a hardware model, or with extra subject fields (CSR_SUBJECT)', async () => {
    const key = await testKey('ecdsa-p256', 'subj');
    await expectCode(issueDevice(await request(await createCsr(key, 'CN=rec-0045'))), 'CSR_SUBJECT');
    await expectCode(issueDevice(await request(await createCsr(key, 'CN=rec-0045, OU=HSS-NVR-8, L=Elsewhere'))), 'CSR_SUBJECT');
    await expectCode(issueDevice(await request(await createCsr(key, 'CN=rec 0045, OU=HSS-NVR-8'))), 'CSR_SUBJECT');
  });

  it('refuses a file that is not a CSR (CSR_INVALID)', async () => {
    await expectCode(issueDevice(await request(pki.deviceCa.pem)), 'CSR_INVALID');
  });

  describe('when the issuance log already holds the device id', () => {
    it('refuses with ALREADY_ISSUED, also for another spelling case, and issues with --allow-reissue', async () => {
      const first = await request(await csrFor('rec-0050'));
      await issueDevice(first);
      const again = { ...(await request(await csrFor('REC-0050', 'HSS-NVR-8', 'other'))), logPath: first.logPath };
      await expectCode(issueDevice(again), 'ALREADY_ISSUED');
      expect(await exists(again.outPath)).toBe(false);
      const r = await issueDevice({ ...again, allowReissue: true });
      expect(r.reissue).toBe(true);
      expect(r.previous).toHaveLength(1);
      expect(parseIssuanceLog(await readFile(first.logPath, 'utf8'), first.logPath)).toHaveLength(2);
    });
  });

  it('refuses an issuing certificate that is not a CA, a key that is not its key, and a validity beyond the CA (CA_UNUSABLE)', async () => {
    const csr = await csrFor('rec-0060');
    const leaf = await createLeaf(pki.deviceCa, { key: await testKey('ecdsa-p256', 'not-ca'), subject: 'CN=not a CA', purpose: 'clientAuth', now: TEST_NOW });
    await expectCode(issueDevice(await request(csr, { caCert: Buffer.from(leaf.pem), caKey: Buffer.from(privateKeyPem(leaf.key)) })), 'CA_UNUSABLE');
    await expectCode(issueDevice(await request(csr, { caKey: Buffer.from(privateKeyPem(pki.root.key)) })), 'CA_UNUSABLE');
    await expectCode(issueDevice(await request(csr, { days: 20 * 365 })), 'CA_UNUSABLE');
  });

  it('refuses a torn issuance log line instead of dropping it (ISSUANCE_LOG)', async () => {
    const req = await request(await csrFor('rec-0070'));
    await writeFile(req.logPath, '{"v":1,"issuedAt":"2026-');
    await expectCode(issueDevice(req), 'ISSUANCE_LOG');
    expect(await exists(req.outPath)).toBe(false);
  });

  it('refuses while another live issuer holds the log lock (ISSUANCE_LOG)', async () => {
    const req = await request(await csrFor('rec-0071'));
    await writeFile(`${req.logPath}.lock`, `${process.pid}\n`);
    await expectCode(issueDevice(req), 'ISSUANCE_LOG');
    // a lock left by a dead process is taken over
    await writeFile(`${req.logPath}.lock`, '2147483646\n');
    await issueDevice(req);
    expect(await exists(`${req.logPath}.lock`)).toBe(false);
  });
});
