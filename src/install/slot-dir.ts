/**
 * Directory-backed slots (edge): `<state>/slots/<id>-<hex>/`. Staging writes
 * a brand-new directory, so a refused or interrupted install never touches
 * what the state references.
 */
import { lstat, mkdir, open, readdir, rm, type FileHandle } from 'node:fs/promises';
import { constants } from 'node:fs';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { fsyncDir, fsyncTree, isTempName, writeNewFileDurable } from './durable.js';
import { InstallError, fsFailure } from './errors.js';
import type { SignaturePair, SlotContent, SlotFileWriter, SlotStaging, SlotStore } from './slot.js';
import type { SlotId } from './state.js';
import { MANIFEST_MAX_BYTES } from '../manifest/types.js';

/** Artifact-name pattern of bundle-v1 section 2 (checked again before a name becomes a path). */
const ARTIFACT_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;
const REF = /^[ab]-[0-9a-f]{16,64}$/;
const MAX_SIGNERS = 16;
const SIG_MAX = 4 * 1024;
const PEM_MAX = 64 * 1024;
export const SLOT_READ_CHUNK = 1024 * 1024;

function checkName(name: string): void {
  if (!ARTIFACT_NAME.test(name)) throw new InstallError('STATE_IO', `refusing artifact name ${JSON.stringify(name)} as a file name`);
}

/**
 * Write-behind and flush-behind, so reading, hashing and writing overlap:
 *   - write() copies the chunk into one of WRITE_BEHIND_BUFFERS buffers and
 *     returns; the write itself (at an explicit file position) runs in
 *     libuv's thread pool while the verifier hashes the next chunk. At most
 *     that many writes are in flight (bounded memory); the caller's chunk
 *     may be reused as soon as write() resolves, as the verifier requires.
 *   - after every FLUSH_BEHIND_BYTES, a datasync of the file starts in the
 *     background (one at a time), so the disk writes back during the install
 *     instead of all at the final fsync.
 * finish() waits for everything, fsyncs and closes; any write error is
 * raised by the next write() or by finish().
 */
export const FLUSH_BEHIND_BYTES = 32 * 1024 * 1024;
export const WRITE_BEHIND_BUFFERS = 4;
const WRITE_BUFFER_BYTES = 1024 * 1024;

class DirectoryFileWriter implements SlotFileWriter {
  #done = false;
  #position = 0;
  #sinceFlush = 0;
  #flushing: Promise<void> | null = null;
  #error: unknown = null;
  readonly #free: Buffer[] = [];
  readonly #inFlight: Array<Promise<void>> = [];

  constructor(
    private readonly fh: FileHandle,
    private readonly path: string,
  ) {}

