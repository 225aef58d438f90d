/**
 * One writer of the device state at a time (install, boot-check, rollback).
 *
 * The lock is the file `install.lock`, created atomically with its content
 * (written to a temp file, fsynced, then hard-linked to the lock name: link
 * fails with EEXIST when a lock exists, so exactly one creator wins). The
 * content names the holder: pid, the kernel's start time of that pid, and
 * the boot id. A lock is stale when the machine rebooted since (boot id
 * differs), the pid is gone, or the pid now belongs to another process (start
 * time differs). A crash therefore never leaves the lock stuck.
 *
 * Taking over a stale lock: rename it to a private name, read it back, and
 * only if it is still the very lock judged stale (same inode, same bytes)
 * delete it and compete again; if a live lock was caught by the rename
 * (another contender took over in between), it is linked back unchanged.
 * Holders re-check that the lock is still theirs right before the state
 * switch (assertHeld), and the switch itself also checks the state
 * generation, so two writers can never both switch.
 */
import { link, readFile, rename, rm, stat, unlink, readdir } from 'node:fs/promises';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { InstallError, fsFailure } from './errors.js';
import { fsyncDir, writeNewFileDurable } from './durable.js';

export const LOCK_NAME = 'install.lock';

export interface LockHolder {
  readonly pid: number;
  /** Start time of the pid in clock ticks since boot (/proc/<pid>/stat field 22); null if unknown. */
  readonly procStart: string | null;
  readonly bootId: string | null;
  readonly nonce: string;
  readonly command: string;
  readonly since: string;
}

export function currentBootId(): string | null {
  try {
    return readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim();
  } catch {
    return null;
  }
}

/** Field 22 of /proc/<pid>/stat, or null when the process does not exist. */
export function processStartTime(pid: number): string | null {
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return null;
  }
  // The command name (field 2) is in parentheses and may hold spaces or ')'.
  const rest = text.slice(text.lastIndexOf(')') + 2).split(' ');
  return rest[19] ?? null;
}

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Why a holder is stale, or null when it is (or may be) alive. */
export function staleReason(holder: LockHolder | null, now: { bootId: string | null }): string | null {
  if (holder === null) return 'lock file is unreadable';
  if (holder.bootId !== null && now.bootId !== null && holder.bootId !== now.bootId) return `holder pid ${holder.pid} ran before the last reboot`;
  if (!processAlive(holder.pid)) return `holder pid ${holder.pid} is gone`;
  const start = processStartTime(holder.pid);
  if (holder.procStart !== null && start !== null && start !== holder.procStart) return `pid ${holder.pid} now belongs to another process`;
  return null;
}

function parseHolder(bytes: Buffer): LockHolder | null {
  try {
    const v = JSON.parse(bytes.toString('utf8')) as Partial<LockHolder>;
    if (typeof v.pid !== 'number' || !Number.isInteger(v.pid) || v.pid <= 0 || typeof v.nonce !== 'string') return null;
    return {
      pid: v.pid,
      procStart: typeof v.procStart === 'string' ? v.procStart : null,
      bootId: typeof v.bootId === 'string' ? v.bootId : null,
      nonce: v.nonce,
      command: typeof v.command === 'string' ? v.command : '?',
      since: typeof v.since === 'string' ? v.since : '?',
    };
  } catch {
    return null;
  }
}

export interface InstallLock {
  readonly holder: LockHolder;
  /** Reason of a stale lock this acquisition took over, if any (for the journal). */
  readonly tookOver: string | null;
  /** Throws STATE_CONFLICT unless install.lock is still this lock. */
  assertHeld(): Promise<void>;
  release(): Promise<void>;
}

