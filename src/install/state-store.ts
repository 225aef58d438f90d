/**
 * The state directory on disk (edge).
 *
 *   <dir>/state.json            single source of truth (atomic replace)
 *   <dir>/trust/<sha256>.json   trust policies by content digest
 *   <dir>/slots/<id>-<hex>/     slot content (slot-dir.ts)
 *   <dir>/health.d/             health hook executables (boot confirmation)
 *   <dir>/journal.jsonl         outcome log (journal.ts)
 *   <dir>/install.lock          writer lock (lock.ts)
 */
import { mkdir, readFile, readdir, rm } from 'node:fs/promises';
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import { InstallError, fsFailure } from './errors.js';
import { exists, fsyncDir, isTempName, replaceFileAtomic, writeNewFileDurable } from './durable.js';
import { parseState, serializeState, STATE_MAX_BYTES } from './state-schema.js';
import type { DeviceState } from './state.js';

export const STATE_FILE = 'state.json';
export const TRUST_DIR = 'trust';
export const SLOTS_DIR = 'slots';
export const HEALTH_DIR = 'health.d';
/** Largest trust policy file accepted. */
export const TRUST_MAX_BYTES = 1024 * 1024;

export const DEFAULT_STATE_DIR = '/var/lib/glassbox';

export function sha256Hex(bytes: Buffer): string {
  return createHash('sha256').update(bytes).digest('hex');
}

export class StateDir {
  constructor(readonly path: string) {}

  get stateFile(): string {
    return join(this.path, STATE_FILE);
  }

  get healthDir(): string {
    return join(this.path, HEALTH_DIR);
  }

  trustFile(sha: string): string {
    return join(this.path, TRUST_DIR, `${sha}.json`);
  }

  async isInitialised(): Promise<boolean> {
    return exists(this.stateFile);
  }

  /** Reads and checks state.json: NOT_INITIALISED when absent, STATE_CORRUPT when malformed. */
  async read(): Promise<{ state: DeviceState; bytes: Buffer }> {
    let bytes: Buffer;
    try {
      bytes = await readFile(this.stateFile);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'ENOENT') {
        throw new InstallError('NOT_INITIALISED', `no device state in ${this.path} (run "glassbox device init" first, or pass --state-dir)`);
      }
      throw fsFailure(err, `reading ${this.stateFile}`);
    }
    if (bytes.length > STATE_MAX_BYTES) throw new InstallError('STATE_CORRUPT', `${this.stateFile} is too large`);
    return { state: parseState(bytes, this.stateFile), bytes };
  }

  /**
   * Replaces state.json atomically with `next`. Right before the rename it
   * runs `guard` (lock still held) and checks that state.json is still the
   * generation `next` was derived from; a mismatch is STATE_CONFLICT and
   * nothing is replaced.
   */
  async write(next: DeviceState, guard: () => Promise<void>): Promise<void> {
    const expected = next.generation - 1;
    try {
      await replaceFileAtomic(this.stateFile, serializeState(next), {
        beforeRename: async () => {
          await guard();
          const { state } = await this.read();
          if (state.generation !== expected) {
            throw new InstallError('STATE_CONFLICT', `state.json moved to generation ${state.generation} while this command expected ${expected}; nothing was switched`);
          }
        },
      });
    } catch (err) {
      throw fsFailure(err, `writing ${this.stateFile}`);
    }
  }

  /** First state of a new device (device init): fails if one exists. */
  async create(state: DeviceState): Promise<void> {
    try {
      await writeNewFileDurable(this.stateFile, serializeState(state));
      await fsyncDir(this.path);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'EEXIST') throw new InstallError('ALREADY_INITIALISED', `${this.path} already holds a device state; refusing to overwrite it`);
      throw fsFailure(err, `writing ${this.stateFile}`);
    }
  }

  /** Trust policy bytes by digest; checks the bytes still hash to the name. */
  async readTrust(sha: string): Promise<Buffer> {
    let bytes: Buffer;
    try {
      bytes = await readFile(this.trustFile(sha));
    } catch (err) {
      throw new InstallError('STATE_CORRUPT', `trust policy ${this.trustFile(sha)} named by state.json cannot be read: ${(err as Error).message}`, { cause: err });
    }
    if (bytes.length > TRUST_MAX_BYTES || sha256Hex(bytes) !== sha) {
      throw new InstallError('STATE_CORRUPT', `trust policy ${this.trustFile(sha)} does not match its digest (damaged or edited)`);
    }
    return bytes;
  }

  /** Stores a trust policy under its digest (durably); returns the digest. Idempotent. */
  async storeTrust(bytes: Buffer): Promise<string> {
    const sha = sha256Hex(bytes);
    const path = this.trustFile(sha);
    try {
      await mkdir(join(this.path, TRUST_DIR), { recursive: true });
      if (await exists(path)) {
        const current = await readFile(path);
        if (current.equals(bytes)) return sha;
        await replaceFileAtomic(path, bytes);
        return sha;
      }
      await replaceFileAtomic(path, bytes);
      await fsyncDir(this.path);
    } catch (err) {
      throw fsFailure(err, `storing trust policy ${sha}`);
    }
    return sha;
  }

  /**
   * Removes what a crash may have left: temp files of state.json and of
   * trust policies, and trust policies no state references. Only called
   * while holding the lock.
   */
  async sweep(state: DeviceState): Promise<void> {
    const keepTrust = new Set([state.trustPolicy, state.slots.a.trustPolicy, state.slots.b.trustPolicy].filter((s): s is string => s !== null));
    for (const name of await readdir(this.path)) {
      if (isTempName(name) && name.startsWith(`.${STATE_FILE}.`)) await rm(join(this.path, name), { force: true });
    }
    const trustDir = join(this.path, TRUST_DIR);
    let names: string[] = [];
    try {
      names = await readdir(trustDir);
    } catch {
      return;
    }
    let removed = false;
    for (const name of names) {
      const m = /^([0-9a-f]{64})\.json$/.exec(name);
      if ((m && !keepTrust.has(m[1] as string)) || isTempName(name)) {
        await rm(join(trustDir, name), { force: true });
        removed = true;
      }
    }
    if (removed) await fsyncDir(trustDir);
  }
}