  #buffer(): Buffer {
    const b = this.#free.pop();
    if (b) return b;
    return Buffer.allocUnsafe(WRITE_BUFFER_BYTES);
  }

  async #writeAll(buf: Buffer, length: number, position: number): Promise<void> {
    let off = 0;
    while (off < length) {
      const { bytesWritten } = await this.fh.write(buf, off, length - off, position + off);
      off += bytesWritten;
    }
  }

  async write(chunk: Buffer): Promise<void> {
    for (let off = 0; off < chunk.length; off += WRITE_BUFFER_BYTES) {
      const piece = chunk.subarray(off, Math.min(chunk.length, off + WRITE_BUFFER_BYTES));
      while (this.#inFlight.length >= WRITE_BEHIND_BUFFERS) await this.#inFlight[0];
      if (this.#error) throw this.#error;
      const buf = this.#buffer();
      piece.copy(buf);
      const position = this.#position;
      this.#position += piece.length;
      const p: Promise<void> = this.#writeAll(buf, piece.length, position).then(
        () => undefined,
        (err: unknown) => {
          this.#error ??= err;
        },
      ).finally(() => {
        this.#inFlight.splice(this.#inFlight.indexOf(p), 1);
        this.#free.push(buf);
      });
      this.#inFlight.push(p);
      this.#sinceFlush += piece.length;
    }
    if (this.#sinceFlush >= FLUSH_BEHIND_BYTES && this.#flushing === null) {
      this.#sinceFlush = 0;
      // Flushes what has reached the page cache so far; writes still in flight go with the next one.
      this.#flushing = this.fh.datasync().then(
        () => {
          this.#flushing = null;
        },
        (err: unknown) => {
          this.#flushing = null;
          this.#error ??= err;
        },
      );
    }
  }

  async #drain(): Promise<void> {
    while (this.#inFlight.length > 0) await this.#inFlight[0];
    await this.#flushing;
  }

  async finish(): Promise<void> {
    if (this.#done) return;
    this.#done = true;
    try {
      await this.#drain();
      if (this.#error) throw this.#error;
      await this.fh.sync();
    } finally {
      await this.fh.close();
    }
  }

  async abort(): Promise<void> {
    if (this.#done) return;
    this.#done = true;
    await this.#drain().catch(() => undefined);
    await this.fh.close().catch(() => undefined);
    await rm(this.path, { force: true });
  }
}

class DirectoryStaging implements SlotStaging {
  constructor(
    readonly slot: SlotId,
    readonly ref: string,
    private readonly dir: string,
  ) {}

  async createArtifact(name: string): Promise<SlotFileWriter> {
    checkName(name);
    const path = join(this.dir, 'artifacts', name);
    try {
      const fh = await open(path, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL, 0o644);
      return new DirectoryFileWriter(fh, path);
    } catch (err) {
      throw fsFailure(err, `creating ${name} in slot ${this.slot}`);
    }
  }

  async writeManifest(bytes: Buffer): Promise<void> {
    await writeNewFileDurable(join(this.dir, 'manifest.json'), bytes);
  }

  async writeSignatures(pairs: readonly SignaturePair[]): Promise<void> {
    for (const p of pairs) {
      await writeNewFileDurable(join(this.dir, 'signatures', `${p.index}.sig`), p.signature);
      await writeNewFileDurable(join(this.dir, 'signatures', `${p.index}.pem`), p.chainPem);
    }
  }

  async seal(): Promise<void> {
    await fsyncTree(this.dir);
    await fsyncDir(join(this.dir, '..'));
  }

  async discard(): Promise<void> {
    await rm(this.dir, { recursive: true, force: true });
  }
}

async function readBounded(path: string, max: number, what: string): Promise<Buffer> {
  const st = await lstat(path);
  if (!st.isFile()) throw new InstallError('SLOT_REFUSED', `${what} is not a regular file`);
  if (st.size > max) throw new InstallError('SLOT_REFUSED', `${what} is ${st.size} bytes, over ${max}`);
  const fh = await open(path, constants.O_RDONLY | constants.O_NOFOLLOW);
  try {
    const buf = Buffer.alloc(st.size);
    let off = 0;
    while (off < buf.length) {
      const { bytesRead } = await fh.read(buf, off, buf.length - off, off);
      if (bytesRead === 0) break;
      off += bytesRead;
    }
    return buf.subarray(0, off);
  } finally {
    await fh.close();
  }
}

class DirectoryContent implements SlotContent {
  constructor(
    readonly ref: string,
    readonly location: string,
  ) {}

  readManifest(): Promise<Buffer> {
    return readBounded(join(this.location, 'manifest.json'), MANIFEST_MAX_BYTES, `slot ${this.ref} manifest.json`);
  }

  async readSignatures(): Promise<SignaturePair[]> {
    const dir = join(this.location, 'signatures');
    const names = await readdir(dir);
    const pairs: SignaturePair[] = [];
    for (let index = 1; index <= MAX_SIGNERS; index++) {
      const hasSig = names.includes(`${index}.sig`);
      const hasPem = names.includes(`${index}.pem`);
      if (!hasSig && !hasPem) break;
      if (hasSig !== hasPem) throw new InstallError('SLOT_REFUSED', `slot ${this.ref}: signature pair ${index} is incomplete`);
      pairs.push({
        index,
        signature: await readBounded(join(dir, `${index}.sig`), SIG_MAX, `signatures/${index}.sig`),
        chainPem: await readBounded(join(dir, `${index}.pem`), PEM_MAX, `signatures/${index}.pem`),
      });
    }
    if (names.length !== pairs.length * 2) throw new InstallError('SLOT_REFUSED', `slot ${this.ref}: unexpected files in signatures/ (${names.sort().join(', ')})`);
    return pairs;
  }

  async listArtifacts(): Promise<string[]> {
    const entries = await readdir(join(this.location, 'artifacts'), { withFileTypes: true });
    for (const e of entries) {
      if (!e.isFile()) throw new InstallError('SLOT_REFUSED', `slot ${this.ref}: artifacts/${e.name} is not a regular file`);
    }
    return entries.map((e) => e.name).sort();
  }

  async artifactSize(name: string): Promise<number> {
    checkName(name);
    const st = await lstat(join(this.location, 'artifacts', name));
    if (!st.isFile()) throw new InstallError('SLOT_REFUSED', `slot ${this.ref}: artifacts/${name} is not a regular file`);
    return st.size;
  }

  async *readArtifact(name: string): AsyncIterable<Buffer> {
    checkName(name);
    const fh = await open(join(this.location, 'artifacts', name), constants.O_RDONLY | constants.O_NOFOLLOW);
    try {
      const buf = Buffer.allocUnsafe(SLOT_READ_CHUNK);
      for (;;) {
        const { bytesRead } = await fh.read(buf, 0, buf.length, null);
        if (bytesRead === 0) return;
        yield buf.subarray(0, bytesRead);
      }
    } finally {
      await fh.close();
    }
  }
}

export class DirectorySlotStore implements SlotStore {
  readonly stagingIsInPlace = false;
  readonly root: string;

  constructor(stateDir: string) {
    this.root = join(stateDir, 'slots');
  }

  async stage(slot: SlotId): Promise<SlotStaging> {
    const ref = `${slot}-${randomBytes(8).toString('hex')}`;
    const dir = join(this.root, ref);
    try {
      await mkdir(dir, { mode: 0o755 });
      await mkdir(join(dir, 'artifacts'));
      await mkdir(join(dir, 'signatures'));
    } catch (err) {
      await rm(dir, { recursive: true, force: true }).catch(() => undefined);
      throw fsFailure(err, `preparing slot ${slot}`);
    }
    return new DirectoryStaging(slot, ref, dir);
  }

  open(ref: string): SlotContent {
    if (!REF.test(ref)) throw new InstallError('STATE_CORRUPT', `slot reference ${JSON.stringify(ref)} is malformed`);
    return new DirectoryContent(ref, join(this.root, ref));
  }

  async sweep(keep: readonly string[]): Promise<string[]> {
    let names: string[];
    try {
      names = await readdir(this.root);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw err;
    }
    const removed: string[] = [];
    for (const name of names) {
      if (keep.includes(name)) continue;
      if (!REF.test(name) && !isTempName(name)) continue; // not ours: leave it
      await rm(join(this.root, name), { recursive: true, force: true });
      removed.push(name);
    }
    if (removed.length > 0) await fsyncDir(this.root);
    return removed;
  }
}
