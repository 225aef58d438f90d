import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { canonicalBytes, canonicalJson, checkCanonical, CANONICAL_MAX_DEPTH } from '../../src/manifest/canonical.js';

const reject = (text: string | Buffer): string => {
  const r = checkCanonical(typeof text === 'string' ? Buffer.from(text, 'utf8') : text);
  if (r.ok) throw new Error(`accepted ${JSON.stringify(String(text))}`);
  return r.reason;
};

describe('canonicalJson (RFC 8785)', () => {
  it('sorts keys by UTF-16 code units, at every level', () => {
    expect(canonicalJson({ b: 1, a: { d: [3, { z: 1, y: 2 }], c: null }, A: true })).toBe('{"A":true,"a":{"c":null,"d":[3,{"y":2,"z":1}]},"b":1}');
    // U+E000 sorts before U+1F600 (surrogate pair D83D...) in UTF-16 order, after it in code point order.
    expect(canonicalJson({ '\u{1F600}': 1, '\uE000': 2 })).toBe('{"\u{1F600}":1,"\uE000":2}');
  });

  it('writes numbers in ECMAScript shortest form', () => {
    expect(canonicalJson([1.0, 1e2, -0, 0.1, 1e21, 1e-7, 123456789012345680000])).toBe('[1,100,0,0.1,1e+21,1e-7,123456789012345680000]');
  });

  it('writes strings with minimal escapes', () => {
    expect(canonicalJson('A/\u0001\u007f"\\é\n')).toBe('"A/\\u0001\u007f\\"\\\\é\\n"');
  });

  it('drops object members that are undefined', () => {
    expect(canonicalJson({ a: 1, b: undefined })).toBe('{"a":1}');
  });

  it('refuses what is not JSON, naming the path', () => {
    expect(() => canonicalJson({ a: [1, Number.NaN] })).toThrow('/a/1: number NaN is not allowed');
    expect(() => canonicalJson({ a: Infinity })).toThrow('/a: number Infinity');
    expect(() => canonicalJson([undefined])).toThrow('/0: undefined is not a JSON value');
    expect(() => canonicalJson({ f: () => 1 })).toThrow('/f: function');
    expect(() => canonicalJson({ n: 1n })).toThrow('/n: bigint');
    expect(() => canonicalJson({ d: new Date(0) })).toThrow('/d: only plain objects and arrays are JSON (found Date)');
    expect(() => canonicalJson({ 'a/b': { s: 'x\uD800' } })).toThrow('/a~1b/s: string has a lone surrogate');
    expect(() => canonicalJson(undefined)).toThrow();
  });

  it(`refuses nesting deeper than ${CANONICAL_MAX_DEPTH}`, () => {
    let v: unknown = 1;
    for (let i = 0; i < CANONICAL_MAX_DEPTH; i++) v = [v];
    expect(canonicalJson(v)).toHaveLength(2 * CANONICAL_MAX_DEPTH + 1);
    expect(() => canonicalJson([v])).toThrow('nested deeper');
  });

  it('canonicalBytes is the UTF-8 of canonicalJson', () => {
    expect(canonicalBytes({ é: 'ü' })).toEqual(Buffer.from('{"é":"ü"}', 'utf8'));
  });
});

