/**
 * Interoperability with stock tools, the other way round from the buyer
 * check (test/buyer): keys, certificates and signatures made ONLY with the
 * `openssl` command line (genpkey, req, x509, dgst -sign), and bundles put
 * together with GNU tar, verify with glassbox's verifyBundle. So a release
 * engineer without glassbox (or with an HSM driven by openssl) can produce
 * bundles the recorders accept.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { mkdir, readFile, writeFile, copyFile } from 'node:fs/promises';
import { join } from 'node:path';
import { verifyBundleFile } from '../../src/bundle/verify.js';
import type { VerifyReport } from '../../src/bundle/types.js';
import { writeBundle } from '../../src/bundle/writer.js';
import { loadTrustAnchors } from '../../src/trust/policy.js';
import { canonicalBytes } from '../../src/manifest/canonical.js';
import { makeRelease, tempDir, type Release, removeTempDirs } from '../release/fixtures.js';

afterAll(removeTempDirs);

const CONFIG = `
[req]
distinguished_name = dn
prompt = no
[dn]
CN = unused
[root]
basicConstraints = critical,CA:TRUE
keyUsage = critical,keyCertSign,cRLSign
subjectKeyIdentifier = hash
[inter]
basicConstraints = critical,CA:TRUE,pathlen:0
keyUsage = critical,keyCertSign,cRLSign
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid:always
[leaf]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature
extendedKeyUsage = codeSigning
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid:always
`;

let dir: string;
let rel: Release;
let policy: Buffer;

function openssl(args: string[]): Buffer {
  return execFileSync('openssl', args, { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] });
}

function serial(): string {
  return '0x' + Array.from({ length: 16 }, () => Math.floor(Math.random() * 16).toString(16)).join('').replace(/^0/, '1');
}

/** openssl genpkey for each signer flavour. */
function genkey(name: string, kind: 'p256' | 'p384' | 'rsa3072'): void {
  const opts = kind === 'rsa3072' ? ['-algorithm', 'RSA', '-pkeyopt', 'rsa_keygen_bits:3072'] : ['-algorithm', 'EC', '-pkeyopt', `ec_paramgen_curve:${kind === 'p256' ? 'P-256' : 'P-384'}`];
  openssl(['genpkey', ...opts, '-out', `${name}.key`]);
}

/** A certificate for `name` signed by `issuer` with the given extension section. */
function issue(name: string, issuer: string, section: 'inter' | 'leaf'): void {
  openssl(['req', '-new', '-key', `${name}.key`, '-subj', `/O=Interop Test/CN=${name}`, '-config', 'openssl.cnf', '-out', `${name}.csr`]);
  openssl(['x509', '-req', '-in', `${name}.csr`, '-CA', `${issuer}.pem`, '-CAkey', `${issuer}.key`, '-set_serial', serial(), '-days', '30', '-sha256', '-extfile', 'openssl.cnf', '-extensions', section, '-out', `${name}.pem`]);
}

interface OpensslSigner {
  readonly name: string;
  readonly dgst: string[];
}

const SIGNERS: { name: string; kind: 'p256' | 'p384' | 'rsa3072'; dgst: string[]; algorithm: string }[] = [
  { name: 'signer-p256', kind: 'p256', dgst: ['-sha256'], algorithm: 'ecdsa-p256-sha256' },
  { name: 'signer-p384', kind: 'p384', dgst: ['-sha384'], algorithm: 'ecdsa-p384-sha384' },
  { name: 'signer-rsa-pkcs1', kind: 'rsa3072', dgst: ['-sha256'], algorithm: 'rsa-pkcs1v15-sha256' },
  { name: 'signer-rsa-pss', kind: 'rsa3072', dgst: ['-sha256', '-sigopt', 'rsa_padding_mode:pss', '-sigopt', 'rsa_pss_saltlen:32'], algorithm: 'rsa-pss-sha256' },
];

/** `openssl dgst -sign` over manifest.json. */
function opensslSign(s: OpensslSigner, file = 'manifest.json'): Buffer {
  return openssl(['dgst', ...s.dgst, '-sign', `${s.name}.key`, file]);
}

function policyWith(threshold: number): Buffer {
  return canonicalBytes({ revoked: { certificates: [], keys: [] }, roots: [policy.toString()], schema: 'glassbox.trust/v1', threshold });
}

async function verify(bundle: string, threshold: number): Promise<VerifyReport> {
  return verifyBundleFile(bundle, { trust: loadTrustAnchors(policyWith(threshold)), at: new Date(), hardware: 'nvr-8p', securityFloor: 0 });
}

async function chainOf(name: string): Promise<string> {
  return (await readFile(join(dir, `${name}.pem`), 'utf8')) + (await readFile(join(dir, 'inter.pem'), 'utf8'));
}