export async function acquireLock(stateDir: string, command: string, clock: Date): Promise<InstallLock> {
  const lockPath = join(stateDir, LOCK_NAME);
  const holder: LockHolder = {
    pid: process.pid,
    procStart: processStartTime(process.pid),
    bootId: currentBootId(),
    nonce: randomBytes(12).toString('hex'),
    command,
    since: clock.toISOString(),
  };
  const myBytes = Buffer.from(JSON.stringify(holder) + '\n');
  const tmp = join(stateDir, `.${LOCK_NAME}.${holder.nonce}.tmp`);
  let tookOver: string | null = null;
  try {
    await writeNewFileDurable(tmp, myBytes, 0o644);
  } catch (err) {
    throw fsFailure(err, 'creating the install lock');
  }
  try {
    for (let attempt = 0; ; attempt++) {
      if (attempt > 20) throw new InstallError('LOCKED', `could not take the install lock ${lockPath} (it keeps changing hands)`);
      try {
        await link(tmp, lockPath);
        break;
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw fsFailure(err, 'creating the install lock');
      }
      let bytes: Buffer;
      let ino: number;
      try {
        ino = (await stat(lockPath)).ino;
        bytes = await readFile(lockPath);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'ENOENT') continue; // released meanwhile
        throw fsFailure(err, 'reading the install lock');
      }
      const other = parseHolder(bytes);
      const why = staleReason(other, { bootId: holder.bootId });
      if (why === null && other !== null) {
        throw new InstallError('LOCKED', `another ${other.command} is running (pid ${other.pid}, since ${other.since}); try again when it has finished`);
      }
      const aside = join(stateDir, `.${LOCK_NAME}.stale-${holder.nonce}`);
      try {
        await rename(lockPath, aside);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'ENOENT') continue;
        throw fsFailure(err, 'taking over a stale install lock');
      }
      const asideIno = (await stat(aside)).ino;
      const asideBytes = await readFile(aside);
      if (asideIno === ino && asideBytes.equals(bytes)) {
        await unlink(aside);
        tookOver = why;
      } else {
        // We moved someone's fresh lock: put it back exactly as it was.
        await link(aside, lockPath).catch(() => undefined);
        await unlink(aside);
      }
    }
    await fsyncDir(stateDir);
  } finally {
    await rm(tmp, { force: true }).catch(() => undefined);
  }
  const myIno = (await stat(lockPath)).ino;

  const assertHeld = async (): Promise<void> => {
    let ok = false;
    try {
      const st = await stat(lockPath);
      const b = await readFile(lockPath);
      ok = st.ino === myIno && b.equals(myBytes);
    } catch {
      ok = false;
    }
    if (!ok) throw new InstallError('STATE_CONFLICT', `the install lock ${lockPath} was taken by another process; nothing was switched`);
  };
  let released = false;
  return {
    holder,
    tookOver,
    assertHeld,
    async release() {
      if (released) return;
      released = true;
      try {
        await assertHeld();
        await unlink(lockPath);
        await fsyncDir(stateDir);
      } catch {
        // Not ours any more, or already gone: nothing to release.
      }
    },
  };
}

/** Who holds the lock right now (for status), or null. Stale holders are reported with their reason. */
export async function lockInfo(stateDir: string): Promise<{ holder: LockHolder | null; stale: string | null } | null> {
  let bytes: Buffer;
  try {
    bytes = await readFile(join(stateDir, LOCK_NAME));
  } catch {
    return null;
  }
  const holder = parseHolder(bytes);
  return { holder, stale: staleReason(holder, { bootId: currentBootId() }) };
}

/** Leftover lock temp / aside files older than a minute (a crash between write and link). */
export async function sweepLockLeftovers(stateDir: string, clock: Date): Promise<void> {
  for (const name of await readdir(stateDir)) {
    if (!name.startsWith(`.${LOCK_NAME}.`)) continue;
    const p = join(stateDir, name);
    try {
      const st = await stat(p);
      if (clock.getTime() - st.mtimeMs > 60_000) await rm(p, { force: true });
    } catch {
      // raced with its owner: fine
    }
  }
}
