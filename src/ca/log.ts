/**
 * The issuance log: one JSON line per device certificate issued, appended
 * and fsynced (edge), read back to refuse a second certificate for a device
 * id. Append-only: lines are never rewritten; the file is bounded and a
 * lock file serialises issuers sharing it.
 *
 *   {"v":1,"issuedAt":"…","serial":"…","deviceId":"rec-0042","hardware":"HSS-NVR-8",
 *    "spkiSha256":"…","certSha256":"…","notBefore":"…","notAfter":"…",
 *    "issuer":"CN=…","caCertSha256":"…","reissue":false}
 */
import { constants } from 'node:fs';
import { open, rm, stat } from 'node:fs/promises';
import { dirname } from 'node:path';
import { Ajv2020 } from 'ajv/dist/2020.js';
import { ProvisionError } from '../provision/errors.js';
import { fsyncDir } from '../provision/files.js';

/** ~150 000 entries; a log this big is archived and a new one started (docs/provisioning.md). */
export const LOG_MAX_BYTES = 64 * 1024 * 1024;
export const LINE_MAX_BYTES = 4096;

export interface IssuanceEntry {
  readonly v: 1;
  readonly issuedAt: string;
  readonly serial: string;
  readonly deviceId: string;
  readonly hardware: string;
  readonly spkiSha256: string;
  readonly certSha256: string;
  readonly notBefore: string;
  readonly notAfter: string;
  readonly issuer: string;
  readonly caCertSha256: string;
  readonly reissue: boolean;
}

const sha256 = { type: 'string', pattern: '^[0-9a-f]{64}$' } as const;
const time = { type: 'string', maxLength: 40 } as const;
const ENTRY_SCHEMA = {
  type: 'object',
  additionalProperties: false,
  required: ['v', 'issuedAt', 'serial', 'deviceId', 'hardware', 'spkiSha256', 'certSha256', 'notBefore', 'notAfter', 'issuer', 'caCertSha256', 'reissue'],
  properties: {
    v: { const: 1 },
    issuedAt: time,
    serial: { type: 'string', pattern: '^[0-9a-f]{1,64}$' },
    deviceId: { type: 'string', maxLength: 64 },
    hardware: { type: 'string', maxLength: 64 },
    spkiSha256: sha256,
    certSha256: sha256,
    notBefore: time,
    notAfter: time,
    issuer: { type: 'string', maxLength: 1024 },
    caCertSha256: sha256,
    reissue: { type: 'boolean' },
  },
} as const;
const validateEntry = new Ajv2020({ strict: true }).compile(ENTRY_SCHEMA);

const LOG_FIX_CORRUPT = 'the log is an audit record: do not edit it silently; restore it from backup, or move it aside and start a new one with --log';

/** Parses the log's text (pure). A torn last line (no newline) is reported, never dropped silently. */
export function parseIssuanceLog(text: string, where: string): IssuanceEntry[] {
  const entries: IssuanceEntry[] = [];
  if (text.length === 0) return entries;
  const lines = text.split('\n');
  const last = lines.pop();
  if (last !== '') {
    throw new ProvisionError(
      'ISSUANCE_LOG',
      `${where}: line ${lines.length + 1} is incomplete (an issue interrupted before its certificate was delivered?)`,
      `check that line by hand; if no certificate with that serial was handed out, remove the partial line. ${LOG_FIX_CORRUPT}`,
    );
  }
  lines.forEach((line, i) => {
    let value: unknown;
    try {
      value = JSON.parse(line);
    } catch {
      value = undefined;
    }
    if (value === undefined || !validateEntry(value)) {
      throw new ProvisionError('ISSUANCE_LOG', `${where}: line ${i + 1} is not an issuance record`, LOG_FIX_CORRUPT);
    }
    entries.push(value as unknown as IssuanceEntry);
  });
  return entries;
}

/** Entries for a device id (compared without case: "REC-1" and "rec-1" would be one recorder to a person). */
export function entriesFor(entries: readonly IssuanceEntry[], deviceId: string): IssuanceEntry[] {
  const id = deviceId.toLowerCase();
  return entries.filter((e) => e.deviceId.toLowerCase() === id);
}

