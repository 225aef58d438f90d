/**
 * Canonical JSON (RFC 8785, JSON Canonicalization Scheme) for manifests,
 * trust policies, SBOMs and provenance statements.
 *
 * Serialisation is done by the `canonicalize` package; this module adds the
 * input checks RFC 8785 asks for (only JSON values, finite numbers,
 * well-formed Unicode strings) and the byte-level acceptance test a verifier
 * needs: bytes are accepted only when they are exactly the canonical form of
 * the value they parse to. Pure: no I/O.
 */
import canonicalizeModule from 'canonicalize';

// canonicalize is CommonJS (module.exports = fn) but its typings declare an
// ES default export; under NodeNext the default import is module.exports.
type Serialize = (input: unknown) => string | undefined;
const canonicalize: Serialize =
  typeof canonicalizeModule === 'function' ? (canonicalizeModule as Serialize) : (canonicalizeModule as { default: Serialize }).default;

export type CanonicalCheck = { ok: true; value: unknown } | { ok: false; reason: string };

/** Deepest nesting accepted by checkCanonical and canonicalJson. Manifests nest 4 deep. */
export const CANONICAL_MAX_DEPTH = 64;

const utf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

/**
 * RFC 8785 serialisation of a JSON value. Object members whose value is
 * undefined are left out (as JSON.stringify does). Throws a TypeError naming
 * the JSON path of anything else that is not JSON: undefined as a value or
 * array item, functions, symbols,
 * bigints, non-finite numbers, strings with lone surrogates, objects other
 * than plain objects and arrays, or nesting deeper than CANONICAL_MAX_DEPTH.
 */
export function canonicalJson(value: unknown): string {
  assertJsonValue(value);
  const text = canonicalize(value);
  if (text === undefined) throw new TypeError('not a JSON value');
  return text;
}

/** canonicalJson as UTF-8 bytes: what gets hashed and signed. */
export function canonicalBytes(value: unknown): Buffer {
  return Buffer.from(canonicalJson(value), 'utf8');
}

/**
 * Accepts bytes only when they are UTF-8 without a byte-order mark, parse as
 * JSON, and are byte for byte the canonical serialisation of the parsed
 * value. That rejects insignificant whitespace, unsorted keys, duplicate
 * keys (JSON.parse keeps the last one, so the re-serialisation is shorter),
 * non-minimal escapes (`\u0041`, `\/`) and non-canonical numbers (`1.0`,
 * `1e2`, `-0`). The reason names what was wrong.
 */
export function checkCanonical(bytes: Buffer): CanonicalCheck {
  if (bytes.length >= 3 && bytes[0] === 0xef && bytes[1] === 0xbb && bytes[2] === 0xbf) {
    return { ok: false, reason: 'starts with a UTF-8 byte-order mark' };
  }
  let text: string;
  try {
    text = utf8.decode(bytes);
  } catch {
    return { ok: false, reason: `not valid UTF-8 (first bad sequence at byte ${firstInvalidUtf8(bytes)})` };
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    return { ok: false, reason: `not JSON: ${err instanceof Error ? err.message : String(err)}` };
  }
  let canonical: Buffer;
  try {
    canonical = canonicalBytes(value);
  } catch (err) {
    return { ok: false, reason: `not canonical JSON: ${err instanceof Error ? err.message : String(err)}` };
  }
  if (!canonical.equals(bytes)) {
    const at = firstDifference(canonical, bytes);
    return {
      ok: false,
      reason:
        `not canonical (RFC 8785): first difference at byte ${at}: ` +
        `found ${excerpt(bytes, at)}, canonical form has ${excerpt(canonical, at)}`,
    };
  }
  return { ok: true, value };
}

function firstDifference(a: Buffer, b: Buffer): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) if (a[i] !== b[i]) return i;
  return n;
}

function excerpt(bytes: Buffer, at: number): string {
  if (at >= bytes.length) return 'end of data';
  return JSON.stringify(bytes.subarray(at, at + 12).toString('utf8'));
}

/** Byte offset of the first invalid UTF-8 sequence (for the message only). */
function firstInvalidUtf8(bytes: Buffer): number {
  let i = 0;
  while (i < bytes.length) {
    const b = bytes[i] as number;
    let need: number;
    let min: number;
    if (b < 0x80) { i++; continue; }
    else if (b >= 0xc2 && b <= 0xdf) { need = 1; min = 0x80; }
    else if (b >= 0xe0 && b <= 0xef) { need = 2; min = 0x800; }
    else if (b >= 0xf0 && b <= 0xf4) { need = 3; min = 0x10000; }
    else return i;
    let cp = b & (0x3f >> need);
    for (let k = 1; k <= need; k++) {
      const c = bytes[i + k];
      if (c === undefined || (c & 0xc0) !== 0x80) return i;
      cp = (cp << 6) | (c & 0x3f);
    }
    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return i;
    i += need + 1;
  }
  return i;
}

const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

/** Walks the value without recursion so hostile nesting cannot exhaust the stack. */
function assertJsonValue(root: unknown): void {
  const stack: Array<{ value: unknown; path: string; depth: number }> = [{ value: root, path: '', depth: 0 }];
  while (stack.length > 0) {
    const { value, path, depth } = stack.pop()!;
    const where = path === '' ? '/' : path;
    switch (typeof value) {
      case 'string':
        if (LONE_SURROGATE.test(value)) throw new TypeError(`${where}: string has a lone surrogate (not well-formed Unicode)`);
        continue;
      case 'number':
        if (!Number.isFinite(value)) throw new TypeError(`${where}: number ${value} is not allowed in JSON`);
        continue;
      case 'boolean':
        continue;
      case 'object':
        break;
      default:
        throw new TypeError(`${where}: ${typeof value} is not a JSON value`);
    }
    if (value === null) continue;
    if (depth >= CANONICAL_MAX_DEPTH) throw new TypeError(`${where}: nested deeper than ${CANONICAL_MAX_DEPTH} levels`);
    if (Array.isArray(value)) {
      value.forEach((item, i) => stack.push({ value: item, path: `${path}/${i}`, depth: depth + 1 }));
      continue;
    }
    const proto = Object.getPrototypeOf(value) as unknown;
    if (proto !== Object.prototype && proto !== null) {
      throw new TypeError(`${where}: only plain objects and arrays are JSON (found ${describeObject(value)})`);
    }
    for (const [key, item] of Object.entries(value)) {
      if (item === undefined) continue; // dropped, as JSON.stringify and canonicalize do
      if (LONE_SURROGATE.test(key)) throw new TypeError(`${where}: key has a lone surrogate (not well-formed Unicode)`);
      stack.push({ value: item, path: `${path}/${escapePointer(key)}`, depth: depth + 1 });
    }
  }
}

function describeObject(value: object): string {
  const name = (value as { constructor?: { name?: unknown } }).constructor?.name;
  return typeof name === 'string' ? name : 'a non-plain object';
}

/** RFC 6901 JSON Pointer escaping of one reference token. */
export function escapePointer(token: string): string {
  return token.replace(/~/g, '~0').replace(/\//g, '~1');
}
