/**
 * `glassbox ca issue-device`: ops signs a recorder's CSR with the device CA,
 * offline (edge orchestration over the pure judgements in judge.ts).
 *
 * Order, so a failure never leaves a certificate without its log line:
 * judge CSR and CA → lock the log → refuse a known device id → build the
 * certificate → stage it (temp file, fsynced) → append + fsync the log line
 * → rename the certificate into place.
 */
import { createDeviceCert } from '../pki/certs.js';
import { certSha256 } from '../trust/fingerprint.js';
import { ProvisionError } from '../provision/errors.js';
import { stageFile } from '../provision/files.js';
import { validityOf } from '../provision/judge.js';
import { judgeDeviceCsr, judgeIssuingCa } from './judge.js';
import { appendIssuance, entriesFor, lockIssuanceLog, readIssuanceLog, type IssuanceEntry } from './log.js';

export const DEFAULT_DEVICE_CERT_DAYS = 1095;
export const MAX_DEVICE_CERT_DAYS = 3650;

export interface IssueDeviceRequest {
  readonly csr: Buffer;
  readonly caCert: Buffer;
  readonly caKey: Buffer;
  readonly days: number;
  readonly now: Date;
  readonly logPath: string;
  readonly allowReissue: boolean;
  readonly outPath: string;
}

export interface IssueDeviceResult {
  readonly deviceId: string;
  readonly hardware: string;
  readonly key: string;
  readonly serial: string;
  readonly certSha256: string;
  readonly spkiSha256: string;
  readonly notBefore: string;
  readonly notAfter: string;
  readonly issuer: string;
  readonly out: string;
  readonly log: string;
  readonly reissue: boolean;
  /** Earlier entries for this device id in the log. */
  readonly previous: readonly IssuanceEntry[];
}

export async function issueDevice(req: IssueDeviceRequest): Promise<IssueDeviceResult> {
  const csr = await judgeDeviceCsr(req.csr);
  const ca = judgeIssuingCa(req.caCert, req.caKey, req.now, req.days);
  const unlock = await lockIssuanceLog(req.logPath);
  try {
    const previous = entriesFor(await readIssuanceLog(req.logPath), csr.deviceId);
    const last = previous[previous.length - 1];
    if (last !== undefined && !req.allowReissue) {
      throw new ProvisionError(
        'ALREADY_ISSUED',
        `device ${csr.deviceId} already has a certificate (serial ${last.serial}, issued ${last.issuedAt}${last.spkiSha256 === csr.spkiSha256 ? ', same key' : ', for ANOTHER key'})`,
        last.spkiSha256 === csr.spkiSha256
          ? 'hand out the certificate issued then, or pass --allow-reissue to issue a new one for the same key'
          : 'check that this is the recorder you think it is (two recorders with one id?); pass --allow-reissue only for a replaced recorder',
      );
    }
    const issued = await createDeviceCert(
      { key: ca.key, cert: ca.cert, pem: ca.pem },
      { deviceId: csr.deviceId, hardwareModel: csr.hardware, publicKey: csr.publicKey },
      { notBefore: ca.notBefore, notAfter: ca.notAfter },
    );
    const entry: IssuanceEntry = {
      v: 1,
      issuedAt: req.now.toISOString(),
      serial: issued.cert.serialNumber.toLowerCase(),
      deviceId: csr.deviceId,
      hardware: csr.hardware,
      spkiSha256: csr.spkiSha256,
      certSha256: certSha256(issued.cert),
      notBefore: validityOf(issued.cert).notBefore.toISOString(),
      notAfter: validityOf(issued.cert).notAfter.toISOString(),
      issuer: ca.subject.replace(/\n/g, ', '),
      caCertSha256: certSha256(ca.cert),
      reissue: last !== undefined,
    };
    const staged = await stageFile(req.outPath, issued.pem, { mode: 0o644 });
    try {
      await appendIssuance(req.logPath, entry);
    } catch (err) {
      await staged.discard();
      throw err;
    }
    await staged.commit();
    return {
      deviceId: csr.deviceId,
      hardware: csr.hardware,
      key: csr.keyDescription,
      serial: entry.serial,
      certSha256: entry.certSha256,
      spkiSha256: entry.spkiSha256,
      notBefore: entry.notBefore,
      notAfter: entry.notAfter,
      issuer: entry.issuer,
      out: req.outPath,
      log: req.logPath,
      reissue: entry.reissue,
      previous,
    };
  } finally {
    await unlock();
  }
}
