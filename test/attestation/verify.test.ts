import { beforeAll, describe, expect, it } from 'vitest';
import { canonicalBytes } from '../../src/manifest/canonical.js';
import { pae, PAYLOAD_TYPE } from '../../src/attestation/dsse.js';
import { verifyAttestation } from '../../src/attestation/verify.js';
import { PREDICATE_TYPE, STATEMENT_TYPE, buildStatement } from '../../src/attestation/statement.js';
import type { TestPki } from '../helpers/pki.js';
import { NONCE, deviceOf, envelopeFor, pkis, snapshotFixture, type Device } from './fixtures.js';

let pki: TestPki;
let other: TestPki;
let device: Device;
const now = new Date();
const opts = { nonce: NONCE, now, maxAgeSeconds: 300 };

beforeAll(async () => {
  ({ pki, other } = await pkis());
  device = await deviceOf(pki, 'nvr-0001');
});

function codes(r: { failures: readonly { code: string }[] }): string[] {
  return r.failures.map((f) => f.code);
}

describe('PAE', () => {
  it('matches the DSSE specification example', () => {
    expect(pae('http://example.com/HelloWorld', Buffer.from('hello world')).toString()).toBe('DSSEv1 29 http://example.com/HelloWorld 11 hello world');
  });
  it('counts bytes, not characters', () => {
    expect(pae('t', Buffer.from('é')).toString('latin1')).toBe('DSSEv1 1 t 2 Ã©');
  });
});

describe('the statement', () => {
  it('is an in-toto Statement v1 with the spec fields', () => {
    const s = buildStatement({ snapshot: snapshotFixture(), nonce: NONCE, issuedAt: new Date('2026-06-01T12:00:00.123Z'), device: { id: 'nvr-0001', hardware: 'nvr-8p', certificateSha256: '00'.repeat(32) } });
    expect(s._type).toBe(STATEMENT_TYPE);
    expect(s.predicateType).toBe(PREDICATE_TYPE);
    expect(s.subject).toEqual([{ name: 'firmware-manifest', digest: { sha256: 'ab'.repeat(32) } }]);
    expect(s.predicate.issuedAt).toBe('2026-06-01T12:00:00Z');
    expect(Object.keys(s.predicate).sort()).toEqual(expect.arrayContaining(['nonce', 'issuedAt', 'device', 'boot', 'firmware', 'policy', 'observation', 'flows', 'undeclared', 'verdict']));
    expect(s.predicate.flows[0]).toMatchObject({ direction: 'local', proto: 'tcp', src: '192.0.2.1', dst: '203.0.113.66', dport: 7000, count: 2, rule: null, process: null });
    // Canonical bytes are stable and parse back to the same value.
    expect(JSON.parse(canonicalBytes(s).toString())).toEqual(JSON.parse(JSON.stringify(s)));
  });
  it('refuses a bad nonce', () => {
    expect(() => buildStatement({ snapshot: snapshotFixture(), nonce: 'short', issuedAt: now, device: { id: 'x', hardware: null, certificateSha256: '' } })).toThrow(/nonce/);
  });
});

