/**
 * Differential tests: glassbox's chain judgement against the stock-tool
 * check of bundle-v1 section 6, on the same generated chains.
 *
 * The stock judge is what a buyer runs by hand:
 *   openssl verify -x509_strict -purpose <p> -attime <epoch> -CAfile root.pem [-untrusted chain.pem] leaf.pem
 *   openssl x509 -noout -ext extendedKeyUsage   (leaf: must list Code Signing / TLS Web Client Authentication)
 *   openssl x509 -noout -ext basicConstraints   (leaf: must not be CA:TRUE)
 *   openssl x509 -noout -ext keyUsage           (leaf: when present, must list Digital Signature)
 * <p> is `codesign` where the local OpenSSL knows it (3.2 and later), else
 * `any` (OpenSSL 3.0 has no code-signing purpose: the EKU is then checked
 * only by the x509 -ext step, as section 6 says); `sslclient` for clientAuth.
 *
 * Known, intended differences (not run as differential cases; each is
 * covered by chain.test.ts):
 *  - revocation: the trust policy revokes by certificate and key hash;
 *    openssl sees no CRL, so it would accept a revoked chain;
 *  - a root included in the PEM: openssl accepts it as an untrusted copy of
 *    the trusted root; glassbox refuses it (the format says "never the root");
 *  - an intermediate whose EKU excludes codeSigning: OpenSSL 3.0 with
 *    `-purpose any` does not look at CA EKUs; glassbox refuses (for
 *    clientAuth, `sslclient` does look, and that case is run below);
 *  - CA keys outside the accepted list (RSA-2048, P-521): openssl's default
 *    security level accepts them; glassbox refuses them.
 */
