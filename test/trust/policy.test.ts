import { describe, expect, it, beforeAll } from 'vitest';
import { createHash } from 'node:crypto';
import { loadTrustAnchors } from '../../src/trust/policy.js';
import { GlassboxError } from '../../src/errors.js';
import { createRootCa, createLeaf } from '../../src/pki/certs.js';
import { canonicalBytes } from '../../src/manifest/canonical.js';
import { makeTestPki, testKey, trustPolicyBytes, type TestPki } from '../helpers/pki.js';

let pki: TestPki;
beforeAll(async () => {
  pki = await makeTestPki({ signers: 1, threshold: 1 });
});

function refused(bytes: Buffer, pattern: RegExp): void {
  let err: unknown;
  try {
    loadTrustAnchors(bytes);
  } catch (e) {
    err = e;
  }
  expect(err).toBeInstanceOf(GlassboxError);
  expect((err as GlassboxError).code).toBe('TRUST_POLICY_INVALID');
  expect((err as GlassboxError).message).toMatch(pattern);
}

describe('when the policy is well formed', () => {
  it('loads roots, threshold and revocations, and fingerprints the exact bytes', () => {
    const rev = { certificates: ['a'.repeat(64)], keys: ['b'.repeat(64)] };
    const bytes = trustPolicyBytes([pki.root.pem], 2, rev);
    const anchors = loadTrustAnchors(bytes);
    expect(anchors.roots).toHaveLength(1);
    expect(anchors.roots[0]?.raw.equals(pki.root.cert.raw)).toBe(true);
    expect(anchors.policy.threshold).toBe(2);
    expect(anchors.policy.revoked).toEqual(rev);
    expect(anchors.sha256).toBe(createHash('sha256').update(bytes).digest('hex'));
  });

  it('is frozen, so no caller can loosen it', () => {
    const anchors = loadTrustAnchors(trustPolicyBytes([pki.root.pem], 2));
    expect(Object.isFrozen(anchors)).toBe(true);
    expect(Object.isFrozen(anchors.policy.revoked.keys)).toBe(true);
    expect(() => (anchors.policy as { threshold: number }).threshold = 0).toThrow();
  });

  it('accepts several roots', async () => {
    const other = await createRootCa({ key: await testKey('rsa-3072', 'root2'), subject: 'CN=second root', now: pki.now });
    expect(loadTrustAnchors(trustPolicyBytes([pki.root.pem, other.pem], 1)).roots).toHaveLength(2);
  });
});

describe('when there is no usable trust material', () => {
  it('refuses an empty file', () => refused(Buffer.alloc(0), /empty/));
  it('refuses a policy without roots', () => refused(trustPolicyBytes([], 1), /roots/));
  it('refuses a threshold of 0', () => refused(trustPolicyBytes([pki.root.pem], 0), /threshold/));
  it('refuses a threshold that is not an integer', () => {
    const v = { revoked: { certificates: [], keys: [] }, roots: [pki.root.pem], schema: 'glassbox.trust/v1', threshold: 1.5 };
    refused(canonicalBytes(v), /threshold/);
  });
});

describe('when the bytes are not canonical JSON', () => {
  it('refuses pretty-printed JSON', () => {
    const v = JSON.parse(trustPolicyBytes([pki.root.pem], 1).toString());
    refused(Buffer.from(JSON.stringify(v, null, 2)), /not canonical/);
  });
  it('refuses a duplicated key', () => {
    const text = trustPolicyBytes([pki.root.pem], 2).toString().replace('"threshold":2', '"threshold":1,"threshold":2');
    refused(Buffer.from(text), /not canonical/);
  });
  it('refuses garbage', () => refused(Buffer.from('not json'), /not canonical/));
});

describe('when the schema is violated', () => {
  it('refuses an unknown field', () => {
    const v = { extra: true, revoked: { certificates: [], keys: [] }, roots: [pki.root.pem], schema: 'glassbox.trust/v1', threshold: 1 };
    refused(canonicalBytes(v), /extra|additional/i);
  });
  it('refuses an uppercase revoked hash', () => refused(trustPolicyBytes([pki.root.pem], 1, { keys: ['A'.repeat(64)] }), /revoked/));
  it('refuses a wrong schema version', () => {
    const v = { revoked: { certificates: [], keys: [] }, roots: [pki.root.pem], schema: 'glassbox.trust/v2', threshold: 1 };
    refused(canonicalBytes(v), /schema/);
  });
});

describe('when a root is not a root', () => {
  it('refuses an intermediate (not self-signed)', () => refused(trustPolicyBytes([pki.releaseCa.pem], 1), /roots\[0\] .* is not self-signed/));
  it('refuses a self-signed certificate that is not a CA', async () => {
    const self = await createRootCa({ key: await testKey('ecdsa-p256', 'selfleaf'), subject: 'CN=self leaf', now: pki.now }, { basicConstraints: { ca: false } });
    refused(trustPolicyBytes([self.pem], 1), /is not a CA/);
  });
  it('refuses a root with a refused key algorithm', async () => {
    const weak = await createRootCa({ key: await testKey('rsa-2048', 'weakroot'), subject: 'CN=weak root', now: pki.now });
    refused(trustPolicyBytes([weak.pem], 1), /RSA-2048 .* not an accepted algorithm/);
  });
  it('refuses two certificates in one roots entry', () => refused(trustPolicyBytes([pki.root.pem + pki.releaseCa.pem], 1), /roots(\[0\]|\/0)/));
  it('refuses base64 that is not a certificate', () => refused(trustPolicyBytes(['-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n'], 1), /not a parsable/));
  it('refuses the same root twice in different PEM line lengths', () => {
    const b64 = pki.root.cert.raw.toString('base64');
    const wide = `-----BEGIN CERTIFICATE-----\n${b64.replace(/(.{76})/g, '$1\n').replace(/\n$/, '')}\n-----END CERTIFICATE-----\n`;
    refused(trustPolicyBytes([pki.root.pem, wide], 1), /roots\[0\] and roots\[1\] are the same certificate/);
  });
  it('names every faulty root', async () => {
    const leaf = await createLeaf(pki.releaseCa, { key: await testKey('ecdsa-p256', 'x'), subject: 'CN=x', purpose: 'codeSigning', now: pki.now });
    refused(trustPolicyBytes([pki.releaseCa.pem, leaf.pem], 1), /roots\[0\].*; roots\[1\]/);
  });
});
