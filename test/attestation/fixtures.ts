/** Envelopes for attestation tests, built with the real builder, signer and a test PKI (generated at test time). */
import { FileKeySigner } from '../../src/pki/signer.js';
import { privateKeyPem, type KeyPair } from '../../src/pki/keys.js';
import { createDeviceCert, type CertOverrides } from '../../src/pki/certs.js';
import { buildStatement, statementBytes, type Statement } from '../../src/attestation/statement.js';
import { envelopeBytes, signEnvelope } from '../../src/attestation/dsse.js';
import { deviceIdentityOf } from '../../src/attestation/attester.js';
import type { EgressSnapshot } from '../../src/egress/types.js';
import { makeTestPki, testDeviceCert, testKey, type TestPki } from '../helpers/pki.js';

export const NONCE = 'nonce-0123456789abcdef';

export function snapshotFixture(over: Partial<EgressSnapshot> = {}): EgressSnapshot {
  return {
    bootId: '0b7c6f0e-1111-4222-8333-944445555666',
    windowStart: '2026-06-01T11:00:00.000Z',
    windowEnd: '2026-06-01T11:59:59.000Z',
    policy: {
      mode: 'observe',
      rules: [{ id: 'broker', purpose: 'ops', proto: 'tcp', port: 8883, host: 'broker.hss.example' }],
      manifestSha256: 'ab'.repeat(32),
      firmwareVersion: '4.2.0',
      securityVersion: 3,
    },
    observation: {
      flowsCounted: 12,
      flowsRecorded: 12,
      eventsLost: 0,
      rulesetSha256: 'cd'.repeat(32),
      rulesetIntact: true,
      gaps: [],
      gapsOmitted: 0,
      integrityEvents: [],
      countersWentBackwards: false,
      readerOverruns: 0,
      readerDroppedBytes: 0,
      counters: { localNew: 12, forwardNew: 0, localUndeclared: 2, forwardUndeclared: 0, rules: { broker: { local: 10, forward: 0 } } },
      undeclaredByUid: { '65534': 2 },
    },
    flows: [
      { direction: 'local', proto: 'tcp', src: '192.0.2.1', dst: '203.0.113.66', dport: 7000, count: 2, firstSeen: '2026-06-01T11:10:00.000Z', lastSeen: '2026-06-01T11:10:01.000Z', rule: null, uids: [65534], process: null, srcMac: null, source: 'conntrack' },
      { direction: 'local', proto: 'tcp', src: '192.0.2.1', dst: '192.0.2.10', dport: 8883, count: 10, firstSeen: '2026-06-01T11:00:01.000Z', lastSeen: '2026-06-01T11:50:00.000Z', rule: 'broker', uids: [0], process: { pid: 42, exe: '/usr/bin/node', sha256: 'ef'.repeat(32) }, srcMac: null, source: 'conntrack' },
    ],
    flowsCap: 1000,
    flowsOmitted: 0,
    flowsOmittedCount: 0,
    undeclared: 2,
    verdict: 'undeclared-egress',
    reasons: ['2 flow(s) matched no egress rule'],
    ...over,
  };
}

export interface Device {
  readonly signer: FileKeySigner;
  readonly key: KeyPair;
  readonly chainPem: string;
}

export async function deviceOf(pki: TestPki, id: string, overrides?: CertOverrides): Promise<Device> {
  if (overrides === undefined) {
    const d = await testDeviceCert(pki, id, 'nvr-8p');
    return { signer: FileKeySigner.fromPem(privateKeyPem(d.key), d.chainPem), key: d.key, chainPem: d.chainPem };
  }
  const key = await testKey('ecdsa-p256', `device-${id}-custom`);
  const cert = await createDeviceCert(pki.deviceCa, { deviceId: id, hardwareModel: 'nvr-8p', publicKey: key.publicKey, now: pki.now }, overrides);
  const chainPem = cert.pem + pki.deviceCa.pem;
  return { signer: FileKeySigner.fromPem(privateKeyPem(key), chainPem), key, chainPem };
}

/** Signs a statement; `claimed` lets a test name another device in the document than the one signing. */
export async function envelopeFor(device: Device, opts: { nonce?: string; issuedAt: Date; claimed?: Device; snapshot?: EgressSnapshot; mutate?: (s: Statement) => Statement }): Promise<Buffer> {
  const named = deviceIdentityOf((opts.claimed ?? device).chainPem);
  let statement = buildStatement({ snapshot: opts.snapshot ?? snapshotFixture(), nonce: opts.nonce ?? NONCE, issuedAt: opts.issuedAt, device: { ...named, hardware: 'nvr-8p' } });
  if (opts.mutate) statement = opts.mutate(statement);
  return envelopeBytes(await signEnvelope(statementBytes(statement), device.signer));
}

export async function pkis(): Promise<{ pki: TestPki; other: TestPki }> {
  const now = new Date();
  return { pki: await makeTestPki({ now, namespace: 'att' }), other: await makeTestPki({ now, namespace: 'att-other' }) };
}