describe('verifyAttestation', () => {
  it('accepts a fresh envelope from the device, and reports its verdict and undeclared flows', async () => {
    const r = verifyAttestation(await envelopeFor(device, { issuedAt: now }), pki.anchors, opts);
    expect(r.failures).toEqual([]);
    expect(r.ok).toBe(true);
    expect(r.deviceId).toBe('nvr-0001');
    expect(r.verdict).toBe('undeclared-egress');
    expect(r.undeclaredFlows.map((f) => f.dst)).toEqual(['203.0.113.66']);
  });

  describe('when the payload was tampered with', () => {
    it('fails SIGNATURE_INVALID', async () => {
      const env = JSON.parse((await envelopeFor(device, { issuedAt: now })).toString()) as { payload: string };
      const doc = Buffer.from(env.payload, 'base64').toString().replace('"undeclared":2', '"undeclared":0').replace('"verdict":"undeclared-egress"', '"verdict":"clean"');
      env.payload = Buffer.from(doc).toString('base64');
      const r = verifyAttestation(Buffer.from(JSON.stringify(env)), pki.anchors, opts);
      expect(r.ok).toBe(false);
      expect(codes(r)).toEqual(['SIGNATURE_INVALID']);
    });
  });

  it('fails NONCE_MISMATCH for another nonce', async () => {
    const r = verifyAttestation(await envelopeFor(device, { issuedAt: now, nonce: 'another-nonce-0000000' }), pki.anchors, opts);
    expect(codes(r)).toEqual(['NONCE_MISMATCH']);
  });

  it('fails STALE when issuedAt is older than the limit', async () => {
    const r = verifyAttestation(await envelopeFor(device, { issuedAt: new Date(now.getTime() - 301_000) }), pki.anchors, opts);
    expect(codes(r)).toEqual(['STALE']);
  });

  it('fails NOT_YET_ISSUED when issuedAt is ahead beyond the skew', async () => {
    const r = verifyAttestation(await envelopeFor(device, { issuedAt: new Date(now.getTime() + 120_000) }), pki.anchors, opts);
    expect(codes(r)).toEqual(['NOT_YET_ISSUED']);
  });

  it('fails DEVICE_MISMATCH when the certificate is another device\'s', async () => {
    const intruder = await deviceOf(pki, 'nvr-9999');
    const r = verifyAttestation(await envelopeFor(intruder, { issuedAt: now, claimed: device }), pki.anchors, opts);
    expect(codes(r)).toContain('DEVICE_MISMATCH');
    expect(codes(r)).toContain('CERTIFICATE_MISMATCH');
    expect(r.ok).toBe(false);
  });

  it('fails CERTIFICATE_EXPIRED for an expired device certificate', async () => {
    const old = await deviceOf(pki, 'nvr-0002', { notBefore: new Date(now.getTime() - 20 * 86400_000), notAfter: new Date(now.getTime() - 86400_000) });
    const r = verifyAttestation(await envelopeFor(old, { issuedAt: now }), pki.anchors, opts);
    expect(r.code).toBe('CERTIFICATE_EXPIRED');
    expect(codes(r)).toContain('CHAIN_UNTRUSTED');
  });

  it('fails CHAIN_UNTRUSTED for a chain to another root', async () => {
    const foreign = await deviceOf(other, 'nvr-0001');
    const r = verifyAttestation(await envelopeFor(foreign, { issuedAt: now }), pki.anchors, opts);
    expect(codes(r)).toEqual(['CHAIN_UNTRUSTED']);
    expect(r.reason).toMatch(/device certificate chain/);
  });

  it('fails ENVELOPE_MALFORMED for bytes that are not an envelope', () => {
    for (const bad of ['not json', '[]', '{}', JSON.stringify({ payloadType: PAYLOAD_TYPE, payload: 'e30=', signatures: [], certificates: 'x' })]) {
      const r = verifyAttestation(Buffer.from(bad), pki.anchors, opts);
      expect(r.ok).toBe(false);
      expect(r.code).toBe('ENVELOPE_MALFORMED');
    }
  });

  it('fails DOCUMENT_MALFORMED for a signed payload that is not canonical', async () => {
    const r = verifyAttestation(await envelopeFor(device, { issuedAt: now, mutate: (s) => ({ ...s, _type: 'https://in-toto.io/Statement/v0.1' as never }) }), pki.anchors, opts);
    expect(codes(r)).toEqual(['DOCUMENT_MALFORMED']);
  });

  it('fails KEYID_MISMATCH when the keyid names another key', async () => {
    const env = JSON.parse((await envelopeFor(device, { issuedAt: now })).toString()) as { signatures: Array<{ keyid: string }> };
    env.signatures[0]!.keyid = '00'.repeat(32);
    expect(codes(verifyAttestation(Buffer.from(JSON.stringify(env)), pki.anchors, opts))).toEqual(['KEYID_MISMATCH']);
  });
});
