import { describe, expect, test } from 'vitest';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { gzipSync } from 'node:zlib';
import { readFileChunks, readFileChunksInline, readTar, SourceReadError, type TarEvent } from '../../src/bundle/reader.js';
import { IoError } from '../../src/errors.js';
import {
  chunked,
  entry,
  file,
  fixChecksum,
  header,
  headerWithTypeflag,
  paxHeader,
  paxRecord,
  streamOf,
  tarOf,
  BLOCK,
} from '../helpers/bundle.js';

interface Summary {
  entries: Array<{ path: string; type: string; size: number; data: string }>;
  end: 'done' | 'format' | 'none';
  reason?: string;
  sawEndOfArchive: boolean;
}

async function summarize(source: AsyncIterable<Buffer>): Promise<Summary> {
  const out: Summary = { entries: [], end: 'none', sawEndOfArchive: false };
  let current: { path: string; type: string; size: number; parts: Buffer[] } | undefined;
  for await (const ev of readTar(source) as AsyncIterable<TarEvent>) {
    switch (ev.kind) {
      case 'entry':
        current = { path: ev.path, type: ev.type, size: ev.size, parts: [] };
        break;
      case 'data':
        current?.parts.push(Buffer.from(ev.chunk));
        break;
      case 'entry-end':
        if (current) out.entries.push({ path: current.path, type: current.type, size: current.size, data: Buffer.concat(current.parts).toString('latin1') });
        current = undefined;
        break;
      case 'end-of-archive':
        out.sawEndOfArchive = true;
        break;
      case 'done':
        out.end = 'done';
        break;
      case 'format':
        out.end = 'format';
        out.reason = ev.reason;
        break;
    }
  }
  return out;
}

const read = (buf: Buffer, chunk = 4096): Promise<Summary> => summarize(streamOf(chunked(buf, chunk)));

async function expectFormat(buf: Buffer, words: string): Promise<void> {
  for (const size of [1, 511, 512, 513, 1 << 20]) {
    const s = await read(buf, size);
    expect(s.end, `chunk size ${size}`).toBe('format');
    expect(s.reason).toContain(words);
  }
}

const small = tarOf([file('manifest.json', '{"a":1}'), file('artifacts/x', 'hello'), file('artifacts/empty', '')]);

describe('well-formed archives', () => {
  test('entries, data and the end, whatever the chunk size', async () => {
    for (const size of [1, 7, 511, 512, 513, 1024, 1 << 20]) {
      const s = await read(small, size);
      expect(s).toEqual({
        entries: [
          { path: 'manifest.json', type: '0', size: 7, data: '{"a":1}' },
          { path: 'artifacts/x', type: '0', size: 5, data: 'hello' },
          { path: 'artifacts/empty', type: '0', size: 0, data: '' },
        ],
        end: 'done',
        sawEndOfArchive: true,
      });
    }
  });

  test('a long name in a pax header is taken whole (not prefixed twice)', async () => {
    const name = 'artifacts/' + 'n'.repeat(128);
    const s = await read(tarOf([entry({ path: name }, Buffer.from('abc'))]));
    expect(s.end).toBe('done');
    expect(s.entries[0]).toMatchObject({ path: name, size: 3, data: 'abc' });
  });

  test('pax size overrides the header size', async () => {
    const pax = paxHeader(paxRecord('size', '3') + paxRecord('mtime', '1740830400.5') + paxRecord('atime', '1') + paxRecord('ctime', '2'));
    const s = await read(Buffer.concat([pax, header({ path: 'artifacts/a', size: 0 }), Buffer.from('xyz'), Buffer.alloc(509), Buffer.alloc(1024)]));
    expect(s).toMatchObject({ end: 'done', entries: [{ path: 'artifacts/a', size: 3, data: 'xyz' }] });
  });

  test('zero padding to a record size after the end blocks is accepted', async () => {
    expect((await read(tarOf([file('manifest.json', 'x')], 10240 - 3 * BLOCK - 1024))).end).toBe('done');
    expect((await read(tarOf([file('manifest.json', 'x')], 1024 * 1024))).end).toBe('done');
  });

  test('other entry types are passed on with their typeflag (the layout refuses them)', async () => {
    const s = await read(
      tarOf([
        header({ path: 'artifacts/l', type: 'SymbolicLink', linkpath: '/etc/passwd' }),
        header({ path: 'artifacts/d/', type: 'Directory' }),
        headerWithTypeflag({ path: 'artifacts/s' }, 'S'),
        headerWithTypeflag({ path: 'artifacts/z' }, 'Z'),
      ]),
    );
    expect(s.entries.map((e) => e.type)).toEqual(['2', '5', 'S', 'Unsupported']);
  });
});