import { describe, expect, it, beforeAll, afterAll } from 'vitest';
import { spawnSync } from 'node:child_process';
import { mkdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { splitPemCertificates, validateChain } from '../../src/trust/chain.js';
import { createIntermediateCa, createLeaf, EKU_OIDS, KeyUsage, type CertifiedKey } from '../../src/pki/certs.js';
import { x509 } from '../../src/pki/x509.js';
import type { KeyPurpose, TrustAnchors } from '../../src/trust/types.js';
import { requireSystem } from '../helpers/system.js';
import { DAY, hostileSigner, makeTestPki, tempDir, testDeviceCert, testKey, type HostileKind, type TestPki } from '../helpers/pki.js';

const missing = requireSystem(['openssl']);

function openssl(args: string[]): { status: number; out: string } {
  const r = spawnSync('openssl', args, { encoding: 'utf8', timeout: 20_000 });
  return { status: r.status ?? -1, out: `${r.stdout ?? ''}${r.stderr ?? ''}` };
}

let codesignPurpose: boolean | undefined;
const hasCodesignPurpose = (): boolean => (codesignPurpose ??= /\bcodesign\b/.test(openssl(['verify', '-purpose', 'help']).out));

interface Case {
  readonly name: string;
  readonly chainPem: string;
  readonly at: Date;
  readonly purpose: KeyPurpose;
  readonly anchors?: TrustAnchors;
  readonly rootPem?: string;
}

let pki: TestPki;
let dir: string;
let n = 0;

async function stockJudge(c: Case): Promise<{ ok: boolean; detail: string }> {
  const d = join(dir, String(++n));
  await mkdir(d);
  const certs = splitPemCertificates(c.chainPem).ders.map((der) => new x509.X509Certificate(der).toString('pem') + '\n');
  const [leaf, ...rest] = certs;
  await writeFile(join(d, 'root.pem'), c.rootPem ?? pki.root.pem);
  await writeFile(join(d, 'leaf.pem'), leaf ?? '');
  await writeFile(join(d, 'chain.pem'), rest.join(''));
  const purpose = c.purpose === 'clientAuth' ? 'sslclient' : hasCodesignPurpose() ? 'codesign' : 'any';
  const at = Math.floor(c.at.getTime() / 1000);
  const verify = openssl([
    'verify', '-x509_strict', '-purpose', purpose, '-attime', String(at), '-CAfile', join(d, 'root.pem'),
    ...(rest.length > 0 ? ['-untrusted', join(d, 'chain.pem')] : []), join(d, 'leaf.pem'),
  ]);
  // One x509 call prints the three leaf extensions, each under its own heading.
  const text = openssl(['x509', '-in', join(d, 'leaf.pem'), '-noout', '-ext', 'extendedKeyUsage,basicConstraints,keyUsage']).out;
  const section = (heading: string) => [...text.matchAll(/X509v3 ([A-Za-z ]+):[^\n]*\n([^\n]*)/g)].find((m) => m[1] === heading)?.[2] ?? '';
  const eku = section('Extended Key Usage');
  const wantEku = c.purpose === 'clientAuth' ? 'TLS Web Client Authentication' : 'Code Signing';
  const bc = section('Basic Constraints');
  const ku = section('Key Usage');
  const hasKu = /X509v3 Key Usage:/.test(text);
  const checks = {
    verify: verify.status === 0,
    eku: eku.includes(wantEku),
    notCa: !/CA:TRUE/.test(bc),
    ku: !hasKu || ku.includes('Digital Signature'),
  };
  return { ok: Object.values(checks).every(Boolean), detail: `${verify.out.trim()} ${JSON.stringify(checks)}` };
}

const cases: Array<[string, () => Promise<Omit<Case, 'name'>>]> = [];
const add = (name: string, build: () => Promise<Omit<Case, 'name'>>) => cases.push([name, build]);

const hostile = (kind: HostileKind) => async () => ({ chainPem: (await hostileSigner(pki, kind)).chainPem, at: pki.now, purpose: 'codeSigning' as const });

add('a good signer chain', async () => ({ chainPem: pki.chains[0] as string, at: pki.now, purpose: 'codeSigning' }));
add('a good chain with an RSA-3072 leaf', async () => {
  const leaf = await createLeaf(pki.releaseCa, { key: await testKey('rsa-3072', 'diff'), subject: 'CN=rsa leaf', purpose: 'codeSigning', now: pki.now });
  return { chainPem: leaf.pem + pki.releaseCa.pem, at: pki.now, purpose: 'codeSigning' };
});
for (const kind of ['expired', 'not-yet-valid', 'no-eku', 'client-auth-eku', 'ca-leaf', 'no-digital-signature', 'self-signed', 'foreign-root', 'intermediate-missing', 'expired-intermediate', 'pathlen-exceeded'] as const) {
  add(`a ${kind} signer`, hostile(kind));
}
add('a chain checked after the root expired', async () => ({ chainPem: pki.chains[0] as string, at: new Date(pki.now.getTime() + 21 * 365 * DAY), purpose: 'codeSigning' }));
add('a chain checked before the root is valid', async () => ({ chainPem: pki.chains[0] as string, at: new Date(pki.now.getTime() - 2 * 3600_000), purpose: 'codeSigning' }));

const windowLeaf = async (): Promise<CertifiedKey> =>
  createLeaf(pki.releaseCa, { key: await testKey('ecdsa-p256', 'window'), subject: 'CN=window', purpose: 'codeSigning' }, {
    notBefore: new Date(pki.now.getTime() + DAY),
    notAfter: new Date(pki.now.getTime() + 30 * DAY),
  });
for (const [label, offset] of [['at notBefore', 0], ['1 s before notBefore', -1000]] as const) {
  add(`a leaf checked ${label}`, async () => ({ chainPem: (await windowLeaf()).pem + pki.releaseCa.pem, at: new Date(pki.now.getTime() + DAY + offset), purpose: 'codeSigning' }));
}
for (const [label, offset] of [['at notAfter', 0], ['1 s before notAfter', -1000], ['1 s after notAfter', 1000]] as const) {
  add(`a leaf checked ${label}`, async () => ({ chainPem: (await windowLeaf()).pem + pki.releaseCa.pem, at: new Date(pki.now.getTime() + 30 * DAY + offset), purpose: 'codeSigning' }));
}

const badCa = (name: string, o: Parameters<typeof createIntermediateCa>[2] | (() => Parameters<typeof createIntermediateCa>[2])) =>
  add(`an intermediate ${name}`, async () => {
    const ca = await createIntermediateCa(pki.root, { key: await testKey('ecdsa-p256', `diff-${name}`), subject: `CN=${name}`, now: pki.now }, typeof o === 'function' ? o() : o);
    const leaf = await createLeaf(ca, { key: await testKey('ecdsa-p256', `diff-${name}-leaf`), subject: `CN=leaf ${name}`, purpose: 'codeSigning', now: pki.now });
    return { chainPem: leaf.pem + ca.pem, at: pki.now, purpose: 'codeSigning' };
  });
badCa('that is not a CA', { basicConstraints: { ca: false } });
badCa('without basicConstraints', { basicConstraints: null });
badCa('with non-critical basicConstraints', { basicConstraints: { ca: true, pathLen: 0, critical: false } });
badCa('without keyCertSign', { keyUsage: KeyUsage.digitalSignature | KeyUsage.cRLSign });
badCa('without keyUsage', { keyUsage: null });
badCa('without subjectKeyIdentifier', { subjectKeyIdentifier: false });
badCa('that has expired', () => ({ notBefore: new Date(pki.now.getTime() - 100 * DAY), notAfter: new Date(pki.now.getTime() - DAY) }));

add('a leaf with an unknown critical extension', async () => {
  const odd = new x509.Extension('1.3.6.1.4.1.55555.1', true, new Uint8Array([0x05, 0x00]));
  const leaf = await createLeaf(pki.releaseCa, { key: await testKey('ecdsa-p256', 'diff-crit'), subject: 'CN=crit', purpose: 'codeSigning', now: pki.now }, { extraExtensions: [odd] });
  return { chainPem: leaf.pem + pki.releaseCa.pem, at: pki.now, purpose: 'codeSigning' };
});
add('a device certificate for clientAuth', async () => ({ chainPem: (await testDeviceCert(pki, 'NVR-7')).chainPem, at: pki.now, purpose: 'clientAuth' }));
add('a code signer for clientAuth', async () => ({ chainPem: pki.chains[0] as string, at: pki.now, purpose: 'clientAuth' }));
add('a device under a CA whose EKU excludes clientAuth', async () => {
  const ca = await createIntermediateCa(pki.root, { key: await testKey('ecdsa-p256', 'diff-ekuca'), subject: 'CN=codesign-only CA', now: pki.now }, { extendedKeyUsage: [EKU_OIDS.codeSigning] });
  const leaf = await createLeaf(ca, { key: await testKey('ecdsa-p256', 'diff-ekuca-leaf'), subject: 'CN=dev', purpose: 'clientAuth', now: pki.now });
  return { chainPem: leaf.pem + ca.pem, at: pki.now, purpose: 'clientAuth' };
});
add('a chain judged against another root', async () => {
  const other = await makeTestPki({ namespace: 'diff-other' });
  return { chainPem: pki.chains[0] as string, at: pki.now, purpose: 'codeSigning', anchors: other.anchors, rootPem: other.root.pem };
});

describe.skipIf(missing)(`when glassbox and openssl judge the same chains${missing ? ` (skipped: ${missing})` : ''}`, () => {
  beforeAll(async () => {
    pki = await makeTestPki();
    dir = await tempDir('glassbox-diff-');
  });
  afterAll(async () => {
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  const verdicts: boolean[] = [];
  it.each(cases)('they agree on %s', async (name, build) => {
    const c: Case = { name, ...(await build()) };
    const mine = validateChain(c.chainPem, c.anchors ?? pki.anchors, c.at, c.purpose);
    const theirs = await stockJudge(c);
    verdicts.push(mine.ok);
    expect(mine.ok, `glassbox: ${mine.ok ? 'accept' : mine.reason}\nopenssl: ${theirs.detail}`).toBe(theirs.ok);
  });

  it('the cases include both accepted and rejected chains', () => {
    expect(verdicts).toHaveLength(cases.length);
    expect(verdicts.filter(Boolean).length).toBeGreaterThanOrEqual(4);
    expect(verdicts.filter((v) => !v).length).toBeGreaterThanOrEqual(20);
  });
});
