/**
 * The persistent offline queue: one file per message, in seq order.
 *
 *   <dir>/<seq, 16 digits>.<e|h>   e = event, h = health sample
 *
 * File layout: "GBQ1", u32 BE payload length, u32 BE CRC-32 of the payload,
 * then the payload: u16 BE topic length, topic (UTF-8), message body.
 *
 * append() writes `<name>.tmp`, fsyncs it, renames it into place and fsyncs
 * the directory (group commit: concurrent appends share one directory
 * fsync) before it resolves: what append() returned survives a crash.
 * remove() unlinks after the broker's PUBACK. The queue is bounded in bytes;
 * to make room it first thins health samples (every other one, oldest
 * first), then drops a new health sample, and only then drops the oldest
 * events. Every drop is counted in `drops.json` (persisted) until the
 * counts are taken for reporting. A file failing its CRC is moved to
 * `corrupt/` and counted. A daemon restart continues in seq order;
 * `last-seq` keeps the sequence increasing when the queue was empty.
 */
import { mkdir, open, readFile, readdir, rename, rm, stat, unlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { crc32 } from 'node:zlib';
import { GlassboxError } from '../errors.js';
import type { Logger } from '../log/logger.js';

export type QueueKind = 'event' | 'health';

export interface QueueEntry {
  readonly seq: number;
  readonly kind: QueueKind;
  readonly file: string;
  readonly bytes: number;
}

export interface DropCounts {
  readonly droppedEvents: number;
  readonly droppedHealth: number;
  readonly corrupt: number;
  readonly firstDroppedSeq: number | null;
  readonly lastDroppedSeq: number | null;
  /** When the first uncounted drop happened (RFC 3339), or null. */
  readonly since: string | null;
}

export interface QueueStats {
  readonly depth: number;
  readonly events: number;
  readonly health: number;
  readonly bytes: number;
  readonly maxBytes: number;
  readonly drops: DropCounts;
}

export interface DiskQueueOptions {
  readonly dir: string;
  readonly maxBytes: number;
  readonly log: Logger;
  readonly now: () => Date;
}

const MAGIC = Buffer.from('GBQ1', 'latin1');
const HEADER = 12;
const NAME = /^([0-9]{16})\.(e|h)$/;
const NO_DROPS: DropCounts = { droppedEvents: 0, droppedHealth: 0, corrupt: 0, firstDroppedSeq: null, lastDroppedSeq: null, since: null };

export function encodeRecord(topic: string, body: Buffer): Buffer {
  const t = Buffer.from(topic, 'utf8');
  if (t.length > 0xffff) throw new GlassboxError('QUEUE_RECORD_INVALID', 'topic too long');
  const payload = Buffer.concat([Buffer.from([t.length >> 8, t.length & 0xff]), t, body]);
  const head = Buffer.alloc(HEADER);
  MAGIC.copy(head, 0);
  head.writeUInt32BE(payload.length, 4);
  head.writeUInt32BE(crc32(payload), 8);
  return Buffer.concat([head, payload]);
}

/** Parses a record file's bytes; null when truncated, foreign or failing its CRC. */
export function decodeRecord(bytes: Buffer): { topic: string; body: Buffer } | null {
  if (bytes.length < HEADER + 2 || !bytes.subarray(0, 4).equals(MAGIC)) return null;
  const len = bytes.readUInt32BE(4);
  if (bytes.length !== HEADER + len) return null;
  const payload = bytes.subarray(HEADER);
  if (crc32(payload) !== bytes.readUInt32BE(8)) return null;
  const tlen = payload.readUInt16BE(0);
  if (2 + tlen > payload.length) return null;
  return { topic: payload.subarray(2, 2 + tlen).toString('utf8'), body: payload.subarray(2 + tlen) };
}

function fileName(seq: number, kind: QueueKind): string {
  return `${String(seq).padStart(16, '0')}.${kind === 'event' ? 'e' : 'h'}`;
}

export class DiskQueue {
  private readonly opts: DiskQueueOptions;
  private entries: QueueEntry[] = [];
  private totalBytes = 0;
  private nextSeq = 1;
  private drops: DropCounts = NO_DROPS;
  private chain: Promise<unknown> = Promise.resolve();
  private syncing: Promise<void> | null = null;
  private syncAgain = false;
  private opened = false;
  /** Highest seq whose rename is known durable (directory fsynced). */
  private durableSeq = 0;
  /** Highest seq renamed into place (appends are serialised, so renames happen in seq order). */
  private renamedSeq = 0;
  /** Entries handed to the publisher and not yet removed or released. */
  private readonly inflight = new Set<number>();

  constructor(opts: DiskQueueOptions) {
    this.opts = opts;
  }

  /** Creates the directory, drops half-written files, indexes what is queued. */
  async open(): Promise<void> {
    const { dir, log } = this.opts;
    await mkdir(dir, { recursive: true, mode: 0o700 });
    const names = await readdir(dir);
    const found: QueueEntry[] = [];
    for (const name of names) {
      if (name.endsWith('.tmp')) {
        await rm(join(dir, name), { force: true });
        continue;
      }
      const m = NAME.exec(name);
      if (!m || m[1] === undefined) continue;
      const st = await stat(join(dir, name));
      found.push({ seq: Number(m[1]), kind: m[2] === 'e' ? 'event' : 'health', file: name, bytes: st.size });
    }
    found.sort((a, b) => a.seq - b.seq);
    this.entries = found;
    this.totalBytes = found.reduce((n, e) => n + e.bytes, 0);
    let lastSeq = found.at(-1)?.seq ?? 0;
    try {
      const saved = Number((await readFile(join(dir, 'last-seq'), 'utf8')).trim());
      if (Number.isSafeInteger(saved) && saved > lastSeq) lastSeq = saved;
    } catch {
      /* absent: start from the files */
    }
    this.nextSeq = lastSeq + 1;
    this.durableSeq = lastSeq;
    this.renamedSeq = lastSeq;
    try {
      const d = JSON.parse(await readFile(join(dir, 'drops.json'), 'utf8')) as DropCounts;
      if (typeof d.droppedEvents === 'number') this.drops = { ...NO_DROPS, ...d };
    } catch {
      /* none recorded */
    }
    this.opened = true;
    log.info({ dir, depth: found.length, bytes: this.totalBytes, nextSeq: this.nextSeq }, 'offline queue opened');
  }

  stats(): QueueStats {
    let events = 0;
    for (const e of this.entries) if (e.kind === 'event') events++;
    return { depth: this.entries.length, events, health: this.entries.length - events, bytes: this.totalBytes, maxBytes: this.opts.maxBytes, drops: this.drops };
  }

  /** Largest single record accepted. */
  maxRecordBytes(): number {
    return Math.min(1024 * 1024, Math.floor(this.opts.maxBytes / 4));
  }

  /**
   * Persists one message. `build(seq)` makes the body once the sequence
   * number is known. Resolves once the record is durable; returns null when
   * a health sample had to be dropped for lack of room.
   */
  append(kind: QueueKind, topic: string, build: (seq: number) => Buffer): Promise<QueueEntry | null> {
    if (!this.opened) return Promise.reject(new GlassboxError('QUEUE_CLOSED', 'offline queue is not open'));
    const run = this.chain.then(() => this.appendLocked(kind, topic, build));
    this.chain = run.catch(() => undefined);
    return run.then(async (entry) => {
      if (entry !== null) await this.syncDir(entry.seq);
      return entry;
    });
  }

  private async appendLocked(kind: QueueKind, topic: string, build: (seq: number) => Buffer): Promise<QueueEntry | null> {
    const seq = this.nextSeq;
    const record = encodeRecord(topic, build(seq));
    if (record.length > this.maxRecordBytes()) {
      throw new GlassboxError('QUEUE_RECORD_TOO_LARGE', `message of ${record.length} bytes is over the queue's ${this.maxRecordBytes()}-byte record limit`);
    }
    const fits = await this.makeRoom(kind, record.length);
    if (!fits) {
      this.countDrop('health', seq);
      await this.saveDrops();
      this.nextSeq = seq + 1;
      return null;
    }
    this.nextSeq = seq + 1;
    const name = fileName(seq, kind);
    const tmp = join(this.opts.dir, `${name}.tmp`);
    const fh = await open(tmp, 'wx', 0o600);
    try {
      await fh.writeFile(record);
      await fh.sync();
    } finally {
      await fh.close();
    }
    await rename(tmp, join(this.opts.dir, name));
    this.renamedSeq = seq;
    const entry: QueueEntry = { seq, kind, file: name, bytes: record.length };
    this.entries.push(entry);
    this.totalBytes += record.length;
    return entry;
  }

  /** Frees space for `need` bytes. false only when a health sample should itself be dropped. */
  private async makeRoom(kind: QueueKind, need: number): Promise<boolean> {
    const max = this.opts.maxBytes;
    if (this.totalBytes + need <= max) return true;
    let dropped = false;
    // 1. Thin health samples: every other one, oldest first, pass after pass.
    while (this.totalBytes + need > max) {
      const health = this.entries.filter((e) => e.kind === 'health' && !this.inflight.has(e.seq));
      if (health.length === 0) break;
      for (let i = 0; i < health.length && this.totalBytes + need > max; i += 2) {
        const h = health[i];
        if (h === undefined) break;
        await this.discard(h);
        this.countDrop('health', h.seq);
        dropped = true;
      }
    }
    if (this.totalBytes + need <= max) {
      if (dropped) await this.saveDrops();
      return true;
    }
    // 2. A new health sample does not push out events.
    if (kind === 'health') {
      if (dropped) await this.saveDrops();
      return false;
    }
    // 3. Oldest events go last of all, each one counted.
    for (const e of [...this.entries]) {
      if (this.totalBytes + need <= max) break;
      if (this.inflight.has(e.seq)) continue;
      await this.discard(e);
      this.countDrop(e.kind, e.seq);
      dropped = true;
    }
    if (dropped) await this.saveDrops();
    if (this.totalBytes + need > max) throw new GlassboxError('QUEUE_FULL', 'offline queue full of in-flight messages');
    this.opts.log.warn({ drops: this.drops }, 'offline queue full: dropped the oldest events');
    return true;
  }

  private countDrop(kind: QueueKind, seq: number): void {
    const d = this.drops;
    this.drops = {
      droppedEvents: d.droppedEvents + (kind === 'event' ? 1 : 0),
      droppedHealth: d.droppedHealth + (kind === 'health' ? 1 : 0),
      corrupt: d.corrupt,
      firstDroppedSeq: d.firstDroppedSeq === null ? seq : Math.min(d.firstDroppedSeq, seq),
      lastDroppedSeq: d.lastDroppedSeq === null ? seq : Math.max(d.lastDroppedSeq, seq),
      since: d.since ?? this.opts.now().toISOString(),
    };
  }

  private async saveDrops(): Promise<void> {
    const tmp = join(this.opts.dir, 'drops.json.tmp');
    await writeFile(tmp, JSON.stringify(this.drops));
    await rename(tmp, join(this.opts.dir, 'drops.json'));
  }

  private async discard(e: QueueEntry): Promise<void> {
    const i = this.entries.indexOf(e);
    if (i < 0) return;
    this.entries.splice(i, 1);
    this.totalBytes -= e.bytes;
    await rm(join(this.opts.dir, e.file), { force: true });
  }

  /** Group commit of renames: every append waits for one directory fsync that started after it. */
  private async syncDir(seq: number): Promise<void> {
    while (this.durableSeq < seq) {
      if (this.syncing === null) {
        const upTo = this.renamedSeq;
        this.syncing = (async () => {
          const dh = await open(this.opts.dir, 'r');
          try {
            await dh.sync();
          } finally {
            await dh.close();
          }
          if (upTo > this.durableSeq) this.durableSeq = upTo;
        })().finally(() => {
          this.syncing = null;
        });
      }
      await this.syncing;
    }
  }

  /** The oldest durable entries not in flight, up to n, in seq order. Marks them in flight. */
  take(n: number): QueueEntry[] {
    const out: QueueEntry[] = [];
    for (const e of this.entries) {
      if (out.length >= n) break;
      if (e.seq > this.durableSeq) break;
      if (this.inflight.has(e.seq)) continue;
      this.inflight.add(e.seq);
      out.push(e);
    }
    return out;
  }

  /** Puts every in-flight entry back (connection lost): they go out again, in order. */
  releaseAll(): void {
    this.inflight.clear();
  }

  /** Puts one in-flight entry back. */
  release(e: QueueEntry): void {
    this.inflight.delete(e.seq);
  }

  /** Reads a queued message; a corrupt file is quarantined, counted and null returned. */
  async read(e: QueueEntry): Promise<{ topic: string; body: Buffer } | null> {
    const path = join(this.opts.dir, e.file);
    let bytes: Buffer;
    try {
      bytes = await readFile(path);
    } catch (err) {
      this.opts.log.error({ file: e.file, err }, 'queued message unreadable');
      bytes = Buffer.alloc(0);
    }
    const rec = decodeRecord(bytes);
    if (rec !== null) return rec;
    this.opts.log.error({ file: e.file, bytes: bytes.length }, 'queued message failed its checksum: quarantined');
    await mkdir(join(this.opts.dir, 'corrupt'), { recursive: true });
    await rename(path, join(this.opts.dir, 'corrupt', e.file)).catch(() => rm(path, { force: true }));
    this.forget(e);
    this.drops = { ...this.drops, corrupt: this.drops.corrupt + 1, since: this.drops.since ?? this.opts.now().toISOString() };
    await this.saveDrops();
    return null;
  }

  private forget(e: QueueEntry): void {
    const i = this.entries.indexOf(e);
    if (i >= 0) {
      this.entries.splice(i, 1);
      this.totalBytes -= e.bytes;
    }
    this.inflight.delete(e.seq);
  }

  /** A message the broker will never accept: delete it and count it as dropped. */
  async drop(e: QueueEntry): Promise<void> {
    await this.remove(e);
    this.countDrop(e.kind, e.seq);
    await this.saveDrops();
  }

  /** The broker acknowledged the message: delete it. */
  async remove(e: QueueEntry): Promise<void> {
    const i = this.entries.indexOf(e);
    if (i < 0) {
      this.inflight.delete(e.seq);
      return;
    }
    // It stays in flight until forget() takes it out of the index: released any earlier, a pump
    // during the last-seq write below took it again and the broker got it twice (bench:idle saw
    // daemon.started twice, same id and seq, on one connection).
    if (this.entries.length === 1) {
      // Keep the sequence increasing across an empty queue and a restart.
      await writeFile(join(this.opts.dir, 'last-seq.tmp'), String(this.nextSeq - 1));
      await rename(join(this.opts.dir, 'last-seq.tmp'), join(this.opts.dir, 'last-seq'));
    }
    this.forget(e);
    await unlink(join(this.opts.dir, e.file)).catch((err: NodeJS.ErrnoException) => {
      if (err.code !== 'ENOENT') throw err;
    });
  }

  /** Drop counts not yet reported; null when there are none. */
  pendingDrops(): DropCounts | null {
    const d = this.drops;
    return d.droppedEvents + d.droppedHealth + d.corrupt > 0 ? d : null;
  }

  /** The given counts were reported: subtract them (drops after the snapshot stay counted). */
  async markReported(reported: DropCounts): Promise<void> {
    const d = this.drops;
    const left = {
      droppedEvents: d.droppedEvents - reported.droppedEvents,
      droppedHealth: d.droppedHealth - reported.droppedHealth,
      corrupt: d.corrupt - reported.corrupt,
    };
    this.drops = left.droppedEvents + left.droppedHealth + left.corrupt === 0 ? NO_DROPS : { ...d, ...left };
    await this.saveDrops();
  }

  /** Waits for appends in progress (used at shutdown). */
  async flush(): Promise<void> {
    await this.chain;
    if (this.syncing) await this.syncing;
  }
}
