import { describe, expect, it, beforeAll } from 'vitest';
import { X509Certificate } from 'node:crypto';
import { validateChain, DEFAULT_CHAIN_LIMITS, type ChainResult } from '../../src/trust/chain.js';
import { certSha256, spkiSha256 } from '../../src/trust/fingerprint.js';
import { createIntermediateCa, createLeaf, createRootCa, EKU_OIDS, KeyUsage } from '../../src/pki/certs.js';
import { x509 } from '../../src/pki/x509.js';
import { anchorsFor, DAY, hostileSigner, makeTestPki, testDeviceCert, testKey, type HostileKind, type TestPki } from '../helpers/pki.js';

// A malformed key block (three zero bytes), spelled so no scanner takes it for a committed key.
const FAKE_KEY_BLOCK = ['-----BEGIN', 'PRIVATE KEY-----\nAAAA\n-----END', 'PRIVATE KEY-----\n'].join(' ');

let pki: TestPki;
beforeAll(async () => {
  pki = await makeTestPki();
});

function rejected(r: ChainResult, pattern: RegExp): string[] {
  expect(r.ok).toBe(false);
  if (r.ok) return [];
  expect(r.reasons.some((x) => pattern.test(x)), `no reason matches ${pattern}: ${r.reason}`).toBe(true);
  expect(r.reason).toBe(r.reasons.join('; '));
  return [...r.reasons];
}

describe('when the chain is a well-formed release signer chain', () => {
  it('is accepted with the full path, the leaf key fingerprint and subject', () => {
    const r = validateChain(pki.chains[0] as string, pki.anchors, pki.now, 'codeSigning');
    expect(r.ok).toBe(true);
    if (!r.ok) return;
    expect(r.path.map((c) => c.subject)).toEqual([pki.signers[0]?.cert.subject, pki.releaseCa.cert.subject, pki.root.cert.subject]);
    expect(r.spkiSha256).toBe(spkiSha256(pki.signers[0]?.cert as X509Certificate));
    expect(r.subject).toBe('CN=pki test signer 1');
    expect(r.leaf.raw.equals(pki.signers[0]?.cert.raw as Buffer)).toBe(true);
  });

  it('accepts the chain as a Buffer and with CRLF line ends', () => {
    const crlf = (pki.chains[0] as string).replace(/\n/g, '\r\n');
    expect(validateChain(Buffer.from(crlf), pki.anchors, pki.now, 'codeSigning').ok).toBe(true);
  });

  it('accepts a leaf issued directly by the root', async () => {
    const leaf = await createLeaf(pki.root, { key: await testKey('ecdsa-p256', 'direct'), subject: 'CN=direct', purpose: 'codeSigning', now: pki.now });
    expect(validateChain(leaf.pem, pki.anchors, pki.now, 'codeSigning').ok).toBe(true);
  });

  it('is refused for the clientAuth purpose (the leaf is codeSigning only)', () => {
    rejected(validateChain(pki.chains[0] as string, pki.anchors, pki.now, 'clientAuth'), /lacks clientAuth/);
  });
});

describe('when a device identity chain is checked', () => {
  it('is accepted for clientAuth and refused for codeSigning', async () => {
    const dev = await testDeviceCert(pki, 'NVR-0042', 'hss-nvr-16');
    const ok = validateChain(dev.chainPem, pki.anchors, pki.now, 'clientAuth');
    expect(ok.ok).toBe(true);
    if (ok.ok) expect(ok.subject).toContain('CN=NVR-0042');
    rejected(validateChain(dev.chainPem, pki.anchors, pki.now, 'codeSigning'), /lacks codeSigning/);
  });
});