describe('not tar', () => {
  test('empty input', () => expectFormat(Buffer.alloc(0), 'empty input'));
  test('random bytes', () => expectFormat(randomBytes(4096), 'not a POSIX tar archive'));
  test('JSON text', () => expectFormat(Buffer.from('{"schema":"glassbox.manifest/v1"}'.padEnd(2048)), 'not a POSIX tar archive'));
  test('a gzip-compressed tar', () => expectFormat(gzipSync(tarOf([file('artifacts/r', randomBytes(3000))])), 'gzip'));
  test('a short gzip-compressed tar', () => expectFormat(gzipSync(small), 'gzip'));
  test('shorter than one block', () => expectFormat(Buffer.from('hello'), 'not a tar archive: only 5 bytes'));
  test('GNU-format tar (magic "ustar  ")', async () => {
    const t = Buffer.from(small);
    t.write('ustar  \0', 257, 8, 'latin1');
    fixChecksum(t.subarray(0, BLOCK));
    await expectFormat(t, 'GNU tar format');
  });
});

describe('corrupt headers', () => {
  test('bad checksum', async () => {
    const t = Buffer.from(small);
    t[0] = t[0]! ^ 0x01; // 'manifest.json' → 'lanifest.json', checksum now wrong
    await expectFormat(t, 'bad checksum');
  });

  test('bad checksum in a later header', async () => {
    const t = Buffer.from(small);
    t[2 * BLOCK + 10] = t[2 * BLOCK + 10]! ^ 0x20;
    await expectFormat(t, 'offset 1024 has a bad checksum');
  });

  test('the checksum field in either writer order is accepted: digits, NUL, space (GNU tar) and digits, space, NUL (node-tar)', async () => {
    expect(small.subarray(154, 156).toString('latin1')).toBe(' \0'); // node-tar, as the release tooling writes it
    const gnu = Buffer.from(small);
    fixChecksum(gnu.subarray(0, BLOCK));
    expect(gnu.subarray(154, 156).toString('latin1')).toBe('\0 ');
    expect((await read(gnu)).end).toBe('done');
    expect((await read(small)).end).toBe('done');
  });

  test('any change to the checksum field is refused, also where the parser would read the same number', async () => {
    // The checksum does not cover its own field, and node-tar reads only its digits: a NUL or space turned into
    // something else, or a leading zero turned into a space, would leave the same number.
    for (let at = 148; at < 156; at++) {
      for (const xor of [0x01, 0x10, 0x20, 0x30, 0x80, 0xff]) {
        const t = Buffer.from(small);
        t[at] = t[at]! ^ xor;
        const r = await read(t);
        expect(r.end, `byte ${at} ^ 0x${xor.toString(16)}`).not.toBe('done');
      }
    }
    const leadingSpace = Buffer.from(small);
    expect(leadingSpace[148]).toBe(0x30);
    leadingSpace[148] = 0x20; // " 12345 \0": the same value to a lenient parser
    await expectFormat(leadingSpace, 'checksum field not in the form tar writers use');
  });

  test('a misaligned or garbage block where a header should be', async () => {
    const t = Buffer.concat([file('manifest.json', 'x'), randomBytes(BLOCK), Buffer.alloc(1024)]);
    await expectFormat(t, 'not a ustar header');
  });

  test('a NUL inside the name field', async () => {
    const block = header({ path: 'artifacts/a' });
    block.write('\0../../etc/passwd', 11, 'latin1');
    await expectFormat(tarOf([fixChecksum(block)]), 'NUL byte inside its path');
  });

  test('an undecodable size field', async () => {
    const block = header({ path: 'artifacts/a', size: 5 });
    block.write('zzzzzzzzzzz\0', 124, 12, 'latin1');
    await expectFormat(tarOf([fixChecksum(block)]), 'invalid size');
  });
});

