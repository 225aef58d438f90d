import { describe, expect, it, beforeAll } from 'vitest';
import fc from 'fast-check';
import { validateChain } from '../../src/trust/chain.js';
import { makeTestPki, type TestPki } from '../helpers/pki.js';

let pki: TestPki;
beforeAll(async () => {
  pki = await makeTestPki({ signers: 1, threshold: 1 });
});

const pem = (der: Buffer) => `-----BEGIN CERTIFICATE-----\n${der.toString('base64').replace(/(.{64})/g, '$1\n').replace(/\n$/, '')}\n-----END CERTIFICATE-----\n`;

describe('when any single byte of the leaf or intermediate DER is changed', () => {
  it('the chain is refused and validateChain never throws', () => {
    const leaf = pki.signers[0]?.cert.raw as Buffer;
    const inter = pki.releaseCa.cert.raw;
    fc.assert(
      fc.property(fc.boolean(), fc.nat(), fc.integer({ min: 1, max: 255 }), (inLeaf, pos, xor) => {
        const target = Buffer.from(inLeaf ? leaf : inter);
        const i = pos % target.length;
        target[i] = (target[i] ?? 0) ^ xor;
        const chain = inLeaf ? pem(target) + pem(inter) : pem(leaf) + pem(target);
        const r = validateChain(chain, pki.anchors, pki.now, 'codeSigning');
        expect(r.ok).toBe(false);
        // refused by a named rule, not by the catch-all for unexpected exceptions
        if (!r.ok) expect(r.reason).not.toMatch(/could not be judged/);
      }),
      { numRuns: 200 },
    );
  });
});

describe('when the PEM text is arbitrary', () => {
  it('validateChain refuses it without throwing', () => {
    fc.assert(
      fc.property(fc.string({ maxLength: 2000 }), (text) => {
        const r = validateChain(text, pki.anchors, pki.now, 'codeSigning');
        expect(r.ok).toBe(false);
        if (!r.ok) expect(r.reason).not.toMatch(/could not be judged/);
      }),
      { numRuns: 200 },
    );
  });
});
