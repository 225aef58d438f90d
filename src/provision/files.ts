/**
 * Durable, owned file writes for the identity and configuration (edge).
 *
 * Every file is written as: temp file beside the target (O_EXCL, final mode
 * and owner set on the descriptor before a byte is written) → data → fsync →
 * rename over the target → fsync of the directory. A reader, the daemon or a
 * power cut sees the old file or the new one, never a half-written one, and a
 * private key never exists on disk with a wider mode or another owner.
 */
import { constants } from 'node:fs';
import { lstat, mkdir, open, chown, chmod, stat } from 'node:fs/promises';
import { dirname } from 'node:path';
import { IoError } from '../errors.js';
import { fsyncDir, replaceFileAtomic, stageFileAtomic, type Owner, type StagedFile } from '../install/durable.js';

// One implementation of the durable steps, shared with the installer.
export { exists, fsyncDir, type Owner, type StagedFile } from '../install/durable.js';

export interface WriteOptions {
  /** File mode, applied with fchmod (the umask does not narrow or widen it). */
  readonly mode: number;
  /** Owner set with fchown before the data is written; undefined = the writing process. */
  readonly owner?: Owner;
}

/**
 * Writes `bytes` to a durable temp file beside `path` and returns a commit
 * function that renames it into place (and a discard function). Staging lets
 * a command prepare every file, run its last checks, and only then publish.
 */
export function stageFile(path: string, bytes: Buffer | string, opts: WriteOptions): Promise<StagedFile> {
  return stageFileAtomic(path, bytes, { ...opts, exactMode: true });
}

/** Atomic replace of one file (stage + commit). */
export function writeFileAtomic(path: string, bytes: Buffer | string, opts: WriteOptions): Promise<void> {
  return replaceFileAtomic(path, bytes, { ...opts, exactMode: true });
}

/** Commits staged files in order; on the first failure discards the rest and rethrows. */
export async function commitAll(files: readonly StagedFile[]): Promise<void> {
  let i = 0;
  try {
    for (; i < files.length; i++) await files[i]!.commit();
  } catch (err) {
    for (const f of files.slice(i + 1)) await f.discard();
    throw err;
  }
}

export async function discardAll(files: readonly StagedFile[]): Promise<void> {
  for (const f of files) await f.discard();
}

/**
 * Makes sure `path` is a directory (not a symlink) with exactly `mode` and
 * owner, creating it (and its parents, 0755) if needed.
 */
export async function ensureDir(path: string, mode: number, owner?: Owner): Promise<void> {
  await mkdir(dirname(path), { recursive: true, mode: 0o755 });
  try {
    await mkdir(path, { mode });
    await fsyncDir(dirname(path));
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
  }
  const st = await lstat(path);
  if (!st.isDirectory()) throw new IoError(`${path} exists and is not a directory`);
  if ((st.mode & 0o7777) !== mode) await chmod(path, mode);
  if (owner && (st.uid !== owner.uid || st.gid !== owner.gid)) await chown(path, owner.uid, owner.gid);
}

/**
 * Reads a regular file of at most `maxBytes`; `what` names it in errors.
 * Returns null when it does not exist and `optional` is set.
 */
export async function readBounded(path: string, maxBytes: number, what: string): Promise<Buffer>;
export async function readBounded(path: string, maxBytes: number, what: string, optional: true): Promise<Buffer | null>;
export async function readBounded(path: string, maxBytes: number, what: string, optional = false): Promise<Buffer | null> {
  let size: number;
  try {
    const st = await stat(path);
    if (!st.isFile()) throw new IoError(`${what} ${path} is not a regular file`);
    size = st.size;
  } catch (err) {
    if (err instanceof IoError) throw err;
    if ((err as NodeJS.ErrnoException).code === 'ENOENT' && optional) return null;
    throw new IoError(`cannot read ${what} ${path}: ${(err as Error).message}`, { cause: err });
  }
  if (size > maxBytes) throw new IoError(`${what} ${path} is ${size} bytes, over the ${maxBytes}-byte limit`);
  try {
    const fh = await open(path, constants.O_RDONLY);
    try {
      const buf = Buffer.alloc(maxBytes + 1);
      let n = 0;
      for (;;) {
        const { bytesRead } = await fh.read(buf, n, buf.length - n, null);
        if (bytesRead === 0) break;
        n += bytesRead;
        if (n > maxBytes) throw new IoError(`${what} ${path} grew over the ${maxBytes}-byte limit while being read`);
      }
      return buf.subarray(0, n);
    } finally {
      await fh.close();
    }
  } catch (err) {
    if (err instanceof IoError) throw err;
    throw new IoError(`cannot read ${what} ${path}: ${(err as Error).message}`, { cause: err });
  }
}

/** Reads a whole small text file we wrote ourselves (no bound needed beyond `maxBytes`). */
export async function readText(path: string, maxBytes: number, what: string): Promise<string> {
  return (await readBounded(path, maxBytes, what)).toString('utf8');
}

