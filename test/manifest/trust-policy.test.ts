import { describe, expect, it } from 'vitest';
import { validateTrustPolicy } from '../../src/manifest/schema.js';

const PEM_A = '-----BEGIN CERTIFICATE-----\nMIIBszCCAVmgAwIBAgIUQ0FBQ0FBQ0FBQ0FBQ0FBQ0FBQ0FBQ0EwCgYIKoZIzj0E\nAwIwEjEQMA4GA1UEAwwHcm9vdC1jYQ==\n-----END CERTIFICATE-----\n';
const PEM_B = PEM_A.replace('MIIBsz', 'MIIBsy');

function policy(): Record<string, unknown> & { revoked: Record<string, unknown> } {
  return { schema: 'glassbox.trust/v1', roots: [PEM_A], threshold: 2, revoked: { certificates: ['a'.repeat(64)], keys: [] } };
}

function errorsOf(mutate: (p: ReturnType<typeof policy>) => void): string[] {
  const p = policy();
  mutate(p);
  const r = validateTrustPolicy(p);
  return r.ok ? [] : r.errors;
}

function expectRejected(mutate: (p: ReturnType<typeof policy>) => void, path: string, text: string): void {
  const errors = errorsOf(mutate);
  expect(errors.some((e) => e.startsWith(`${path}: `) && e.includes(text)), errors.join('\n')).toBe(true);
}

describe('trust policy schema', () => {
  it('accepts a valid policy, with or without a trailing newline in the PEM', () => {
    expect(validateTrustPolicy(policy())).toEqual({ ok: true, policy: policy() });
    expect(errorsOf((p) => (p.roots = [PEM_A.trimEnd(), PEM_B]))).toEqual([]);
  });

  for (const field of ['schema', 'roots', 'threshold', 'revoked']) {
    it(`rejects a policy without ${field}`, () => expectRejected((p) => delete p[field], '/', `missing required field "${field}"`));
  }
  for (const field of ['certificates', 'keys']) {
    it(`rejects revoked without ${field}`, () => expectRejected((p) => delete p.revoked[field], '/revoked', `missing required field "${field}"`));
  }
  it('rejects an unknown field', () => expectRejected((p) => (p.thresholdFromBundle = true), '/', 'unknown field "thresholdFromBundle"'));
  it('rejects an unknown revocation kind', () => expectRejected((p) => (p.revoked.serials = []), '/revoked', 'unknown field "serials"'));
  it('rejects another schema', () => expectRejected((p) => (p.schema = 'glassbox.manifest/v1'), '/schema', 'must be "glassbox.trust/v1"'));

  describe('threshold', () => {
    it('rejects 0', () => expectRejected((p) => (p.threshold = 0), '/threshold', 'must be >= 1'));
    it('rejects 1.5', () => expectRejected((p) => (p.threshold = 1.5), '/threshold', 'must be integer'));
    it('rejects "2"', () => expectRejected((p) => (p.threshold = '2'), '/threshold', 'must be integer'));
    it('accepts 1 and 16, rejects 17 (a bundle has at most 16 signers)', () => {
      expect(errorsOf((p) => (p.threshold = 1))).toEqual([]);
      expect(errorsOf((p) => (p.threshold = 16))).toEqual([]);
      expectRejected((p) => (p.threshold = 17), '/threshold', 'must be <= 16');
    });
  });

  describe('roots', () => {
    it('rejects an empty list: no trust material is an error', () => expectRejected((p) => (p.roots = []), '/roots', 'must NOT have fewer than 1 items'));
    it('rejects a non-PEM string', () => expectRejected((p) => (p.roots = ['MIIBszCCAVmg']), '/roots/0', 'must match pattern'));
    it('rejects an empty string', () => expectRejected((p) => (p.roots = ['']), '/roots/0', 'must match pattern'));
    it('rejects a private key block', () =>
      expectRejected((p) => (p.roots = [PEM_A.replaceAll('CERTIFICATE', 'PRIVATE KEY')]), '/roots/0', 'must match pattern'));
    it('rejects two certificates in one string', () => expectRejected((p) => (p.roots = [PEM_A + PEM_B]), '/roots/0', 'must match pattern'));
    it('rejects CRLF line ends', () => expectRejected((p) => (p.roots = [PEM_A.replaceAll('\n', '\r\n')]), '/roots/0', 'must match pattern'));
    it('rejects a repeated root', () => expectRejected((p) => (p.roots = [PEM_A, PEM_A]), '/roots', 'duplicate'));
    it('rejects 17 roots', () =>
      expectRejected((p) => (p.roots = Array.from({ length: 17 }, (_, i) => PEM_A.replace('MIIB', `MI${String.fromCharCode(65 + i)}B`))), '/roots', 'must NOT have more than 16 items'));
  });

  describe('revoked', () => {
    it('rejects an uppercase hash', () => expectRejected((p) => (p.revoked.keys = ['A'.repeat(64)]), '/revoked/keys/0', 'must match pattern'));
    it('rejects a short hash', () => expectRejected((p) => (p.revoked.certificates = ['a'.repeat(63)]), '/revoked/certificates/0', 'must match pattern'));
    it('rejects a repeated hash', () => expectRejected((p) => (p.revoked.keys = ['b'.repeat(64), 'b'.repeat(64)]), '/revoked/keys', 'duplicate'));
    it('accepts 4096 distinct hashes quickly and rejects 4097', () => {
      const hashes = Array.from({ length: 4097 }, (_, i) => i.toString(16).padStart(64, '0'));
      const t0 = performance.now();
      expect(errorsOf((p) => (p.revoked.keys = hashes.slice(0, 4096)))).toEqual([]);
      expect(performance.now() - t0).toBeLessThan(500);
      expectRejected((p) => (p.revoked.keys = hashes), '/revoked/keys', 'must NOT have more than 4096 items');
    });
  });
});
