import { describe, expect, it, beforeAll } from 'vitest';
import { judgeSigners } from '../../src/trust/signers.js';
import { createLeaf, type CertifiedKey } from '../../src/pki/certs.js';
import { spkiSha256 } from '../../src/trust/fingerprint.js';
import type { SignatureEntry } from '../../src/trust/types.js';
import { anchorsFor, DAY, hostileSigner, makeTestPki, signatureEntry, signWith, type TestPki } from '../helpers/pki.js';

const MANIFEST = Buffer.from('{"schema":"glassbox.manifest/v1"}');
const OTHER = Buffer.from('{"schema":"glassbox.manifest/v1","x":1}');

let pki: TestPki;
const s = (i: number): CertifiedKey => pki.signers[i] as CertifiedKey;
const chain = (i: number): string => pki.chains[i] as string;
/** signer i (0-based) as bundle signature number k */
const good = (k: number, i: number): SignatureEntry => signatureEntry(k, s(i), chain(i), MANIFEST);
/** signer i with a signature over other bytes */
const badSig = (k: number, i: number): SignatureEntry => ({ index: k, signature: signWith(s(i), OTHER), chainPem: Buffer.from(chain(i)) });
let untrusted: (k: number) => SignatureEntry;

beforeAll(async () => {
  pki = await makeTestPki({ signers: 3, threshold: 2 });
  const expired = await hostileSigner(pki, 'expired');
  untrusted = (k) => signatureEntry(k, expired.signer, expired.chainPem, MANIFEST);
});

const outcomes = (j: ReturnType<typeof judgeSigners>) => j.signers.map((x) => x.outcome);

describe('when enough distinct signers are valid', () => {
  it('meets the threshold with code null and lists every signer', () => {
    const j = judgeSigners(MANIFEST, [good(1, 0), good(2, 1), good(3, 2)], pki.anchors, pki.now);
    expect(j).toMatchObject({ code: null, reason: null, distinctValid: 3, threshold: 2 });
    expect(outcomes(j)).toEqual(['valid', 'valid', 'valid']);
    expect(j.signers[0]).toMatchObject({ index: 1, subject: 'CN=pki test signer 1', spkiSha256: spkiSha256(s(0).cert), reason: null });
  });

  it('is not rejected by faulty extra signers, which are still reported', () => {
    const j = judgeSigners(MANIFEST, [untrusted(1), good(2, 0), badSig(3, 2), good(4, 1)], pki.anchors, pki.now);
    expect(j.code).toBe(null);
    expect(j.distinctValid).toBe(2);
    expect(outcomes(j)).toEqual(['SIGNER_UNTRUSTED', 'valid', 'SIGNATURE_INVALID', 'valid']);
    expect(j.signers[0]?.reason).toMatch(/signer 1: .*expired/);
    expect(j.signers[2]?.reason).toMatch(/signer 3 .*does not verify/);
  });
});

describe('when the threshold is not met', () => {
  it('reports THRESHOLD_NOT_MET for no signers at all', () => {
    const j = judgeSigners(MANIFEST, [], pki.anchors, pki.now);
    expect(j).toMatchObject({ code: 'THRESHOLD_NOT_MET', distinctValid: 0, threshold: 2, signers: [] });
    expect(j.reason).toMatch(/no signature/);
  });

  it('reports THRESHOLD_NOT_MET for too few valid signers', () => {
    const j = judgeSigners(MANIFEST, [good(1, 0)], pki.anchors, pki.now);
    expect(j).toMatchObject({ code: 'THRESHOLD_NOT_MET', distinctValid: 1 });
  });

  it('counts the same key twice only once toward threshold 2', () => {
    const j = judgeSigners(MANIFEST, [good(1, 0), good(2, 0)], pki.anchors, pki.now);
    expect(j).toMatchObject({ code: 'THRESHOLD_NOT_MET', distinctValid: 1 });
    expect(outcomes(j)).toEqual(['valid', 'DUPLICATE_KEY']);
    expect(j.signers[1]?.reason).toMatch(/same key as signer 1/);
  });

  it('counts one key under two different certificates once', async () => {
    const again = await createLeaf(pki.releaseCa, { key: s(0).key, subject: 'CN=same key, new cert', purpose: 'codeSigning', now: pki.now });
    const j = judgeSigners(MANIFEST, [good(1, 0), signatureEntry(2, again, again.pem + pki.releaseCa.pem, MANIFEST)], pki.anchors, pki.now);
    expect(j).toMatchObject({ code: 'THRESHOLD_NOT_MET', distinctValid: 1 });
    expect(outcomes(j)).toEqual(['valid', 'DUPLICATE_KEY']);
  });

  it('reports SIGNATURE_INVALID when the only faulty signer has a bad signature', () => {
    const j = judgeSigners(MANIFEST, [good(1, 0), badSig(2, 1)], pki.anchors, pki.now);
    expect(j.code).toBe('SIGNATURE_INVALID');
    expect(outcomes(j)).toEqual(['valid', 'SIGNATURE_INVALID']);
  });

  it('reports SIGNER_UNTRUSTED when the only faulty signer has a bad chain', () => {
    const j = judgeSigners(MANIFEST, [untrusted(1), good(2, 0)], pki.anchors, pki.now);
    expect(j.code).toBe('SIGNER_UNTRUSTED');
  });

  it('reports the fault of the lowest-numbered faulty signer', () => {
    expect(judgeSigners(MANIFEST, [untrusted(1), badSig(2, 0)], pki.anchors, pki.now).code).toBe('SIGNER_UNTRUSTED');
    expect(judgeSigners(MANIFEST, [badSig(1, 0), untrusted(2)], pki.anchors, pki.now).code).toBe('SIGNATURE_INVALID');
  });

  it('orders by signature number, not by the order entries arrive in', () => {
    const j = judgeSigners(MANIFEST, [untrusted(2), badSig(1, 0)], pki.anchors, pki.now);
    expect(j.code).toBe('SIGNATURE_INVALID');
    expect(j.signers.map((x) => x.index)).toEqual([1, 2]);
  });

  it('treats a duplicate key as no fault: a later faulty signer sets the code', () => {
    expect(judgeSigners(MANIFEST, [good(1, 0), good(2, 0), badSig(3, 1)], pki.anchors, pki.now).code).toBe('SIGNATURE_INVALID');
  });
});