describe('truncation', () => {
  test('inside a header', () => expectFormat(small.subarray(0, 1024 + 100), 'inside a header block at offset 1024'));
  test('inside data', () => expectFormat(small.subarray(0, 1536 + 2), 'inside the data of entry "artifacts/x" (3 bytes missing)'));
  test('inside padding', () => expectFormat(small.subarray(0, 1536 + 5 + 10), 'inside the padding after entry "artifacts/x"'));
  test('after the last entry, without end blocks', () => expectFormat(small.subarray(0, small.length - 1024), 'without the end-of-archive blocks'));
  test('after one end block', () => expectFormat(small.subarray(0, small.length - 512), 'after one of the two'));
  test('after a pax header', () => expectFormat(paxHeader(paxRecord('path', 'artifacts/a')), 'after the pax extended header'));
  test('inside a pax header body', () => expectFormat(paxHeader(paxRecord('path', 'artifacts/a')).subarray(0, 520), 'inside the pax extended header'));
});

describe('after the end of the archive', () => {
  test('trailing garbage', () => expectFormat(Buffer.concat([small, Buffer.from('garbage')]), 'trailing data'));
  test('garbage after zero padding', () => expectFormat(Buffer.concat([small, Buffer.alloc(5000), Buffer.from('x')]), `offset ${small.length + 5000}`));
  test('a whole second archive', () => expectFormat(Buffer.concat([small, small]), 'trailing data'));
  test('zero padding that is not whole blocks', () => expectFormat(Buffer.concat([small, Buffer.alloc(100)]), 'not a whole number'));
  test('more than 1 MiB of zeros', () => expectFormat(Buffer.concat([small, Buffer.alloc(1024 * 1024 + BLOCK)]), 'more than 1048576'));
  test('a lone zero block followed by another entry', () =>
    expectFormat(Buffer.concat([file('manifest.json', 'x'), Buffer.alloc(BLOCK), file('artifacts/x', 'y'), Buffer.alloc(1024)]), 'lone zero block'));
  test('non-zero padding after data', async () => {
    const t = Buffer.from(small);
    t[512 + 100] = 1; // inside the manifest's padding
    await expectFormat(t, 'non-zero padding after entry "manifest.json"');
  });
});

describe('pax extended headers', () => {
  const fileAfter = Buffer.concat([header({ path: 'artifacts/a', size: 0 })]);
  const withPax = (body: string | Buffer, next: Buffer = fileAfter): Buffer => tarOf([paxHeader(body), next]);

  test.each([
    ['GNU.sparse.major', '1'],
    ['GNU.sparse.size', '100'],
    ['hdrcharset', 'BINARY'],
    ['linkpath', '/etc/passwd'],
    ['SCHILY.xattr.security.capability', 'x'],
    ['LIBARCHIVE.xattr.user.x', 'x'],
    ['charset', 'ISO-IR 10646 2000 UTF-8'],
  ])('key %s is refused', (key, value) => expectFormat(withPax(paxRecord(key, value)), `pax key "${key}" is not allowed`));

  test('a key twice', () => expectFormat(withPax(paxRecord('path', 'artifacts/a') + paxRecord('path', 'artifacts/b')), 'appears twice'));
  test('a record with a wrong length', () => expectFormat(withPax('99 path=artifacts/a\n'), 'malformed pax record'));
  test('a record without "="', () => expectFormat(withPax('9 pathxx\n'), 'malformed pax record'));
  test('a record with a leading-zero length', () => expectFormat(withPax('021 path=artifacts/a\n'), 'malformed pax record'));
  test('a NUL in a pax path', () => expectFormat(withPax(paxRecord('path', 'artifacts/a\0../../x')), 'malformed'));
  test('a non-numeric pax size', () => expectFormat(withPax(paxRecord('size', '1e3')), 'malformed'));
  test('invalid UTF-8', () => expectFormat(withPax(Buffer.concat([Buffer.from('17 path=artifacts/'), Buffer.from([0xff, 0x0a])])), 'UTF-8'));
  test('over 64 KiB', () => expectFormat(withPax(paxRecord('comment', 'c'.repeat(70000))), 'over 65536'));
  test('two in a row', () => expectFormat(tarOf([paxHeader(paxRecord('path', 'a')), paxHeader(paxRecord('path', 'b')), fileAfter]), 'two pax extended headers'));
  test('followed by a global header', () =>
    expectFormat(withPax(paxRecord('path', 'artifacts/a'), header({ path: 'g', type: 'GlobalExtendedHeader' })), 'not followed by the header it describes'));
  test('followed by a GNU long name', () =>
    expectFormat(withPax(paxRecord('path', 'artifacts/a'), header({ path: 'l', type: 'NextFileHasLongPath' })), 'not followed by the header it describes'));
  test('followed by the end of the archive', () => expectFormat(tarOf([paxHeader(paxRecord('path', 'artifacts/a'))]), 'followed by the end of the archive'));
});

