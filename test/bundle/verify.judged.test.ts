/**
 * The verifier with a judge that answers late, as the worker-thread judge of
 * `glassbox verify` does: reading and hashing go on past the judge point
 * while the judgement runs. Every report must equal, field for field, the
 * report of the in-thread judge (reading order decides, bundle-v1 section 5),
 * whatever faults come after the judge point; the sink gets nothing before
 * the signers are accepted; a failing judge is an error, never a verdict.
 */
import { beforeAll, describe, expect, test } from 'vitest';
import fc from 'fast-check';
import { randomBytes } from 'node:crypto';
import { verifyBundle } from '../../src/bundle/verify.js';
import type { ArtifactSink, JudgedVerifyContext, SignerJudge, VerifyContext, VerifyReport } from '../../src/bundle/types.js';
import { localJudge } from '../../src/trust/judge.js';
import type { TrustAnchors } from '../../src/trust/types.js';
import { hostileSigner, makeTestPki, trustPolicyBytes, type TestPki } from '../helpers/pki.js';
import {
  chunked,
  defaultArtifacts,
  file,
  header,
  makeBundle,
  pkiSigners,
  tarEntries,
  tarOf,
  testProvenance,
  TEST_PROVENANCE,
  type BundleEntry,
  type BundleOptions,
  type BundleSigner,
  type TestBundle,
  SIGNATURE_END,
  firstArtifactOffset,
  flipByte,
} from '../helpers/bundle.js';

let pki: TestPki;
let next: TestPki;

beforeAll(async () => {
  pki = await makeTestPki();
  next = await makeTestPki({ namespace: 'next', threshold: 2 });
});

/** The codes decided at the judge point (bundle/verify.ts #judgeAll). */
const JUDGE_POINT_CODES = new Set(['SIGNATURE_INVALID', 'SIGNER_UNTRUSTED', 'THRESHOLD_NOT_MET', 'MANIFEST_EXPIRED', 'HARDWARE_MISMATCH', 'ROLLBACK']);
const LATER = new Date('2028-01-01T00:00:00Z');

/** A source over `tar` that counts the bytes pulled from it. */
function countingSource(tar: Buffer, chunk: number): { source: AsyncIterable<Buffer>; pulled: () => number } {
  let pulled = 0;
  async function* gen(): AsyncGenerator<Buffer> {
    for (const c of chunked(tar, chunk)) {
      pulled += c.length;
      yield c;
    }
  }
  return { source: gen(), pulled: () => pulled };
}

/**
 * A judge that answers 2 ms after being asked, or, with `readyAt`, once the source has been
 * pulled up to that byte (checked at every turn of the event loop; 5 s at most), so that a
 * test can place the answer in the stream whatever the machine's speed.
 */
function lateJudge(trust: TrustAnchors, pulled: () => number, readyAt?: number): SignerJudge & { answeredAt: number[] } {
  const local = localJudge(trust);
  const answeredAt: number[] = [];
  const later = <T>(value: T): Promise<T> =>
    new Promise((resolve) => {
      const answer = () => {
        answeredAt.push(pulled());
        resolve(value);
      };
      if (readyAt === undefined) return void setTimeout(answer, 2);
      const giveUpAt = Date.now() + 5000;
      const poll = () => (pulled() >= readyAt || Date.now() > giveUpAt ? answer() : setImmediate(poll));
      poll();
    });
  return {
    answeredAt,
    signers: async (m, e, at) => later(await local.signers(m, e, at)),
    rotation: async (p, m, e, at) => later(await local.rotation(p, m, e, at)),
  };
}

interface Both {
  readonly local: VerifyReport;
  readonly late: VerifyReport;
  /** Bytes pulled when the late judge's first answer came (undefined: never asked). */
  readonly pulledAtAnswer: number | undefined;
}

/** Verifies `tar` with the in-thread judge and with the late one; the reports must be equal. */
async function both(tar: Buffer, over: Partial<VerifyContext> = {}, chunk = 4096): Promise<Both> {
  const ctx: VerifyContext = { trust: pki.anchors, at: pki.now, securityFloor: 0, ...over };
  const local = await verifyBundle(countingSource(tar, chunk).source, ctx);
  const counted = countingSource(tar, chunk);
  const judge = lateJudge(ctx.trust, counted.pulled);
  const { trust: _trust, ...rest } = ctx;
  const judged: JudgedVerifyContext = { ...rest, judge };
  const late = await verifyBundle(counted.source, judged);
  expect(late).toEqual(local);
  return { local, late, pulledAtAnswer: judge.answeredAt[0] };
}