describe('when a signer chain holds but its algorithm is refused', () => {
  it('is SIGNATURE_INVALID, not SIGNER_UNTRUSTED', async () => {
    const weak = await hostileSigner(pki, 'rsa-2048');
    const j = judgeSigners(MANIFEST, [signatureEntry(1, weak.signer, weak.chainPem, MANIFEST)], pki.anchors, pki.now);
    expect(j.code).toBe('SIGNATURE_INVALID');
    expect(j.signers[0]?.reason).toMatch(/RSA-2048/);
  });
});

describe('when a signer PEM is garbage', () => {
  it('is SIGNER_UNTRUSTED with no subject and no key fingerprint', () => {
    const j = judgeSigners(MANIFEST, [{ index: 1, signature: Buffer.from('x'), chainPem: Buffer.from('garbage') }], pki.anchors, pki.now);
    expect(j.code).toBe('SIGNER_UNTRUSTED');
    expect(j.signers[0]).toMatchObject({ subject: null, spkiSha256: null, outcome: 'SIGNER_UNTRUSTED' });
  });
});

describe('when the policy revokes a signer key or moves the clock', () => {
  it('refuses the revoked signer as SIGNER_UNTRUSTED', () => {
    const anchors = anchorsFor([pki.root.pem], 2, { keys: [spkiSha256(s(1).cert)] });
    const j = judgeSigners(MANIFEST, [good(1, 0), good(2, 1)], anchors, pki.now);
    expect(j.code).toBe('SIGNER_UNTRUSTED');
    expect(outcomes(j)).toEqual(['valid', 'SIGNER_UNTRUSTED']);
  });

  it('judges at the time given, not the wall clock', () => {
    const later = new Date(pki.now.getTime() + 4 * 365 * DAY); // past the 3-year signer certificates
    expect(judgeSigners(MANIFEST, [good(1, 0), good(2, 1)], pki.anchors, later).code).toBe('SIGNER_UNTRUSTED');
  });

  it('takes the threshold from the policy only', async () => {
    const one = anchorsFor([pki.root.pem], 1);
    const three = anchorsFor([pki.root.pem], 3);
    const entries = [good(1, 0), good(2, 1)];
    expect(judgeSigners(MANIFEST, entries, one, pki.now)).toMatchObject({ code: null, threshold: 1 });
    expect(judgeSigners(MANIFEST, entries, three, pki.now)).toMatchObject({ code: 'THRESHOLD_NOT_MET', threshold: 3 });
  });
});

describe('when signers mix algorithms', () => {
  it('accepts P-384 and RSA-3072 (v1.5 and PSS) signers alongside P-256', async () => {
    const mixed = await makeTestPki({ namespace: 'mix', signerAlgorithms: ['ecdsa-p384', 'rsa-3072', 'ecdsa-p256'], threshold: 3 });
    const entries = [
      signatureEntry(1, mixed.signers[0] as CertifiedKey, mixed.chains[0] as string, MANIFEST),
      signatureEntry(2, mixed.signers[1] as CertifiedKey, mixed.chains[1] as string, MANIFEST, { rsaPadding: 'pss' }),
      signatureEntry(3, mixed.signers[2] as CertifiedKey, mixed.chains[2] as string, MANIFEST),
    ];
    expect(judgeSigners(MANIFEST, entries, mixed.anchors, mixed.now)).toMatchObject({ code: null, distinctValid: 3 });
  });
});