beforeAll(async () => {
  dir = await tempDir('interop');
  await writeFile(join(dir, 'openssl.cnf'), CONFIG);
  genkey('root', 'p384');
  openssl(['req', '-x509', '-new', '-key', 'root.key', '-subj', '/O=Interop Test/CN=openssl root', '-config', 'openssl.cnf', '-extensions', 'root', '-days', '30', '-sha384', '-set_serial', serial(), '-out', 'root.pem']);
  genkey('inter', 'p256');
  issue('inter', 'root', 'inter');
  for (const s of SIGNERS) {
    genkey(s.name, s.kind);
    issue(s.name, 'inter', 'leaf');
  }
  policy = await readFile(join(dir, 'root.pem'));
  rel = await makeRelease(dir);
  await writeFile(join(dir, 'manifest.json'), rel.manifestBytes);
}, 120_000);

describe('signatures made by openssl dgst -sign verify with verifyBundle', () => {
  for (const s of SIGNERS) {
    it(`${s.name}: openssl dgst ${s.dgst.join(' ')} -sign → ${s.algorithm}`, async () => {
      const bundle = join(dir, `${s.name}.bundle`);
      await writeBundle(bundle, { manifestBytes: rel.manifestBytes, signatures: [{ sig: opensslSign(s), chainPem: await chainOf(s.name) }], artifacts: rel.artifacts });
      const report = await verify(bundle, 1);
      expect(report.signers[0]).toMatchObject({ index: 1, outcome: 'valid', subject: expect.stringContaining(s.name) });
      expect(report.code).toBeNull();
      expect(report.ok).toBe(true);
    });
  }

  it('all four openssl signers together meet a threshold of 4', async () => {
    const bundle = join(dir, 'four.bundle');
    const signatures = [];
    for (const s of SIGNERS) signatures.push({ sig: opensslSign(s), chainPem: await chainOf(s.name) });
    await writeBundle(bundle, { manifestBytes: rel.manifestBytes, signatures, artifacts: rel.artifacts });
    const report = await verify(bundle, 4);
    expect(report.signers.map((x) => x.outcome)).toEqual(['valid', 'valid', 'valid', 'valid']);
    expect(report.distinctValidSigners).toBe(4);
    expect(report.ok).toBe(true);
  });

  describe('and openssl signatures outside the accepted algorithms are refused', () => {
    const cases: { what: string; signer: string; dgst: string[] }[] = [
      { what: 'P-256 key with SHA-384', signer: 'signer-p256', dgst: ['-sha384'] },
      { what: 'P-384 key with SHA-256', signer: 'signer-p384', dgst: ['-sha256'] },
      { what: 'RSA PKCS #1 v1.5 with SHA-1', signer: 'signer-rsa-pkcs1', dgst: ['-sha1'] },
      { what: 'RSA-PSS with a 20-byte salt', signer: 'signer-rsa-pss', dgst: ['-sha256', '-sigopt', 'rsa_padding_mode:pss', '-sigopt', 'rsa_pss_saltlen:20'] },
      { what: 'RSA-PSS with SHA-512', signer: 'signer-rsa-pss', dgst: ['-sha512', '-sigopt', 'rsa_padding_mode:pss', '-sigopt', 'rsa_pss_saltlen:64'] },
    ];
    for (const c of cases) {
      it(c.what, async () => {
        const bundle = join(dir, `bad-${c.signer}.bundle`);
        const sig = opensslSign({ name: c.signer, dgst: c.dgst });
        await writeBundle(bundle, { manifestBytes: rel.manifestBytes, signatures: [{ sig, chainPem: await chainOf(c.signer) }], artifacts: rel.artifacts });
        const report = await verify(bundle, 1);
        expect(report.signers[0]!.outcome).toBe('SIGNATURE_INVALID');
        expect(report.code).toBe('SIGNATURE_INVALID');
      });
    }
  });
});

describe('bundles assembled with GNU tar verify with verifyBundle', () => {
  for (const format of ['ustar', 'posix'] as const) {
    it(`tar --format=${format} of manifest.json, openssl signature pairs and artifacts, in section-1 order`, async () => {
      const work = join(dir, `gnutar-${format}`);
      await mkdir(join(work, 'signatures'), { recursive: true });
      await mkdir(join(work, 'artifacts'), { recursive: true });
      await writeFile(join(work, 'manifest.json'), rel.manifestBytes);
      const members = ['manifest.json'];
      for (const [i, s] of SIGNERS.slice(0, 2).entries()) {
        await writeFile(join(work, 'signatures', `${i + 1}.sig`), opensslSign(s));
        await writeFile(join(work, 'signatures', `${i + 1}.pem`), await chainOf(s.name));
        members.push(`signatures/${i + 1}.sig`, `signatures/${i + 1}.pem`);
      }
      for (const a of rel.artifacts) {
        await copyFile(a.path, join(work, 'artifacts', a.name));
        members.push(`artifacts/${a.name}`);
      }
      const bundle = join(dir, `gnutar-${format}.bundle`);
      execFileSync('tar', [`--format=${format}`, '-cf', bundle, '-C', work, ...members]);
      expect(execFileSync('tar', ['-tf', bundle], { encoding: 'utf8' }).trim().split('\n')).toEqual(members);
      const report = await verify(bundle, 2);
      expect(report.code).toBeNull();
      expect(report.ok).toBe(true);
    });
  }
});
