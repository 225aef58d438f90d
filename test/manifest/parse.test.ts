import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { BundleRejected } from '../../src/bundle/codes.js';
import { canonicalBytes } from '../../src/manifest/canonical.js';
import { ManifestInvalid, manifestSha256, MESSAGE_MAX_PROBLEMS, parseManifest } from '../../src/manifest/parse.js';
import { MANIFEST_MAX_BYTES } from '../../src/manifest/types.js';
import { validManifest } from './fixtures.js';

function rejection(bytes: Buffer): ManifestInvalid {
  try {
    parseManifest(bytes);
  } catch (err) {
    expect(err).toBeInstanceOf(BundleRejected);
    expect(err).toBeInstanceOf(ManifestInvalid);
    expect((err as BundleRejected).code).toBe('MANIFEST_INVALID');
    expect((err as BundleRejected).exitCode).toBe(1);
    return err as ManifestInvalid;
  }
  throw new Error('manifest was accepted');
}

describe('parseManifest', () => {
  it('returns the checked manifest, deeply frozen', () => {
    const m = parseManifest(canonicalBytes(validManifest()));
    expect(m).toEqual(validManifest());
    expect(Object.isFrozen(m)).toBe(true);
    expect(Object.isFrozen(m.artifacts[0])).toBe(true);
    expect(Object.isFrozen(m.egress[1]?.ports)).toBe(true);
  });

  describe('when the manifest is over 1 MiB', () => {
    it('rejects it before parsing, and accepts exactly 1 MiB of bytes as far as size goes', () => {
      const m = validManifest();
      const base = canonicalBytes({ ...m, notes: '' }).length;
      // notes is bounded at 4096 chars, so a 1 MiB manifest fails the schema, not the size check.
      const exact = canonicalBytes({ ...m, notes: 'n'.repeat(MANIFEST_MAX_BYTES - base) });
      expect(exact.length).toBe(MANIFEST_MAX_BYTES);
      expect(rejection(exact).message).toContain('/notes: must NOT have more than 4096 characters');
      const over = Buffer.concat([exact, Buffer.from(' ')]);
      expect(rejection(over).message).toBe(`manifest is ${MANIFEST_MAX_BYTES + 1} bytes, over the limit of 1048576 bytes (1 MiB)`);
    });
  });

  it('rejects non-canonical bytes, naming the byte', () => {
    const pretty = Buffer.from(JSON.stringify(validManifest(), null, 2));
    expect(rejection(pretty).message).toMatch(/^manifest.json not canonical \(RFC 8785\): first difference at byte 1:/);
  });

  it('rejects a duplicate key even when both values are valid', () => {
    const good = canonicalBytes(validManifest()).toString('utf8');
    const dup = good.replace('"product":"hss-nvr"', '"product":"evil","product":"hss-nvr"');
    expect(rejection(Buffer.from(dup)).message).toContain('not canonical');
  });

  it('rejects a byte-order mark', () => {
    const bom = Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), canonicalBytes(validManifest())]);
    expect(rejection(bom).problems).toEqual(['starts with a UTF-8 byte-order mark']);
  });

  it('rejects invalid UTF-8', () => {
    const bytes = canonicalBytes(validManifest());
    bytes[bytes.indexOf('Fixes')] = 0xc3;
    expect(rejection(bytes).message).toContain('not valid UTF-8');
  });

  it('rejects schema violations, listing all of them (bounded) in the message', () => {
    const m = validManifest();
    m.hardware = Array.from({ length: 40 }, (_, i) => `hw ${i}`);
    const err = rejection(canonicalBytes(m));
    expect(err.problems.length).toBe(41);
    expect(err.message.startsWith('manifest.json: /hardware: must NOT have more than 32 items (41 problems: ')).toBe(true);
    expect(err.message).toContain(`and ${41 - MESSAGE_MAX_PROBLEMS} more`);
    expect(err.message.length).toBeLessThan(2000);
  });

  it('rejects a semantic violation', () => {
    const m = validManifest();
    m.expires = m.released;
    expect(rejection(canonicalBytes(m)).message).toBe('manifest.json: /expires: must be after released (2025-03-01T12:00:00Z), is 2025-03-01T12:00:00Z');
  });
});

describe('manifestSha256', () => {
  it('is the lowercase hex SHA-256 of the exact bytes', () => {
    const bytes = canonicalBytes(validManifest());
    expect(manifestSha256(bytes)).toBe(createHash('sha256').update(bytes).digest('hex'));
    expect(manifestSha256(Buffer.from('abc'))).toBe('ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad');
  });
});
