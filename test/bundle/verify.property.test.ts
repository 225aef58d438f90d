/**
 * Property tests: damaged variants of a valid bundle are never accepted,
 * never make the verifier throw, and are judged the same whatever the
 * chunking of the input.
 *
 * "Never accepted" has one honest exception: the chain files
 * signatures/<k>.pem are not signed, and a flip outside their PEM blocks
 * (e.g. in the newline after END CERTIFICATE) changes nothing the verifier
 * relies on. The property there is the security property itself: when a
 * damaged bundle is accepted, its manifest and every artifact byte are
 * exactly the signed originals.
 */
import { beforeAll, describe, expect, test } from 'vitest';
import fc from 'fast-check';
import { randomBytes } from 'node:crypto';
import { verifyBundle } from '../../src/bundle/verify.js';
import type { ArtifactSink, VerifyContext, VerifyReport } from '../../src/bundle/types.js';
import { makeTestPki, type TestPki } from '../helpers/pki.js';
import { chunked, defaultArtifacts, file, makeBundle, streamOf, tarEntries, type BundleEntry, type TestBundle } from '../helpers/bundle.js';

let pki: TestPki;
let ctx: VerifyContext;
let valid: TestBundle;
/** [start, end) of each entry's data in valid.tar, with its path. */
let regions: Array<{ path: string; start: number; end: number }>;

const RUNS = 150;

beforeAll(async () => {
  pki = await makeTestPki();
  ctx = { trust: pki.anchors, at: pki.now, securityFloor: 0 };
  valid = makeBundle(pki, { artifacts: defaultArtifacts(randomBytes(3000)) });
  regions = [];
  let offset = 0;
  for (const e of valid.entries) {
    const raw = file(e.path, e.data);
    const dataStart = offset + raw.length - Math.ceil(e.data.length / 512) * 512;
    regions.push({ path: e.path, start: dataStart, end: dataStart + e.data.length });
    offset += raw.length;
  }
});

/** Verifies with a sink that collects what it was given. */
async function judge(tar: Buffer, chunk: number): Promise<{ report: VerifyReport; written: Map<string, Buffer> }> {
  const parts = new Map<string, Buffer[]>();
  const sink: ArtifactSink = {
    async begin(a) {
      parts.set(a.name, []);
      return { write: async (c) => void parts.get(a.name)!.push(Buffer.from(c)), finish: async () => undefined, abort: async () => void parts.delete(a.name) };
    },
  };
  const report = await verifyBundle(streamOf(chunked(tar, chunk)), ctx, sink);
  return { report, written: new Map([...parts].map(([k, v]) => [k, Buffer.concat(v)])) };
}

/** What must hold of any accepted bundle: the signed manifest and the original artifact bytes. */
function expectOriginalContent(report: VerifyReport, written: Map<string, Buffer>): void {
  expect(report.manifestBytes?.equals(valid.manifestBytes)).toBe(true);
  for (const a of valid.artifacts) expect(written.get(a.name)?.equals(a.data), a.name).toBe(true);
}

const chunkSize = fc.oneof(fc.constant(1 << 20), fc.integer({ min: 1, max: 4096 }));

describe('damaged bundles', () => {
  test('the valid bundle is accepted at every chunking', async () => {
    await fc.assert(
      fc.asyncProperty(chunkSize, async (chunk) => {
        const { report, written } = await judge(valid.tar, chunk);
        expect(report.ok, report.reason).toBe(true);
        expectOriginalContent(report, written);
      }),
      { numRuns: 20 },
    );
  });

  test('byte flips: rejected (or, only inside the unsigned chain files, accepted with the signed content), never thrown, chunking-independent', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.uniqueArray(fc.record({ at: fc.nat(), xor: fc.integer({ min: 1, max: 255 }) }), { minLength: 1, maxLength: 3, selector: (f) => f.at % valid.tar.length }),
        chunkSize,
        async (flips, chunk) => {
          const tar = Buffer.from(valid.tar);
          for (const f of flips) {
            const at = f.at % tar.length;
            tar[at] = tar[at]! ^ f.xor;
          }
          const { report, written } = await judge(tar, chunk);
          const again = await judge(tar, 1 << 20);
          expect(again.report.code).toBe(report.code);
          if (report.ok) {
            for (const f of flips) {
              const at = f.at % tar.length;
              const region = regions.find((r) => at >= r.start && at < r.end);
              expect(region?.path, `accepted with a flip at ${at}`).toMatch(/^signatures\/\d+\.pem$/);
            }
            expectOriginalContent(report, written);
          }
        },
      ),
      { numRuns: RUNS },
    );
  });

  test('truncation anywhere is rejected', async () => {
    await fc.assert(
      fc.asyncProperty(fc.nat({ max: valid.tar.length - 1 }), chunkSize, async (length, chunk) => {
        const { report } = await judge(valid.tar.subarray(0, length), chunk);
        expect(report.ok).toBe(false);
        expect(report.code).not.toBeNull();
      }),
      { numRuns: RUNS },
    );
  });

  const indexPair = (): fc.Arbitrary<[number, number]> =>
    fc.tuple(fc.nat({ max: 100 }), fc.nat({ max: 100 })).map(([a, b]) => [a % valid.entries.length, b % valid.entries.length] as [number, number]);

  test('two entries swapped are rejected', async () => {
    await fc.assert(
      fc.asyncProperty(indexPair().filter(([a, b]) => a !== b), chunkSize, async ([a, b], chunk) => {
        const entries: BundleEntry[] = [...valid.entries];
        [entries[a], entries[b]] = [entries[b]!, entries[a]!];
        const { report } = await judge(tarEntries(entries), chunk);
        expect(report.ok, `swap ${a} ${b}`).toBe(false);
      }),
      { numRuns: RUNS },
    );
  });

  test('an entry duplicated anywhere is rejected', async () => {
    await fc.assert(
      fc.asyncProperty(indexPair(), chunkSize, async ([from, to], chunk) => {
        const entries: BundleEntry[] = [...valid.entries];
        entries.splice(to, 0, entries[from]!);
        const { report } = await judge(tarEntries(entries), chunk);
        expect(report.ok, `copy ${from} to ${to}`).toBe(false);
      }),
      { numRuns: RUNS },
    );
  });

  test('an entry removed is rejected', async () => {
    for (let i = 0; i < valid.entries.length; i++) {
      const entries = valid.entries.filter((_, j) => j !== i);
      const { report } = await judge(tarEntries(entries), 65536);
      expect(report.ok, `without ${valid.entries[i]!.path}`).toBe(false);
    }
  });

  test('random bytes spliced in are rejected', async () => {
    await fc.assert(
      fc.asyncProperty(fc.nat(), fc.uint8Array({ minLength: 1, maxLength: 1100 }), chunkSize, async (at, bytes, chunk) => {
        const pos = at % (valid.tar.length + 1);
        const tar = Buffer.concat([valid.tar.subarray(0, pos), Buffer.from(bytes), valid.tar.subarray(pos)]);
        const { report } = await judge(tar, chunk);
        // Whole blocks of zeros inserted where everything is already zeros (after the last
        // entry's data: its padding and the end blocks) are padding, not damage.
        const zeroPadding = pos >= regions.at(-1)!.end && bytes.every((b) => b === 0) && bytes.length % 512 === 0;
        if (!zeroPadding) expect(report.ok, `${bytes.length} bytes at ${pos}`).toBe(false);
      }),
      { numRuns: RUNS },
    );
  });
});
