/** A complete, all-green set of status facts; tests bend one field at a time. */
import type { StatusFacts } from '../../src/status/types.js';
import type { HealthPayload } from '../../src/telemetry/payloads.js';

export const NOW = '2026-06-01T12:00:00.000Z';

export const HEALTH: HealthPayload = {
  schema: 'glassbox.health/v1',
  deviceId: 'rec-0042',
  at: '2026-06-01T11:59:40.000Z',
  bootId: 'b00t',
  uptimeSeconds: 93_600,
  cpu: { load1: 0.42, load5: 0.3, load15: 0.25, cores: 4 },
  memory: { totalBytes: 8e9, availableBytes: 5e9, usedPercent: 37.5, swapTotalBytes: 0, swapFreeBytes: 0 },
  temperatures: [{ sensor: 'cpu', celsius: 51 }],
  disks: [
    {
      path: '/srv/recordings',
      device: 'sda',
      totalBytes: 4e12,
      availableBytes: 1.2e12,
      usedPercent: 70,
      io: null,
      smart: { health: 'passed', checkedAt: '2026-06-01T11:00:00.000Z' },
      error: null,
    },
  ],
  network: [],
  clock: { sync: 'synchronized', source: 'timesyncd' },
  daemon: {
    rssBytes: 60e6,
    heapUsedBytes: 20e6,
    uptimeSeconds: 3600,
    eventLoop: { utilization: 0.01, delayP50Ms: 1, delayP99Ms: 3, delayMaxMs: 9 },
    queue: { depth: 0, bytes: 0, maxBytes: 33_554_432, droppedEvents: 0, droppedHealth: 0 },
  },
  errors: [],
};

export function greenFacts(): StatusFacts {
  return {
    generatedAt: NOW,
    stateDir: '/var/lib/glassbox',
    daemonVersion: '0.1.0',
    identity: {
      deviceId: 'rec-0042',
      hardware: 'HSS-NVR-8',
      keyAlgorithm: 'ecdsa-p256',
      spkiSha256: 'a'.repeat(64),
      certificate: {
        sha256: 'c'.repeat(64),
        serial: '5a1e',
        subject: 'CN=rec-0042, OU=HSS-NVR-8, O=Homeland Safety Systems',
        issuer: 'CN=glassbox development device CA, O=Homeland Safety Systems',
        notBefore: '2026-01-01T00:00:00.000Z',
        notAfter: '2029-01-01T00:00:00.000Z',
      },
      keyFile: { path: '/var/lib/glassbox/identity/device.key', mode: 0o600, uid: 998, gid: 997 },
      expectedOwner: { uid: 998, gid: 997 },
    },
    identityError: null,
    trust: { sha256: 'd'.repeat(64), roots: ['CN=glassbox development root CA'], threshold: 2 },
    broker: {
      url: 'mqtts://broker.example:8883',
      connected: true,
      source: 'daemon',
      since: '2026-06-01T11:00:00.000Z',
      lastError: null,
      queue: { depth: 3, bytes: 2048, maxBytes: 33_554_432, droppedEvents: 0, droppedHealth: 0 },
      detail: 'MQTT 5',
    },
    clock: { now: NOW, trustedTime: '2026-05-20T00:00:00.000Z', sync: 'synchronized' },
    firmware: {
      activeSlot: 'a',
      securityFloor: 7,
      installed: {
        product: 'hss-nvr-firmware',
        version: '4.2.0',
        manifestSha256: 'e'.repeat(64),
        securityVersion: 7,
        released: '2026-05-20T00:00:00Z',
        expires: '2027-05-20T00:00:00Z',
        signers: [
          { subject: 'CN=release signer 1', spkiSha256: '1'.repeat(64) },
          { subject: 'CN=release signer 2', spkiSha256: '2'.repeat(64) },
        ],
        sbomSha256: 'f'.repeat(64),
        provenanceSha256: '9'.repeat(64),
        sourceRepository: 'https://git.example/hss/nvr-firmware',
        sourceCommit: '0123456789abcdef0123456789abcdef01234567',
        builder: 'https://ci.example/builders/reproducible',
      },
      slots: [
        { name: 'a', state: 'committed', version: '4.2.0', manifestSha256: 'e'.repeat(64) },
        { name: 'b', state: 'empty', version: null, manifestSha256: null },
      ],
      verification: { ok: true, code: null, reason: 'slot files verify against their manifest', at: NOW, deep: true },
      egressRules: [
        { id: 'telemetry', purpose: 'MQTT to ops', proto: 'tcp', port: 8883, host: 'broker.example' },
        { id: 'ntp', purpose: 'time', proto: 'udp', port: 123, cidr: '192.0.2.0/24' },
      ],
      lastBoot: { at: '2026-06-01T08:00:00.000Z', outcome: 'committed', reason: null },
      error: null,
    },
    health: HEALTH,
    egress: {
      verdict: 'clean',
      mode: 'observe',
      windowStart: '2026-06-01T08:00:05.000Z',
      windowEnd: NOW,
      flowsCounted: 1234,
      undeclared: 0,
      eventsLost: 0,
      reasons: [],
      undeclaredFlows: [],
    },
    daemon: { running: true, detail: null },
  };
}
