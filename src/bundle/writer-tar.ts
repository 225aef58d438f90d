/**
 * The tar edge of the bundle writer: node-tar does all of the tar encoding
 * (headers, pax records for long names and sizes over 8 GiB, padding, the
 * two end blocks); this file only feeds it entries in a fixed order with
 * fixed metadata, and respects back-pressure so memory stays bounded no
 * matter how large an artifact is.
 */
import { createReadStream, createWriteStream, type WriteStream } from 'node:fs';
import { open, rename, rm } from 'node:fs/promises';
import { once } from 'node:events';
import { dirname, basename, join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { Header, Pack, ReadEntry } from 'tar';
import { GlassboxError, IoError } from '../errors.js';

/** File mode of every bundle entry. */
export const ENTRY_MODE = 0o644;

/** Read size when streaming artifacts (also the largest chunk held at once per stage). */
export const STREAM_CHUNK = 1024 * 1024;

/**
 * One regular-file entry with the bundle's fixed metadata: uid/gid 0, mode
 * 0644, no owner names, mtime = the manifest's `released` (whole seconds).
 */
export function bundleHeader(path: string, size: number, mtime: Date): Header {
  return new Header({ path, type: 'File', size, mode: ENTRY_MODE, uid: 0, gid: 0, mtime });
}

/**
 * A tar archive being written to a file, entry by entry, in call order.
 * Every method waits for back-pressure, so at most a few chunks are ever in memory.
 */
export class TarFileWriter {
  readonly #pack: Pack;
  readonly #out: WriteStream;
  readonly #mtime: Date;
  #failure: Error | undefined;
  readonly #closed: Promise<void>;

  constructor(path: string, mtime: Date) {
    this.#mtime = new Date(Math.floor(mtime.getTime() / 1000) * 1000);
    // Not `portable`: portable mode leaves uid/gid empty, which GNU tar lists
    // oddly; we set uid/gid 0 ourselves and no uname/gname, atime or ctime.
    this.#pack = new Pack({ strict: true });
    this.#out = createWriteStream(path, { flags: 'wx', highWaterMark: STREAM_CHUNK });
    this.#pack.on('error', (err: unknown) => this.#fail(err instanceof Error ? err : new Error(String(err))));
    this.#out.on('error', (err: Error) => this.#fail(err));
    this.#closed = new Promise<void>((resolve, reject) => {
      this.#out.on('close', () => (this.#failure ? reject(this.#failure) : resolve()));
    });
    this.#closed.catch(() => undefined);
    this.#pack.pipe(this.#out);
  }

  #fail(err: Error): void {
    this.#failure ??= err;
  }

  #check(): void {
    if (this.#failure) throw this.#failure;
  }

  /** Adds a small entry held in memory (manifest, signature, chain). */
  async addBuffer(path: string, data: Buffer): Promise<void> {
    await this.addStream(path, data.length, [data]);
  }

  /**
   * Adds an entry of exactly `size` bytes from `source`. Throws (and the
   * archive must be abandoned) if the source yields more or fewer bytes.
   * `onChunk` sees every byte (for hashing while copying).
   */
  async addStream(path: string, size: number, source: AsyncIterable<Buffer> | Iterable<Buffer>, onChunk?: (chunk: Buffer) => void): Promise<void> {
    this.#check();
    const entry = new ReadEntry(bundleHeader(path, size, this.#mtime));
    this.#pack.add(entry);
    let written = 0;
    for await (const chunk of source) {
      this.#check();
      if (written + chunk.length > size) {
        throw new IoError(`${path}: source yielded more than the expected ${size} bytes (did the file change while it was read?)`);
      }
      written += chunk.length;
      onChunk?.(chunk);
      if (!entry.write(chunk)) await this.#drained(entry);
    }
    if (written !== size) {
      throw new IoError(`${path}: source ended after ${written} of ${size} bytes (did the file change while it was read?)`);
    }
    entry.end();
  }

  /** Waits until `entry` can take more, or the output failed. */
  async #drained(entry: ReadEntry): Promise<void> {
    if (this.#failure) throw this.#failure;
    await Promise.race([once(entry, 'drain'), this.#closed]);
    this.#check();
  }

  /** Writes the end-of-archive blocks, flushes and fsyncs. */
  async finish(): Promise<void> {
    this.#check();
    this.#pack.end();
    await this.#closed;
    const fh = await open(this.#out.path as string, 'r');
    try {
      await fh.sync();
    } finally {
      await fh.close();
    }
  }

  /** Stops writing; the caller removes the file. */
  async abort(): Promise<void> {
    this.#fail(new IoError('bundle write aborted'));
    this.#out.destroy();
    await this.#closed.catch(() => undefined);
  }
}

/** Reads `size` bytes of a file as a stream of chunks (empty files are not opened for reading). */
export function fileChunks(path: string, size: number): AsyncIterable<Buffer> {
  if (size === 0) return (async function* () {})();
  // Read one byte past `size` so a file that grew is noticed by addStream.
  return createReadStream(path, { start: 0, end: size, highWaterMark: STREAM_CHUNK }) as AsyncIterable<Buffer>;
}

/**
 * Writes `outPath` through a temporary file in the same directory and an
 * atomic rename, so a reader never sees a half-written bundle and a failed
 * write leaves the old file (if any) untouched.
 */
export async function writeAtomically<T>(outPath: string, body: (tmpPath: string) => Promise<T>): Promise<T> {
  const tmpPath = join(dirname(outPath), `.${basename(outPath)}.${randomBytes(6).toString('hex')}.tmp`);
  try {
    const result = await body(tmpPath);
    await rename(tmpPath, outPath);
    await fsyncDir(dirname(outPath));
    return result;
  } catch (err) {
    await rm(tmpPath, { force: true });
    if (err instanceof GlassboxError) throw err;
    throw new IoError(`cannot write ${outPath}: ${(err as Error).message}`, { cause: err });
  }
}

async function fsyncDir(dir: string): Promise<void> {
  const fh = await open(dir, 'r');
  try {
    await fh.sync();
  } catch {
    // Some file systems refuse fsync on directories; the rename itself is still atomic.
  } finally {
    await fh.close();
  }
}
