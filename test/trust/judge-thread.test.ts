/**
 * The worker-thread signer judge of `glassbox verify`, as built (a worker
 * runs compiled JavaScript: npm run build first; `npm test` does). Its
 * answers must equal the in-thread judge's; a bad policy comes back as the
 * loader's error; a closed judge rejects what is pending.
 */
import { afterEach, beforeAll, describe, expect, test } from 'vitest';
import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { randomBytes } from 'node:crypto';
import type * as JudgeThreadModule from '../../src/trust/judge-thread.js';
import type * as VerifyModule from '../../src/bundle/verify.js';
import { judgeRotation, localJudge } from '../../src/trust/judge.js';
import { loadTrustAnchors } from '../../src/trust/policy.js';
import type { SignatureEntry } from '../../src/trust/types.js';
import { hostileSigner, makeTestPki, signatureEntry, trustPolicyBytes, type TestPki } from '../helpers/pki.js';
import { chunked, defaultArtifacts, makeBundle, pkiSigners, streamOf } from '../helpers/bundle.js';

const BUILT = resolve('dist/trust/judge-thread.js');
let built: typeof JudgeThreadModule;
let builtVerify: typeof VerifyModule;
let pki: TestPki;
let next: TestPki;
const open: Array<{ close(): Promise<void> }> = [];

beforeAll(async () => {
  if (!existsSync(BUILT)) throw new Error(`${BUILT} is missing: run npm run build first`);
  built = (await import(pathToFileURL(BUILT).href)) as typeof JudgeThreadModule;
  builtVerify = (await import(pathToFileURL(resolve('dist/bundle/verify.js')).href)) as typeof VerifyModule;
  pki = await makeTestPki();
  next = await makeTestPki({ namespace: 'next', threshold: 2 });
});

afterEach(async () => {
  await Promise.all(open.splice(0).map((j) => j.close()));
});

function start(policy: Buffer): JudgeThreadModule.JudgeThread {
  const judge = built.startJudgeThread(policy);
  open.push(judge);
  return judge;
}

const manifest = Buffer.from('{"manifest":"bytes the signers signed"}');
const entries = (...signers: Array<{ key: Parameters<typeof signatureEntry>[1]; chain: string; over?: Buffer }>): SignatureEntry[] =>
  signers.map((s, i) => signatureEntry(i + 1, s.key, s.chain, s.over ?? manifest));

describe('the judge thread', () => {
  test('judges signers exactly as the in-thread judge: valid, bad signature, foreign root, at another time', async () => {
    const judge = start(pki.policyBytes);
    await judge.ready;
    const foreign = await hostileSigner(pki, 'foreign-root');
    const cases: Array<[SignatureEntry[], Date]> = [
      [entries({ key: pki.signers[0]!, chain: pki.chains[0]! }, { key: pki.signers[1]!, chain: pki.chains[1]! }), pki.now],
      [entries({ key: pki.signers[0]!, chain: pki.chains[0]!, over: Buffer.from('other') }, { key: pki.signers[1]!, chain: pki.chains[1]! }), pki.now],
      [entries({ key: foreign.signer, chain: foreign.chainPem }), pki.now],
      [entries({ key: pki.signers[0]!, chain: pki.chains[0]! }), new Date('2099-01-01T00:00:00Z')],
      [[], pki.now],
    ];
    const local = localJudge(pki.anchors);
    for (const [e, at] of cases) {
      const remote = await judge.signers(manifest, e, at);
      expect(remote).toEqual(await local.signers(manifest, e, at));
    }
    expect((await judge.signers(manifest, cases[0]![0], pki.now)).code).toBeNull();
  });

  test('judges a trust rotation exactly as judgeRotation: met, not met, not a policy', async () => {
    const judge = start(pki.policyBytes);
    const e = entries({ key: pki.signers[0]!, chain: pki.chains[0]! }, { key: next.signers[0]!, chain: next.chains[0]! }, { key: next.signers[1]!, chain: next.chains[1]! });
    for (const policy of [next.policyBytes, trustPolicyBytes([next.root.pem], 3), Buffer.from('{"schema":"glassbox.trust/v1"}')]) {
      expect(await judge.rotation(policy, manifest, e, pki.now)).toEqual(judgeRotation(policy, manifest, e, pki.now));
    }
  });

  test('an invalid policy: ready rejects with the loader error (code, message, exit 2), and so does every request', async () => {
    for (const bad of [Buffer.from('{"schema":"glassbox.trust/v1"}'), Buffer.from(' '), trustPolicyBytes([next.signers[0]!.pem], 1)]) {
      let expected: unknown;
      try {
        loadTrustAnchors(bad);
      } catch (err) {
        expected = err;
      }
      const judge = start(bad);
      const want = { code: 'TRUST_POLICY_INVALID', message: (expected as Error).message, exitCode: 2 };
      await expect(judge.ready).rejects.toMatchObject(want);
      await expect(judge.signers(manifest, [], pki.now)).rejects.toMatchObject(want);
    }
  });

  test('close: a pending request rejects, and the thread is gone', async () => {
    const judge = built.startJudgeThread(pki.policyBytes);
    const pending = judge.signers(manifest, entries({ key: pki.signers[0]!, chain: pki.chains[0]! }), pki.now).catch((err: unknown) => err);
    await judge.close();
    expect(await pending).toBeInstanceOf(Error);
    expect(String(await pending)).toMatch(/closed/);
    await expect(judge.signers(manifest, [], pki.now)).rejects.toThrow(/closed/);
  });

  test('the built verifier with the judge thread gives the in-thread report', async () => {
    const judge = start(pki.policyBytes);
    for (const signers of [pkiSigners(pki, [0, 1]), [{ ...pkiSigners(pki, [0])[0]!, signOver: Buffer.from('x') }]]) {
      const tar = makeBundle(pki, { artifacts: defaultArtifacts(randomBytes(200_000)), signers }).tar;
      const viaThread = await builtVerify.verifyBundle(streamOf(chunked(tar, 65536)), { judge, at: pki.now, securityFloor: 0 });
      const inThread = await builtVerify.verifyBundle(streamOf(chunked(tar, 65536)), { trust: pki.anchors, at: pki.now, securityFloor: 0 });
      expect(viaThread).toEqual(inThread);
    }
  });
});
