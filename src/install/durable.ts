/**
 * Durable file-system steps (edge). The order matters for a power cut:
 * data is fsynced before the name that makes it reachable is published, and
 * the directory holding a new name is fsynced after the rename.
 */
import { open, rename, readdir, rm, lstat } from 'node:fs/promises';
import { constants } from 'node:fs';
import { dirname, join, basename } from 'node:path';
import { randomBytes } from 'node:crypto';

/** fsync a directory, so entries created / renamed / removed in it survive a power cut. */
export async function fsyncDir(path: string): Promise<void> {
  const fh = await open(path, constants.O_RDONLY | constants.O_DIRECTORY);
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

/** fsync an existing regular file by path. */
export async function fsyncFile(path: string): Promise<void> {
  const fh = await open(path, constants.O_RDONLY);
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

/** Name of a temp file beside `path`; recognised (and swept) by isTempName. */
export function tempNameFor(path: string): string {
  return join(dirname(path), `.${basename(path)}.${randomBytes(6).toString('hex')}.tmp`);
}

export function isTempName(name: string): boolean {
  return /^\..+\.[0-9a-f]{12}\.tmp$/.test(name);
}

/**
 * Creates a new file with exactly `bytes`, fsynced. Fails if the file exists
 * (O_EXCL). The caller fsyncs the directory (the new name is not yet durable).
 */
export async function writeNewFileDurable(path: string, bytes: Buffer, mode = 0o644): Promise<void> {
  const fh = await open(path, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL, mode);
  try {
    await fh.writeFile(bytes);
    await fh.sync();
  } finally {
    await fh.close();
  }
}

export interface Owner {
  readonly uid: number;
  readonly gid: number;
}

export interface AtomicWriteOptions {
  /**
   * File mode. By default the temp file is created with it, so the umask
   * narrows it (default 0o644). With `exactMode` it is created 0600 and set
   * with fchmod before a byte is written: exactly `mode`, whatever the umask.
   */
  readonly mode?: number;
  readonly exactMode?: boolean;
  /** Owner set with fchown before the data is written; undefined = the writing process. */
  readonly owner?: Owner;
}

/** A durable temp file beside `path`, waiting to be renamed into place. */
export interface StagedFile {
  readonly path: string;
  /** Renames the temp file over `path` and fsyncs the directory (once). */
  commit(): Promise<void>;
  /** Removes the temp file; a no-op after commit or discard. */
  discard(): Promise<void>;
}

/**
 * Writes `bytes` to a new temp file beside `path` (O_EXCL, O_NOFOLLOW; mode
 * and owner set on the descriptor before the data) and fsyncs it. Nothing is
 * visible at `path` until commit; staging lets a command prepare every file,
 * run its last checks, and only then publish.
 */
export async function stageFileAtomic(path: string, bytes: Buffer | string, opts: AtomicWriteOptions = {}): Promise<StagedFile> {
  const tmp = tempNameFor(path);
  const mode = opts.mode ?? 0o644;
  const fh = await open(tmp, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, opts.exactMode ? 0o600 : mode);
  try {
    if (opts.owner) await fh.chown(opts.owner.uid, opts.owner.gid);
    if (opts.exactMode) await fh.chmod(mode);
    await fh.writeFile(bytes);
    await fh.sync();
  } catch (err) {
    await fh.close().catch(() => undefined);
    await rm(tmp, { force: true }).catch(() => undefined);
    throw err;
  }
  await fh.close();
  let done = false;
  return {
    path,
    async commit() {
      if (done) throw new Error(`staged file for ${path} already committed or discarded`);
      done = true;
      try {
        await rename(tmp, path);
      } catch (err) {
        await rm(tmp, { force: true }).catch(() => undefined);
        throw err;
      }
      await fsyncDir(dirname(path));
    },
    async discard() {
      if (done) return;
      done = true;
      await rm(tmp, { force: true }).catch(() => undefined);
    },
  };
}

/**
 * Atomic replace: write a temp file beside `path`, fsync it, rename over
 * `path`, fsync the directory. Readers see the old bytes or the new bytes,
 * never a mix, at any instant and after any crash. `beforeRename` runs
 * after the temp file is durable and right before the rename (used for the
 * last lock / generation check); if it throws, the temp file is removed.
 */
export async function replaceFileAtomic(
  path: string,
  bytes: Buffer | string,
  opts: AtomicWriteOptions & { beforeRename?: () => Promise<void> } = {},
): Promise<void> {
  const staged = await stageFileAtomic(path, bytes, opts);
  try {
    if (opts.beforeRename) await opts.beforeRename();
  } catch (err) {
    await staged.discard();
    throw err;
  }
  await staged.commit();
}

/** Removes a tree and fsyncs its parent directory. Missing is fine. */
export async function removeTreeDurable(path: string): Promise<void> {
  await rm(path, { recursive: true, force: true });
  await fsyncDir(dirname(path));
}

/**
 * fsyncs every regular file and directory under `root` (root included),
 * bottom-up, so a slot written by someone else's writer is durable before
 * the state points at it. Symlinks and other types are not followed.
 */
export async function fsyncTree(root: string): Promise<void> {
  const entries = await readdir(root, { withFileTypes: true });
  for (const e of entries) {
    const p = join(root, e.name);
    if (e.isDirectory()) await fsyncTree(p);
    else if (e.isFile()) await fsyncFile(p);
  }
  await fsyncDir(root);
}

/** True when `path` exists (any type, symlinks not followed). */
export async function exists(path: string): Promise<boolean> {
  try {
    await lstat(path);
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return false;
    throw err;
  }
}