describe('checkCanonical', () => {
  it('accepts canonical bytes and returns the value', () => {
    expect(checkCanonical(Buffer.from('{"a":[1,"x",null,true],"b":{}}'))).toEqual({ ok: true, value: { a: [1, 'x', null, true], b: {} } });
  });

  it('rejects a UTF-8 byte-order mark', () => {
    expect(reject(Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from('{}')]))).toBe('starts with a UTF-8 byte-order mark');
  });

  it('rejects invalid UTF-8, naming the byte', () => {
    expect(reject(Buffer.from([0x7b, 0x22, 0x61, 0x22, 0x3a, 0x22, 0xff, 0x22, 0x7d]))).toBe('not valid UTF-8 (first bad sequence at byte 6)');
    // overlong "/" and a UTF-8-encoded surrogate
    expect(reject(Buffer.from([0x22, 0xc0, 0xaf, 0x22]))).toContain('not valid UTF-8 (first bad sequence at byte 1)');
    expect(reject(Buffer.from([0x22, 0x41, 0xed, 0xa0, 0x80, 0x22]))).toContain('not valid UTF-8 (first bad sequence at byte 2)');
    expect(reject(Buffer.from([0x22, 0xe2, 0x82]))).toContain('not valid UTF-8 (first bad sequence at byte 1)');
  });

  it('rejects non-JSON', () => {
    expect(reject('{a:1}')).toMatch(/^not JSON: /);
    expect(reject('')).toMatch(/^not JSON: /);
    expect(reject('{"a":1}{"b":2}')).toMatch(/^not JSON: /);
  });

  it('rejects whitespace', () => {
    expect(reject('{"a": 1}')).toBe('not canonical (RFC 8785): first difference at byte 5: found " 1}", canonical form has "1}"');
    expect(reject('{"a":1}\n')).toBe('not canonical (RFC 8785): first difference at byte 7: found "\\n", canonical form has end of data');
    expect(reject(' {"a":1}')).toContain('first difference at byte 0');
  });

  it('rejects unsorted keys', () => {
    expect(reject('{"b":1,"a":2}')).toContain('first difference at byte 2');
  });

  it('rejects a duplicate key (JSON.parse keeps the last one)', () => {
    expect(reject('{"a":1,"a":2}')).toContain('first difference at byte 5');
    expect(reject('{"a":2,"a":2}')).toContain('first difference at byte 6');
  });

  it('rejects non-canonical number forms', () => {
    for (const n of ['1.0', '1e2', '1E2', '-0', '0.10', '0.0000001', '1e+2', '100000000000000000000000']) {
      expect(reject(`[${n}]`), n).toMatch(/^not canonical/);
    }
    expect(checkCanonical(Buffer.from('[1e+21,1e-7,100]')).ok).toBe(true);
  });

  it('rejects a number that does not survive a float64 round trip', () => {
    expect(reject('[9007199254740993]')).toMatch(/^not canonical/);
  });

  it('rejects non-minimal escapes', () => {
    expect(reject('["\\u0041"]')).toContain('first difference at byte 2');
    expect(reject('["\\/"]')).toMatch(/^not canonical/);
    expect(reject('["\\u00e9"]')).toMatch(/^not canonical/);
    expect(reject('["\u0001"]')).toMatch(/^not JSON/); // raw control characters are not JSON
  });

  it('rejects an escaped lone surrogate', () => {
    expect(reject('["\\ud800"]')).toBe('not canonical JSON: /0: string has a lone surrogate (not well-formed Unicode)');
  });

  it('rejects hostile nesting without exhausting the stack', () => {
    const deep = '['.repeat(100_000) + ']'.repeat(100_000);
    expect(reject(deep)).toMatch(/nested deeper than 64 levels|not JSON/);
  });

  it('handles 1 MiB in well under a second', () => {
    const big = canonicalBytes({ s: 'x'.repeat(1024 * 1024 - 8) });
    expect(big.length).toBe(1024 * 1024);
    const t0 = performance.now();
    expect(checkCanonical(big).ok).toBe(true);
    expect(performance.now() - t0).toBeLessThan(1000);
  });

  describe('properties', () => {
    const json = fc.jsonValue({ maxDepth: 6, stringUnit: 'grapheme' });

    it('canonicalJson is idempotent through JSON.parse', () => {
      fc.assert(fc.property(json, (x) => canonicalJson(JSON.parse(canonicalJson(x))) === canonicalJson(x)));
    });

    it('accepts every canonical output and returns an equal value', () => {
      fc.assert(
        fc.property(json, (x) => {
          const r = checkCanonical(canonicalBytes(x));
          return r.ok && canonicalJson(r.value) === canonicalJson(x);
        }),
      );
    });

    it('accepts pretty-printed JSON only when it equals the canonical form', () => {
      fc.assert(
        fc.property(json, fc.constantFrom(1, 2, '\t'), (x, space) => {
          const pretty = JSON.stringify(x, null, space);
          return checkCanonical(Buffer.from(pretty)).ok === (pretty === canonicalJson(x));
        }),
      );
    });

    it('rejects any object written with its keys in reverse order', () => {
      const obj = fc.dictionary(fc.string({ unit: 'grapheme' }), fc.jsonValue({ maxDepth: 2 }), { minKeys: 2 });
      fc.assert(
        fc.property(obj, (o) => {
          const keys = Object.keys(JSON.parse(canonicalJson(o)) as object);
          fc.pre(keys.length >= 2);
          const reversed = `{${[...keys].reverse().map((k) => `${JSON.stringify(k)}:${canonicalJson((o as Record<string, unknown>)[k])}`).join(',')}}`;
          return !checkCanonical(Buffer.from(reversed)).ok;
        }),
      );
    });
  });
});