const bundle = (opts: BundleOptions = {}): TestBundle => makeBundle(pki, opts);
const edited = (edit: (e: BundleEntry[]) => BundleEntry[], opts: BundleOptions = {}): Buffer => tarEntries(edit([...bundle(opts).entries]));
const flipped = (e: BundleEntry[]): BundleEntry[] => e.map((x, i) => (i === SIGNATURE_END ? { path: x.path, data: flipByte(x.data, 5) } : x));
const badSignature = (): BundleSigner[] => [{ ...pkiSigners(pki, [0])[0]!, signOver: Buffer.from('x') }, pkiSigners(pki, [1])[0]!];
const withTrust = (policy: Buffer, signers: BundleSigner[]): Buffer =>
  bundle({ artifacts: defaultArtifacts(undefined, [{ name: 'trust.json', role: 'trust', data: policy }]), signers }).tar;

describe('a late judge gives the report of the in-thread judge', () => {
  test('a valid bundle: accepted, and the whole bundle was read before the judgement came', async () => {
    const tar = bundle().tar;
    const r = await both(tar);
    expect(r.late.ok, r.late.reason).toBe(true);
    // The overlap itself: everything was hashed while the judge was still working.
    expect(r.pulledAtAnswer).toBe(tar.length);
  });

  test('a valid bundle with the device model and the floor', async () => {
    expect((await both(bundle().tar, { hardware: 'nvr-8p', securityFloor: 12 })).late.ok).toBe(true);
  });

  test.each<[string, () => Promise<Buffer> | Buffer, Partial<VerifyContext>, string]>([
    ['bad signature and a flipped artifact byte', () => edited(flipped, { signers: badSignature() }), {}, 'SIGNATURE_INVALID'],
    ['no signature and a flipped artifact byte', () => edited(flipped, { signers: [] }), {}, 'THRESHOLD_NOT_MET'],
    ['untrusted signer and expired manifest', async () => bundle({ signers: [await foreign()] }).tar, { at: LATER }, 'SIGNER_UNTRUSTED'],
    ['expired and rollback', () => bundle().tar, { at: LATER, securityFloor: 99 }, 'MANIFEST_EXPIRED'],
    ['expired and a flipped artifact byte', () => edited(flipped), { at: LATER }, 'MANIFEST_EXPIRED'],
    ['hardware mismatch and rollback', () => bundle().tar, { hardware: 'other', securityFloor: 99 }, 'HARDWARE_MISMATCH'],
    ['hardware mismatch and an artifact missing', () => edited((e) => e.slice(0, -1)), { hardware: 'other' }, 'HARDWARE_MISMATCH'],
    ['rollback and an extra artifact entry', () => edited((e) => [...e, { path: 'artifacts/extra', data: Buffer.from('x') }]), { securityFloor: 99 }, 'ROLLBACK'],
    ['rollback and an unexpected first artifact', () => edited((e) => [...e.slice(0, SIGNATURE_END), { path: 'artifacts/extra', data: Buffer.from('x') }, ...e.slice(SIGNATURE_END)]), { securityFloor: 99 }, 'ROLLBACK'],
    ['bad signature and a symlink after the first artifact', () => symlinkAfterFirst(badSignature()), {}, 'SIGNATURE_INVALID'],
    ['bad signature and truncation inside the last artifact', () => edited((e) => e, { signers: badSignature() }).subarray(0, -1500), {}, 'SIGNATURE_INVALID'],
    ['bad signature and trailing garbage', () => Buffer.concat([edited((e) => e, { signers: badSignature() }), Buffer.from('garbage')]), {}, 'SIGNATURE_INVALID'],
    ['bad signature and an artifact too short', () => shortFirstArtifact(badSignature()), {}, 'SIGNATURE_INVALID'],
    ['bad signature and no artifact at all', () => edited((e) => e.slice(0, SIGNATURE_END), { signers: badSignature() }), {}, 'SIGNATURE_INVALID'],
    ['bad signature and a provenance statement that does not match', () => provenanceMismatch(badSignature()), {}, 'SIGNATURE_INVALID'],
    ['bad signature before the judge point is reached: truncated signatures', () => edited((e) => e, { signers: badSignature() }).subarray(0, 3 * 512 + 100), {}, 'BUNDLE_FORMAT'],
    ['a flipped artifact byte', () => edited(flipped), {}, 'ARTIFACT_DIGEST'],
    ['an unexpected entry before a digest mismatch', () => edited((e) => [...e.slice(0, SIGNATURE_END), { path: 'artifacts/extra', data: Buffer.from('x') }, ...flipped(e).slice(SIGNATURE_END)]), {}, 'ARTIFACT_UNEXPECTED'],
    ['an artifact missing and trailing garbage', () => Buffer.concat([edited((e) => e.slice(0, -1)), Buffer.from('garbage')]), {}, 'ARTIFACT_MISSING'],
    ['an artifact too short', () => shortFirstArtifact(pkiSigners(pki, [0, 1])), {}, 'ARTIFACT_SIZE'],
    ['a provenance statement that does not match', () => provenanceMismatch(pkiSigners(pki, [0, 1])), {}, 'MANIFEST_INVALID'],
    ['truncation inside artifact data', () => bundle().tar.subarray(0, -70 * 1024), {}, 'BUNDLE_FORMAT'],
    ['trust rotation: both thresholds met', () => withTrust(next.policyBytes, [...pkiSigners(pki, [0, 1]), ...pkiSigners(next, [0, 1])]), {}, 'ok'],
    ['trust rotation: only the old signers', () => withTrust(next.policyBytes, pkiSigners(pki, [0, 1])), {}, 'SIGNER_UNTRUSTED'],
    ['trust rotation: not a valid policy', () => withTrust(Buffer.from('{"schema":"glassbox.trust/v1"}'), pkiSigners(pki, [0, 1])), {}, 'THRESHOLD_NOT_MET'],
    ['trust rotation: threshold raised, and the manifest expired', () => withTrust(trustPolicyBytes([pki.root.pem], 3), pkiSigners(pki, [0, 1])), { at: LATER }, 'MANIFEST_EXPIRED'],
  ])('%s', async (_name, make, over, code) => {
    const { late } = await both(await make(), over);
    expect(late.ok ? 'ok' : late.code, late.reason).toBe(code);
    // (With a trust artifact these codes may also come from the rotation, after the judge point.)
    if (JUDGE_POINT_CODES.has(code) && !late.artifacts.some((a) => a.role === 'trust')) {
      // As if reading had stopped at the judge point: nothing after it is reported.
      expect(late.artifacts.map((a) => a.outcome).filter((o) => o !== 'not-reached')).toEqual([]);
      expect(late.provenanceCheck).toBe('not-reached');
    }
  });

  test('byte flips and truncations anywhere, at any chunking, in a bundle whose signers pass or fail', async () => {
    const signed = bundle({ artifacts: defaultArtifacts(randomBytes(3000)) }).tar;
    const unsigned = bundle({ artifacts: defaultArtifacts(randomBytes(3000)), signers: badSignature() }).tar;
    await fc.assert(
      fc.asyncProperty(
        fc.boolean(),
        fc.array(fc.record({ at: fc.nat(), xor: fc.integer({ min: 1, max: 255 }) }), { maxLength: 3 }),
        fc.option(fc.nat(), { nil: undefined }),
        fc.integer({ min: 1, max: 9000 }),
        async (good, flips, cut, chunk) => {
          const tar = Buffer.from(good ? signed : unsigned);
          for (const f of flips) tar[f.at % tar.length] = tar[f.at % tar.length]! ^ f.xor;
          await both(cut === undefined ? tar : tar.subarray(0, cut % tar.length), {}, chunk);
        },
      ),
      { numRuns: 120 },
    );
  });
});