describe('the source', () => {
  test('a failing source is an IoError, not a format fault', async () => {
    async function* failing(): AsyncGenerator<Buffer> {
      yield small.subarray(0, 1000);
      throw new Error('EIO: disk on fire');
    }
    await expect(summarize(failing())).rejects.toBeInstanceOf(SourceReadError);
    await expect(summarize(failing())).rejects.toBeInstanceOf(IoError);
  });

  test('stopping early stops the source', async () => {
    let closed = false;
    let pulled = 0;
    async function* endless(): AsyncGenerator<Buffer> {
      try {
        yield small.subarray(0, 1536);
        for (;;) {
          pulled += 1;
          yield Buffer.alloc(65536, 0x41);
        }
      } finally {
        closed = true;
      }
    }
    const it = readTar(endless());
    for await (const ev of it) if (ev.kind === 'entry' && ev.path === 'artifacts/x') break;
    expect(closed).toBe(true);
    expect(pulled).toBeLessThanOrEqual(1);
  });

  test('strings are refused (a Readable with an encoding)', async () => {
    async function* strings(): AsyncGenerator<string> {
      yield 'abc';
    }
    await expect(summarize(strings() as unknown as AsyncIterable<Buffer>)).rejects.toThrow(/strings/);
  });

  for (const [name, reader] of [
    ['readFileChunks (thread pool, double-buffered)', readFileChunks],
    ['readFileChunksInline (on the calling thread)', readFileChunksInline],
  ] as const) {
    test(`${name} yields the file exactly, nothing for an empty file, and IoError for what it cannot read`, async () => {
      const dir = await mkdtemp(join(tmpdir(), 'gbx-reader-'));
      try {
        const data = randomBytes(100_003);
        const path = join(dir, 'f');
        await writeFile(path, data);
        for (const size of [4096, 100_003, 1 << 20]) {
          const parts: Buffer[] = [];
          for await (const c of reader(path, size)) parts.push(Buffer.from(c));
          expect(Buffer.concat(parts).equals(data)).toBe(true);
        }
        const empty = join(dir, 'empty');
        await writeFile(empty, '');
        const parts: Buffer[] = [];
        for await (const c of reader(empty)) parts.push(c);
        expect(parts).toEqual([]);
        for (const bad of [join(dir, 'absent'), dir]) {
          await expect(async () => {
            for await (const c of reader(bad)) void c;
          }, bad).rejects.toBeInstanceOf(IoError);
        }
      } finally {
        await rm(dir, { recursive: true, force: true });
      }
    });
  }

  test('readFileChunksInline lets the event loop run between reads', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'gbx-reader-'));
    try {
      const path = join(dir, 'f');
      await writeFile(path, randomBytes(100_003));
      // With a yield every 8 KiB, an immediate queued before reading runs before the read ends.
      let ran = false;
      setImmediate(() => (ran = true));
      let seenBeforeEnd = false;
      for await (const c of readFileChunksInline(path, 4096, 8192)) {
        void c;
        seenBeforeEnd ||= ran;
      }
      expect(seenBeforeEnd).toBe(true);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
