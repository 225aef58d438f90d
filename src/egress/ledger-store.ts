/**
 * The ledger on disk: `<stateDir>/egress/ledger.json`, replaced atomically.
 * A ledger of another boot is moved aside to `ledger.previous.json` (one
 * kept, for forensics) and a new window starts.
 */
import { mkdir, readFile, rename } from 'node:fs/promises';
import { join } from 'node:path';
import { replaceFileAtomic } from '../install/durable.js';
import { LEDGER_MAX_BYTES, checkLedger, type LedgerData } from './ledger.js';

export class LedgerStore {
  readonly dir: string;
  readonly path: string;

  constructor(stateDir: string) {
    this.dir = join(stateDir, 'egress');
    this.path = join(this.dir, 'ledger.json');
  }

  /** The stored ledger of this boot, or null (none, another boot, or unreadable: `problem` says which). */
  async load(bootId: string): Promise<{ data: LedgerData | null; problem: string | null }> {
    let bytes: Buffer;
    try {
      bytes = await readFile(this.path);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return { data: null, problem: null };
      return { data: null, problem: `cannot read ${this.path}: ${(e as Error).message}` };
    }
    if (bytes.length > LEDGER_MAX_BYTES) return { data: null, problem: `${this.path} is over ${LEDGER_MAX_BYTES} bytes` };
    let value: unknown;
    try {
      value = JSON.parse(bytes.toString('utf8'));
    } catch {
      return { data: null, problem: `${this.path} is not JSON` };
    }
    const checked = checkLedger(value);
    if (!checked.ok) return { data: null, problem: `${this.path}: ${checked.reason}` };
    if (checked.data.bootId !== bootId) {
      await rename(this.path, join(this.dir, 'ledger.previous.json')).catch(() => undefined);
      return { data: null, problem: null };
    }
    return { data: checked.data, problem: null };
  }

  async save(data: LedgerData): Promise<void> {
    await mkdir(this.dir, { recursive: true, mode: 0o750 });
    await replaceFileAtomic(this.path, Buffer.from(JSON.stringify(data)), { mode: 0o640 });
  }
}

export async function readBootId(path = '/proc/sys/kernel/random/boot_id'): Promise<string> {
  const id = (await readFile(path, 'utf8')).trim();
  if (!/^[0-9a-f-]{36}$/.test(id)) throw new Error(`${path} does not hold a boot id`);
  return id;
}