describe('what waits for a late judge', () => {
  test('a failed judgement stops reading: at once in this thread, at the next chunk once a late judge answers', async () => {
    const b = bundle({ artifacts: defaultArtifacts(randomBytes(1024 * 1024)), signers: badSignature() });
    const judgePoint = firstArtifactOffset(b);
    const local = countingSource(b.tar, 4096);
    expect((await verifyBundle(local.source, { trust: pki.anchors, at: pki.now, securityFloor: 0 })).code).toBe('SIGNATURE_INVALID');
    expect(local.pulled()).toBeLessThan(judgePoint + 3 * 4096);
    // A source that yields to the event loop between chunks, as file and pipe reads do.
    let pulled = 0;
    const slow = (async function* () {
      for (const c of chunked(b.tar, 4096)) {
        await new Promise((resolve) => setImmediate(resolve));
        pulled += c.length;
        yield c;
      }
    })();
    // The judge answers once 8 chunks past the judge point have been pulled (a 2 ms timer raced the
    // whole 1 MiB read on a loaded machine).
    const judge = lateJudge(pki.anchors, () => pulled, judgePoint + 8 * 4096);
    expect((await verifyBundle(slow, { judge, at: pki.now, securityFloor: 0 })).code).toBe('SIGNATURE_INVALID');
    expect(judge.answeredAt[0]).toBeGreaterThan(judgePoint);
    expect(pulled).toBeLessThanOrEqual(judge.answeredAt[0]! + 2 * 4096);
    expect(pulled).toBeLessThan(b.tar.length);
  });

  test('the sink: begin only after the signers were accepted, and never when they were not', async () => {
    for (const [signers, expectBegin] of [
      [pkiSigners(pki, [0, 1]), true],
      [badSignature(), false],
    ] as const) {
      const counted = countingSource(bundle({ signers: [...signers] }).tar, 4096);
      const judge = lateJudge(pki.anchors, counted.pulled);
      const begun: number[] = [];
      const sink: ArtifactSink = {
        async begin() {
          begun.push(judge.answeredAt.length);
          return { write: async () => undefined, finish: async () => undefined, abort: async () => undefined };
        },
      };
      const report = await verifyBundle(counted.source, { judge, at: pki.now, securityFloor: 0 }, sink);
      expect(report.ok).toBe(expectBegin);
      if (expectBegin) expect(begun.length).toBeGreaterThan(0);
      else expect(begun).toEqual([]);
      // Every begin came after the judgement's answer.
      expect(begun.every((answers) => answers === 1)).toBe(true);
    }
  });

  test('a judge that fails is an error, even when a later fault is met meanwhile', async () => {
    const failing: SignerJudge = {
      signers: () => new Promise((_resolve, reject) => setTimeout(() => reject(new Error('judge thread exited (code 1)')), 2)),
      rotation: () => Promise.reject(new Error('unused')),
    };
    const ctx: JudgedVerifyContext = { judge: failing, at: pki.now, securityFloor: 0 };
    await expect(verifyBundle(countingSource(bundle().tar, 4096).source, ctx)).rejects.toThrow(/judge thread exited/);
    await expect(verifyBundle(countingSource(edited(flipped), 4096).source, ctx)).rejects.toThrow(/judge thread exited/);
    // A fault before the judge point never asks the judge.
    const early = await verifyBundle(countingSource(bundle().tar.subarray(0, 3 * 512 + 100), 4096).source, ctx);
    expect(early.code).toBe('BUNDLE_FORMAT');
  });

  test('a source that fails after the judge point: the fault of the judgement wins, else the read error', async () => {
    const failingAfter = (tar: Buffer, bytes: number): AsyncIterable<Buffer> =>
      (async function* () {
        yield tar.subarray(0, bytes);
        throw new Error('EIO: i/o error, read');
      })();
    for (const [signers, expected] of [
      [badSignature(), 'SIGNATURE_INVALID'],
      [pkiSigners(pki, [0, 1]), 'throws'],
    ] as const) {
      const b = bundle({ signers: [...signers] });
      const into = firstArtifactOffset(b) + 512 + 1000;
      for (const ctx of [
        { trust: pki.anchors, at: pki.now, securityFloor: 0 },
        { judge: lateJudge(pki.anchors, () => 0), at: pki.now, securityFloor: 0 },
      ] as const) {
        const run = verifyBundle(failingAfter(b.tar, into), ctx);
        if (expected === 'throws') await expect(run).rejects.toMatchObject({ code: 'IO' });
        else expect((await run).code).toBe(expected);
      }
    }
  });
});