const chainFaults: Array<[HostileKind, RegExp]> = [
  ['expired', /leaf .* has expired/],
  ['not-yet-valid', /leaf .* is not yet valid/],
  ['no-eku', /has no extendedKeyUsage/],
  ['client-auth-eku', /lacks codeSigning/],
  ['ca-leaf', /is a CA \(basicConstraints CA:TRUE\) used as a leaf/],
  ['no-digital-signature', /keyUsage lacks digitalSignature/],
  ['self-signed', /self-signed/],
  ['foreign-root', /not issued by any policy root/],
  ['intermediate-missing', /not issued by any policy root/],
  ['expired-intermediate', /certificate #2 .* has expired/],
  ['pathlen-exceeded', /pathLenConstraint 0 but 1 intermediate/],
];

describe.each(chainFaults)('when the signer is %s', (kind, pattern) => {
  it('is refused naming the rule', async () => {
    const h = await hostileSigner(pki, kind);
    rejected(validateChain(h.chainPem, pki.anchors, pki.now, 'codeSigning'), pattern);
  });
});

describe('when the verification time moves', () => {
  const leafWindow = async () => {
    // Inside the CAs' validity (which starts an hour before pki.now).
    const nb = new Date(pki.now.getTime() + DAY);
    const na = new Date(pki.now.getTime() + 30 * DAY);
    const leaf = await createLeaf(pki.releaseCa, { key: await testKey('ecdsa-p256', 'window'), subject: 'CN=window', purpose: 'codeSigning' }, { notBefore: nb, notAfter: na });
    return { chain: leaf.pem + pki.releaseCa.pem, nb, na };
  };

  it('accepts from notBefore and refuses one second earlier', async () => {
    const { chain, nb } = await leafWindow();
    expect(validateChain(chain, pki.anchors, nb, 'codeSigning').ok).toBe(true);
    rejected(validateChain(chain, pki.anchors, new Date(nb.getTime() - 1000), 'codeSigning'), /not yet valid/);
  });

  it('refuses from notAfter on, as openssl does, and accepts one second earlier', async () => {
    const { chain, na } = await leafWindow();
    expect(validateChain(chain, pki.anchors, new Date(na.getTime() - 1000), 'codeSigning').ok).toBe(true);
    rejected(validateChain(chain, pki.anchors, na, 'codeSigning'), /has expired/);
  });

  it('refuses a chain whose root has expired at the verification time', () => {
    const late = new Date(pki.now.getTime() + 21 * 365 * DAY);
    const reasons = rejected(validateChain(pki.chains[0] as string, pki.anchors, late, 'codeSigning'), /root .* has expired/);
    // every certificate of the path is reported, not only the first
    expect(reasons.filter((x) => /has expired/.test(x))).toHaveLength(3);
  });

  it('refuses a chain whose root is not yet valid at the verification time', () => {
    const early = new Date(pki.now.getTime() - 2 * 3600_000);
    rejected(validateChain(pki.chains[0] as string, pki.anchors, early, 'codeSigning'), /root .* is not yet valid/);
  });

  it('refuses an invalid Date instead of judging against it', () => {
    rejected(validateChain(pki.chains[0] as string, pki.anchors, new Date('nonsense'), 'codeSigning'), /not a valid date/);
  });
});

describe('when the policy revokes something in the path', () => {
  const leafOf = () => pki.signers[0]?.cert as X509Certificate;
  const cases: Array<[string, () => { certificates?: string[]; keys?: string[] }, RegExp]> = [
    ['the leaf certificate', () => ({ certificates: [certSha256(leafOf())] }), /leaf .* is revoked \(certificate sha256/],
    ['the leaf key', () => ({ keys: [spkiSha256(leafOf())] }), /leaf .* is revoked \(key SPKI sha256/],
    ['the intermediate certificate', () => ({ certificates: [certSha256(pki.releaseCa.cert)] }), /certificate #2 .* is revoked/],
    ['the intermediate key', () => ({ keys: [spkiSha256(pki.releaseCa.cert)] }), /certificate #2 .* is revoked \(key/],
    ['the root certificate', () => ({ certificates: [certSha256(pki.root.cert)] }), /root .* is revoked \(certificate/],
    ['the root key', () => ({ keys: [spkiSha256(pki.root.cert)] }), /root .* is revoked \(key/],
  ];
  it.each(cases)('refuses the chain when %s is revoked', (_what, revoked, pattern) => {
    const anchors = anchorsFor([pki.root.pem], 1, revoked());
    rejected(validateChain(pki.chains[0] as string, anchors, pki.now, 'codeSigning'), pattern);
  });

  it('refuses a re-issued certificate for a revoked key', async () => {
    const key = pki.signers[0]?.key;
    if (!key) throw new Error('no signer');
    const again = await createLeaf(pki.releaseCa, { key, subject: 'CN=re-issued', purpose: 'codeSigning', now: pki.now });
    const anchors = anchorsFor([pki.root.pem], 1, { keys: [spkiSha256(key.publicKey)] });
    rejected(validateChain(again.pem + pki.releaseCa.pem, anchors, pki.now, 'codeSigning'), /revoked \(key/);
  });
});

describe('when an issuer breaks a CA rule', () => {
  const under = async (caOverrides: Parameters<typeof createIntermediateCa>[2], slot: string, pathLen?: number | null) => {
    const ca = await createIntermediateCa(pki.root, { key: await testKey('ecdsa-p256', slot), subject: `CN=bad CA ${slot}`, now: pki.now, ...(pathLen === undefined ? {} : { pathLen }) }, caOverrides);
    const leaf = await createLeaf(ca, { key: await testKey('ecdsa-p256', `${slot}-leaf`), subject: `CN=leaf of ${slot}`, purpose: 'codeSigning', now: pki.now });
    return leaf.pem + ca.pem;
  };

  it('refuses an intermediate that is not a CA (CA:FALSE)', async () => {
    rejected(validateChain(await under({ basicConstraints: { ca: false } }, 'not-ca'), pki.anchors, pki.now, 'codeSigning'), /is not a CA/);
  });
  it('refuses an intermediate without basicConstraints', async () => {
    rejected(validateChain(await under({ basicConstraints: null }, 'no-bc'), pki.anchors, pki.now, 'codeSigning'), /is not a CA/);
  });
  it('refuses a CA whose basicConstraints is not critical', async () => {
    rejected(validateChain(await under({ basicConstraints: { ca: true, pathLen: 0, critical: false } }, 'bc-noncrit'), pki.anchors, pki.now, 'codeSigning'), /not critical/);
  });
  it('refuses a CA whose keyUsage lacks keyCertSign', async () => {
    rejected(validateChain(await under({ keyUsage: KeyUsage.digitalSignature | KeyUsage.cRLSign }, 'no-certsign'), pki.anchors, pki.now, 'codeSigning'), /lacks keyCertSign/);
  });
  it('refuses a CA without keyUsage', async () => {
    rejected(validateChain(await under({ keyUsage: null }, 'no-ku'), pki.anchors, pki.now, 'codeSigning'), /CA without keyUsage/);
  });
  it('refuses a CA whose extendedKeyUsage excludes the purpose', async () => {
    rejected(validateChain(await under({ extendedKeyUsage: [EKU_OIDS.clientAuth] }, 'ca-eku'), pki.anchors, pki.now, 'codeSigning'), /excludes codeSigning/);
  });
  it('accepts a CA whose extendedKeyUsage includes the purpose', async () => {
    expect(validateChain(await under({ extendedKeyUsage: [EKU_OIDS.codeSigning] }, 'ca-eku-ok'), pki.anchors, pki.now, 'codeSigning').ok).toBe(true);
  });
  it('refuses a path longer than the root allows', async () => {
    const root = await createRootCa({ key: await testKey('ecdsa-p256', 'pl-root'), subject: 'CN=pathLen 0 root', now: pki.now, pathLen: 0 });
    const ca = await createIntermediateCa(root, { key: await testKey('ecdsa-p256', 'pl-int'), subject: 'CN=pl int', now: pki.now });
    const leaf = await createLeaf(ca, { key: await testKey('ecdsa-p256', 'pl-leaf'), subject: 'CN=pl leaf', purpose: 'codeSigning', now: pki.now });
    rejected(validateChain(leaf.pem + ca.pem, anchorsFor([root.pem]), pki.now, 'codeSigning'), /root .* pathLenConstraint 0 but 1 intermediate/);
  });
  it('accepts two intermediates under pathLen 1', async () => {
    const top = await createIntermediateCa(pki.root, { key: await testKey('ecdsa-p256', 'pl1-top'), subject: 'CN=pl1 top', now: pki.now, pathLen: 1 });
    const sub = await createIntermediateCa(top, { key: await testKey('ecdsa-p256', 'pl1-sub'), subject: 'CN=pl1 sub', now: pki.now, pathLen: 0 });
    const leaf = await createLeaf(sub, { key: await testKey('ecdsa-p256', 'pl1-leaf'), subject: 'CN=pl1 leaf', purpose: 'codeSigning', now: pki.now });
    expect(validateChain(leaf.pem + sub.pem + top.pem, pki.anchors, pki.now, 'codeSigning').ok).toBe(true);
  });
  it('refuses a CA with an RSA-2048 key', async () => {
    const ca = await createIntermediateCa(pki.root, { key: await testKey('rsa-2048', 'weak-ca'), subject: 'CN=weak CA', now: pki.now });
    const leaf = await createLeaf(ca, { key: await testKey('ecdsa-p256', 'weak-leaf'), subject: 'CN=weak leaf', purpose: 'codeSigning', now: pki.now });
    rejected(validateChain(leaf.pem + ca.pem, pki.anchors, pki.now, 'codeSigning'), /RSA-2048 \(e=65537\) key, not accepted for a CA/);
  });
});

describe('when a certificate carries something the rules do not process', () => {
  it('refuses an unknown critical extension', async () => {
    const odd = new x509.Extension('1.3.6.1.4.1.55555.1', true, new Uint8Array([0x05, 0x00]));
    const leaf = await createLeaf(pki.releaseCa, { key: await testKey('ecdsa-p256', 'crit'), subject: 'CN=crit', purpose: 'codeSigning', now: pki.now }, { extraExtensions: [odd] });
    rejected(validateChain(leaf.pem + pki.releaseCa.pem, pki.anchors, pki.now, 'codeSigning'), /critical extension 1\.3\.6\.1\.4\.1\.55555\.1/);
  });
  it('refuses a leaf without authorityKeyIdentifier', async () => {
    const leaf = await createLeaf(pki.releaseCa, { key: await testKey('ecdsa-p256', 'noaki'), subject: 'CN=noaki', purpose: 'codeSigning', now: pki.now }, { authorityKeyIdentifier: false });
    rejected(validateChain(leaf.pem + pki.releaseCa.pem, pki.anchors, pki.now, 'codeSigning'), /no authorityKeyIdentifier/);
  });
});

describe('when the linkage is wrong', () => {
  it('refuses a leaf whose signature does not verify under the named issuer', async () => {
    // An impostor CA with the release CA's name signs a leaf without AKI: names match, signature does not.
    const impostor = await createIntermediateCa(pki.root, { key: await testKey('ecdsa-p256', 'impostor'), subject: 'CN=pki test release CA', now: pki.now });
    const leaf = await createLeaf(impostor, { key: await testKey('ecdsa-p256', 'imp-leaf'), subject: 'CN=imp leaf', purpose: 'codeSigning', now: pki.now }, { authorityKeyIdentifier: false });
    rejected(validateChain(leaf.pem + pki.releaseCa.pem, pki.anchors, pki.now, 'codeSigning'), /signature by certificate #2 .* does not verify/);
  });
  it('refuses the right certificates in the wrong order', () => {
    rejected(validateChain(pki.releaseCa.pem + pki.signers[0]?.pem, pki.anchors, pki.now, 'codeSigning'), /was not issued by/);
  });
  it('refuses a PEM that includes the policy root', () => {
    rejected(validateChain((pki.chains[0] as string) + pki.root.pem, pki.anchors, pki.now, 'codeSigning'), /is a policy root: the chain must not include the root/);
  });
  it('refuses a chain to a root that is not in the policy', async () => {
    const other = await makeTestPki({ namespace: 'other' });
    rejected(validateChain(other.chains[0] as string, pki.anchors, pki.now, 'codeSigning'), /not issued by any policy root/);
  });
  it('refuses an unrelated extra certificate after the intermediate', async () => {
    rejected(validateChain((pki.chains[0] as string) + pki.deviceCa.pem, pki.anchors, pki.now, 'codeSigning'), /was not issued by certificate #3/);
  });
});

describe('when the PEM is garbage or oversized', () => {
  const garbage: Array<[string, string | Buffer, RegExp]> = [
    ['empty', '', /no certificate/],
    ['plain text', 'hello world\n', /no certificate|outside CERTIFICATE/],
    ['random bytes', Buffer.from([0, 1, 2, 0xff, 0xfe, 10]), /not printable ASCII/],
    ['a broken base64 body', '-----BEGIN CERTIFICATE-----\nMIIB$$$$\n-----END CERTIFICATE-----\n', /not clean base64/],
    ['base64 that is not DER', '-----BEGIN CERTIFICATE-----\nAAAAAAAA\n-----END CERTIFICATE-----\n', /not a parsable X\.509/],
    ['a private key block', FAKE_KEY_BLOCK, /PRIVATE KEY block/],
    ['mismatched BEGIN/END', '-----BEGIN CERTIFICATE-----\nAAAA\n-----END X509 CRL-----\n', /does not match END/],
  ];
  it.each(garbage)('refuses %s', (_name, pem, pattern) => {
    rejected(validateChain(pem, pki.anchors, pki.now, 'codeSigning'), pattern);
  });

  it('refuses text around the blocks', () => {
    rejected(validateChain('subject=foo\n' + (pki.chains[0] as string), pki.anchors, pki.now, 'codeSigning'), /outside CERTIFICATE/);
  });
  it('refuses a certificate with trailing bytes inside the base64', () => {
    const der = Buffer.concat([pki.signers[0]?.cert.raw as Buffer, Buffer.from([0, 0])]);
    const pem = `-----BEGIN CERTIFICATE-----\n${der.toString('base64').replace(/(.{64})/g, '$1\n')}\n-----END CERTIFICATE-----\n`;
    rejected(validateChain(pem + pki.releaseCa.pem, pki.anchors, pki.now, 'codeSigning'), /trailing bytes/);
  });
  it(`refuses more than ${DEFAULT_CHAIN_LIMITS.maxCerts} certificates`, () => {
    const many = (pki.chains[0] as string) + pki.releaseCa.pem.repeat(DEFAULT_CHAIN_LIMITS.maxCerts);
    rejected(validateChain(many, pki.anchors, pki.now, 'codeSigning'), /more than 8 certificates/);
  });
  it.each(['-----BEGIN A-----\n', '-----BEGIN CERTIFICATE-----\n', '-----BEGIN CERTIFICATE-----\nAAAA\n'])(
    'refuses 64 KiB of repeated %j quickly (the PEM scan is linear)',
    (unit) => {
      const text = unit.repeat(Math.floor(DEFAULT_CHAIN_LIMITS.maxBytes / unit.length));
      const t0 = performance.now();
      const r = validateChain(text, pki.anchors, pki.now, 'codeSigning');
      const ms = performance.now() - t0;
      expect(r.ok).toBe(false);
      // measured about 2 ms; a quadratic scan took 200 ms on the same input
      expect(ms).toBeLessThan(50);
    },
  );
  it('refuses a BEGIN without END', () => {
    rejected(validateChain((pki.chains[0] as string) + '-----BEGIN CERTIFICATE-----\nAAAA\n', pki.anchors, pki.now, 'codeSigning'), /has no END line/);
  });
  it(`refuses more than ${DEFAULT_CHAIN_LIMITS.maxBytes} bytes`, () => {
    const big = (pki.chains[0] as string) + ' '.repeat(DEFAULT_CHAIN_LIMITS.maxBytes);
    rejected(validateChain(big, pki.anchors, pki.now, 'codeSigning'), /over the 65536-byte limit/);
  });
});

describe('when a chain has several faults', () => {
  it('reports every one of them, not only the last', async () => {
    const leaf = await createLeaf(
      pki.releaseCa,
      { key: await testKey('ecdsa-p256', 'multi'), subject: 'CN=multi', purpose: 'codeSigning', now: pki.now },
      { notAfter: new Date(pki.now.getTime() - DAY), notBefore: new Date(pki.now.getTime() - 10 * DAY), extendedKeyUsage: null, basicConstraints: { ca: true } },
    );
    const anchors = anchorsFor([pki.root.pem], 1, { keys: [spkiSha256(pki.releaseCa.cert)] });
    const reasons = rejected(validateChain(leaf.pem + pki.releaseCa.pem, anchors, pki.now, 'codeSigning'), /has expired/);
    for (const p of [/has expired/, /no extendedKeyUsage/, /used as a leaf/, /certificate #2 .* is revoked/]) {
      expect(reasons.some((x) => p.test(x)), String(p)).toBe(true);
    }
    const r = validateChain(leaf.pem + pki.releaseCa.pem, anchors, pki.now, 'codeSigning');
    if (!r.ok) {
      expect(r.subject).toBe('CN=multi');
      expect(r.spkiSha256).toBe(spkiSha256(leaf.cert));
    }
  });
});
