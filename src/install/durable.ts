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
 * Creates a new file with exactly `bytes`, fsynced, and fsyncs its directory.
 * Fails if the file exists (O_EXCL).
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

/**
 * Atomic replace: write a temp file beside `path`, fsync it, rename over
 * `path`, fsync the directory. Readers see the old bytes or the new bytes,
 * never a mix, at any instant and after any crash. `beforeRename` runs
 * after the temp file is durable and right before the rename (used for the
 * last lock / generation check).
 */
export async function replaceFileAtomic(path: string, bytes: Buffer, opts: { mode?: number; beforeRename?: () => Promise<void> } = {}): Promise<void> {
  const tmp = tempNameFor(path);
  try {
    await writeNewFileDurable(tmp, bytes, opts.mode ?? 0o644);
    if (opts.beforeRename) await opts.beforeRename();
    await rename(tmp, path);
  } catch (err) {
    await rm(tmp, { force: true }).catch(() => undefined);
    throw err;
  }
  await fsyncDir(dirname(path));
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