async function foreign(): Promise<BundleSigner> {
  const h = await hostileSigner(pki, 'foreign-root');
  return { signer: h.signer, chainPem: h.chainPem };
}

function symlinkAfterFirst(signers: BundleSigner[]): Buffer {
  const raw = bundle({ signers }).entries.map((e) => file(e.path, e.data));
  return tarOf([...raw.slice(0, SIGNATURE_END + 1), header({ path: 'artifacts/x', type: 'SymbolicLink', linkpath: '/' }), ...raw.slice(SIGNATURE_END + 1)]);
}

/** The first artifact's entry carries fewer bytes than the manifest says. */
function shortFirstArtifact(signers: BundleSigner[]): Buffer {
  return edited((e) => e.map((x, i) => (i === SIGNATURE_END ? { path: x.path, data: x.data.subarray(0, 100) } : x)), { signers });
}

/** A provenance artifact whose statement names another builder (signed, so its digest matches). */
function provenanceMismatch(signers: BundleSigner[]): Buffer {
  const artifacts = defaultArtifacts();
  const others = artifacts.filter((a) => a.role !== 'provenance');
  const statement = testProvenance(others, { ...TEST_PROVENANCE, builder: 'https://ci.example/someone-else' });
  return bundle({ artifacts: artifacts.map((a) => (a.role === 'provenance' ? { ...a, data: statement } : a)), signers }).tar;
}