export function serializeEntry(entry: IssuanceEntry): string {
  const line = JSON.stringify(entry) + '\n';
  if (Buffer.byteLength(line) > LINE_MAX_BYTES) throw new ProvisionError('ISSUANCE_LOG', `issuance record over ${LINE_MAX_BYTES} bytes`, 'shorten the CA subject');
  return line;
}

/** Reads the whole log (bounded); a missing log is an empty one. */
export async function readIssuanceLog(path: string): Promise<IssuanceEntry[]> {
  let size: number;
  try {
    size = (await stat(path)).size;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw new ProvisionError('ISSUANCE_LOG', `cannot read the issuance log ${path}: ${(err as Error).message}`, 'check the path given with --log', { cause: err });
  }
  if (size > LOG_MAX_BYTES) {
    throw new ProvisionError('ISSUANCE_LOG', `the issuance log ${path} is ${size} bytes, over the ${LOG_MAX_BYTES}-byte bound`, 'archive it (keep it: it is the record of every device certificate) and start a new one with --log');
  }
  const fh = await open(path, constants.O_RDONLY);
  try {
    const buf = Buffer.alloc(size);
    const { bytesRead } = await fh.read(buf, 0, size, 0);
    return parseIssuanceLog(buf.subarray(0, bytesRead).toString('utf8'), path);
  } finally {
    await fh.close();
  }
}

/** Appends one entry and fsyncs it (and the directory when the log is new). */
export async function appendIssuance(path: string, entry: IssuanceEntry): Promise<void> {
  const line = serializeEntry(entry);
  let created = false;
  try {
    await stat(path);
  } catch {
    created = true;
  }
  const fh = await open(path, constants.O_WRONLY | constants.O_APPEND | constants.O_CREAT, 0o644);
  try {
    const st = await fh.stat();
    if (st.size + Buffer.byteLength(line) > LOG_MAX_BYTES) {
      throw new ProvisionError('ISSUANCE_LOG', `the issuance log ${path} would exceed its ${LOG_MAX_BYTES}-byte bound`, 'archive it and start a new one with --log');
    }
    await fh.write(line);
    await fh.sync();
  } finally {
    await fh.close();
  }
  if (created) await fsyncDir(dirname(path));
}

/**
 * Takes the log's lock (<log>.lock, O_EXCL, holding our pid). A lock whose
 * process is gone is taken over; a live one is refused.
 */
export async function lockIssuanceLog(path: string): Promise<() => Promise<void>> {
  const lock = `${path}.lock`;
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      const fh = await open(lock, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL, 0o644);
      await fh.writeFile(`${process.pid}\n`);
      await fh.close();
      return async () => {
        await rm(lock, { force: true });
      };
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') {
        throw new ProvisionError('ISSUANCE_LOG', `cannot lock the issuance log (${lock}): ${(err as Error).message}`, 'check that the log directory is writable', { cause: err });
      }
      const holder = await readLockPid(lock);
      if (holder !== null && isAlive(holder)) {
        throw new ProvisionError('ISSUANCE_LOG', `the issuance log is in use by process ${holder} (${lock})`, 'wait for the other `glassbox ca issue-device` to finish');
      }
      await rm(lock, { force: true });
    }
  }
  throw new ProvisionError('ISSUANCE_LOG', `cannot take the issuance log lock ${lock}`, 'remove the stale lock file if no issuer is running');
}

async function readLockPid(lock: string): Promise<number | null> {
  try {
    const fh = await open(lock, constants.O_RDONLY);
    try {
      const buf = Buffer.alloc(32);
      const { bytesRead } = await fh.read(buf, 0, 32, 0);
      const pid = Number.parseInt(buf.subarray(0, bytesRead).toString('utf8').trim(), 10);
      return Number.isInteger(pid) && pid > 0 ? pid : null;
    } finally {
      await fh.close();
    }
  } catch {
    return null;
  }
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}
