/**
 * Raw tar pieces for tests, built with node-tar's Header and Pax classes, so
 * every hostile archive is a few lines: a symlink is
 *   entry({ path: 'artifacts/x', type: 'SymbolicLink', linkpath: '/etc/passwd' })
 * and a bundle with it is tarOf([...valid entries, that]).
 */
import { Header, Pax, type HeaderData } from 'tar';

export const BLOCK = 512;
export const FIXED_MTIME = new Date('2025-03-01T12:00:00Z');

export type HeaderFields = HeaderData & { path: string };

/** One 512-byte header block with a valid checksum. Fields default to a 0644 regular file. */
export function header(fields: HeaderFields): Buffer {
  const block = Buffer.alloc(BLOCK);
  new Header({ type: 'File', mode: 0o644, uid: 0, gid: 0, mtime: FIXED_MTIME, size: 0, ...fields }).encode(block);
  return block;
}

/** Zero bytes up to the next 512-byte boundary after `length` bytes. */
export function padding(length: number): Buffer {
  return Buffer.alloc((BLOCK - (length % BLOCK)) % BLOCK);
}

/** A pax record "<len> <key>=<value>\n". */
export function paxRecord(key: string, value: string): string {
  const body = ` ${key}=${value}\n`;
  let len = Buffer.byteLength(body) + 1;
  while (String(len).length + Buffer.byteLength(body) !== len) len += 1;
  return `${len}${body}`;
}

/** A pax extended header ('x') with the given raw body, padded. */
export function paxHeader(body: string | Buffer, name = 'PaxHeader/entry'): Buffer {
  const bytes = Buffer.isBuffer(body) ? body : Buffer.from(body, 'utf8');
  return Buffer.concat([header({ path: name, type: 'ExtendedHeader', size: bytes.length }), bytes, padding(bytes.length)]);
}

/**
 * A whole entry: header (with a pax header in front when node-tar says the
 * fields need one, e.g. paths over 100 bytes), data and padding.
 * `size` in fields overrides the header's size (for lying headers).
 */
export function entry(fields: HeaderFields, data: Buffer = Buffer.alloc(0)): Buffer {
  const h = new Header({ type: 'File', mode: 0o644, uid: 0, gid: 0, mtime: FIXED_MTIME, size: data.length, ...fields });
  const block = Buffer.alloc(BLOCK);
  const needPax = h.encode(block);
  const parts: Buffer[] = [];
  if (needPax) parts.push(new Pax({ path: fields.path, size: h.size ?? data.length, mtime: FIXED_MTIME }).encode());
  parts.push(block, data, padding(data.length));
  return Buffer.concat(parts);
}

/** A regular file entry. */
export function file(path: string, data: Buffer | string): Buffer {
  return entry({ path }, Buffer.isBuffer(data) ? data : Buffer.from(data));
}

/** The two zero blocks that end an archive, plus optional zero padding. */
export function endOfArchive(extraZeros = 0): Buffer {
  return Buffer.alloc(2 * BLOCK + extraZeros);
}

/** Entries followed by the end-of-archive blocks. */
export function tarOf(entries: readonly Buffer[], extraZeros = 0): Buffer {
  return Buffer.concat([...entries, endOfArchive(extraZeros)]);
}

/** Rewrites the checksum field of a header block after a test changed its bytes. */
export function fixChecksum(block: Buffer): Buffer {
  block.fill(0x20, 148, 156);
  let sum = 0;
  for (const b of block.subarray(0, BLOCK)) sum += b;
  block.write(sum.toString(8).padStart(6, '0') + '\0 ', 148, 8, 'latin1');
  return block;
}

/** A header block with an arbitrary typeflag byte (for types node-tar will not encode). */
export function headerWithTypeflag(fields: HeaderFields, typeflag: string): Buffer {
  const block = header(fields);
  block.write(typeflag, 156, 1, 'latin1');
  return fixChecksum(block);
}

/** Splits a buffer into chunks of `size` bytes (the last may be shorter). */
export function chunked(buf: Buffer, size: number): Buffer[] {
  const out: Buffer[] = [];
  for (let i = 0; i < buf.length; i += size) out.push(buf.subarray(i, i + size));
  return out;
}

/** An async iterable over the given chunks, like a Readable. */
export async function* streamOf(chunks: readonly Buffer[]): AsyncGenerator<Buffer> {
  for (const c of chunks) yield c;
}
