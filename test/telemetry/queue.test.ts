import { mkdtemp, readdir, rm, writeFile, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { pino } from 'pino';
import { DiskQueue, decodeRecord, encodeRecord } from '../../src/telemetry/queue.js';

const log = pino({ level: 'silent' });
const now = () => new Date('2025-01-01T00:00:00Z');
let dir: string;

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'gb-queue-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function openQueue(maxBytes = 1024 * 1024): Promise<DiskQueue> {
  const q = new DiskQueue({ dir, maxBytes, log, now });
  await q.open();
  return q;
}

const body = (s: string, pad = 0) => () => Buffer.from(s + 'x'.repeat(pad));

describe('record framing', () => {
  it('round-trips topic and body and rejects a flipped bit', () => {
    const rec = encodeRecord('glassbox/v1/d1/events', Buffer.from('{"a":1}'));
    expect(decodeRecord(rec)).toEqual({ topic: 'glassbox/v1/d1/events', body: Buffer.from('{"a":1}') });
    const bad = Buffer.from(rec);
    bad.writeUInt8(bad.readUInt8(bad.length - 1) ^ 1, bad.length - 1);
    expect(decodeRecord(bad)).toBeNull();
    expect(decodeRecord(rec.subarray(0, rec.length - 1))).toBeNull();
  });
});

describe('when messages are queued', () => {
  it('hands them out in order, once each, and deletes them on remove', async () => {
    const q = await openQueue();
    for (let i = 0; i < 5; i++) await q.append('event', 't/events', body(`e${i}`));
    const first = q.take(3);
    expect(first.map((e) => e.seq)).toEqual([1, 2, 3]);
    expect(q.take(3).map((e) => e.seq)).toEqual([4, 5]);
    for (const e of first) await q.remove(e);
    q.releaseAll();
    expect(q.take(10).map((e) => e.seq)).toEqual([4, 5]);
    expect((await readdir(dir)).filter((n) => /^\d{16}\./.test(n))).toHaveLength(2);
  });

  it('never hands out a message again while its removal is under way (the last one, whose removal writes last-seq first)', async () => {
    const q = await openQueue();
    await q.append('event', 't/events', body('only'));
    const [e] = q.take(10);
    expect(e?.seq).toBe(1);
    const removing = q.remove(e!);
    // A pump running while the removal awaits its writes (another append, a PUBACK) takes what is not in flight.
    expect(q.take(10)).toEqual([]);
    await new Promise((r) => setImmediate(r));
    expect(q.take(10)).toEqual([]);
    await removing;
    expect(q.take(10)).toEqual([]);
    expect(q.stats().depth).toBe(0);
  });

  it('survives a restart in order, and keeps the sequence increasing after the queue emptied', async () => {
    const q = await openQueue();
    await q.append('event', 't/events', body('a'));
    await q.append('health', 't/health', body('b'));
    const q2 = await openQueue();
    const got = q2.take(10);
    expect(got.map((e) => [e.seq, e.kind])).toEqual([[1, 'event'], [2, 'health']]);
    expect((await q2.read(got[0]!))?.body.toString()).toBe('a');
    for (const e of got) await q2.remove(e);
    const q3 = await openQueue();
    const e = await q3.append('event', 't/events', (seq) => Buffer.from(String(seq)));
    expect(e?.seq).toBe(3);
  });

  it('ignores and deletes a half-written file left by a crash', async () => {
    const q = await openQueue();
    await q.append('event', 't/events', body('a'));
    await writeFile(join(dir, '0000000000000002.e.tmp'), 'partial');
    const q2 = await openQueue();
    expect(q2.stats().depth).toBe(1);
    expect((await readdir(dir)).some((n) => n.endsWith('.tmp'))).toBe(false);
  });

  it('quarantines a file that fails its checksum and counts it', async () => {
    const q = await openQueue();
    await q.append('event', 't/events', body('a'));
    await q.append('event', 't/events', body('b'));
    const path = join(dir, '0000000000000001.e');
    const bytes = await readFile(path);
    bytes.writeUInt8(bytes.readUInt8(bytes.length - 1) ^ 0xff, bytes.length - 1);
    await writeFile(path, bytes);
    const [one, two] = q.take(2);
    expect(await q.read(one!)).toBeNull();
    expect((await q.read(two!))?.body.toString()).toBe('b');
    expect(q.stats().drops.corrupt).toBe(1);
    expect(await readdir(join(dir, 'corrupt'))).toEqual(['0000000000000001.e']);
  });
});

describe('when the queue is full', () => {
  // Each record is 12 header + 2 + topic(8) + body bytes.
  const rec = (n: number) => 12 + 2 + 8 + n;

  it('thins health samples first and keeps every event', async () => {
    const q = await openQueue(65536);
    const size = 1000;
    let i = 0;
    while (q.stats().bytes + rec(size) <= 65536) await q.append(i++ % 2 ? 'health' : 'event', 'topic/xx', body('', size));
    const before = q.stats();
    expect(before.events).toBeGreaterThan(0);
    for (let k = 0; k < 10; k++) await q.append('event', 'topic/xx', body('', size));
    const after = q.stats();
    expect(after.events).toBe(before.events + 10);
    expect(after.drops.droppedEvents).toBe(0);
    expect(after.drops.droppedHealth).toBeGreaterThanOrEqual(10);
    expect(after.bytes).toBeLessThanOrEqual(65536);
  });

  it('drops a new health sample rather than an event once only events remain', async () => {
    const q = await openQueue(65536);
    while (q.stats().bytes + rec(1000) <= 65536) await q.append('event', 'topic/xx', body('', 1000));
    const depth = q.stats().depth;
    expect(await q.append('health', 'topic/xx', body('', 1000))).toBeNull();
    expect(q.stats().depth).toBe(depth);
    expect(q.stats().drops.droppedHealth).toBe(1);
  });

  it('drops the oldest events last of all, counts them, and the count survives a restart until reported', async () => {
    const q = await openQueue(65536);
    while (q.stats().bytes + rec(1000) <= 65536) await q.append('event', 'topic/xx', body('', 1000));
    await q.append('event', 'topic/xx', body('', 1000));
    const s = q.stats();
    expect(s.drops.droppedEvents).toBe(1);
    expect(s.drops.firstDroppedSeq).toBe(1);
    expect(q.take(1)[0]?.seq).toBe(2);
    const q2 = await openQueue(65536);
    const pending = q2.pendingDrops();
    expect(pending?.droppedEvents).toBe(1);
    await q2.markReported(pending!);
    expect(q2.pendingDrops()).toBeNull();
    expect((await openQueue(65536)).pendingDrops()).toBeNull();
  });

  it('refuses a record larger than a quarter of the bound', async () => {
    const q = await openQueue(65536);
    await expect(q.append('event', 't', body('', 20000))).rejects.toMatchObject({ code: 'QUEUE_RECORD_TOO_LARGE' });
  });
});
