/**
 * The daemon's housekeeping: the status file follows the broker connection
 * as it comes and goes (its 5 s timer runs only while unconnected), the
 * install journal becomes events at the poll, and the install state is
 * re-read only when its files change (installStateKey).
 */
import { mkdtemp, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { resolveConfig } from '../../src/config/resolve.js';
import { Daemon } from '../../src/daemon/daemon.js';
import { startEmbeddedBroker, type EmbeddedBroker } from '../../src/daemon/embedded-broker.js';
import { installStateKey } from '../../src/daemon/provenance.js';
import { appendJournal, type JournalEntry } from '../../src/install/journal.js';
import { collect, connectClient, endClient } from '../helpers/daemon-process.js';

const DEVICE = 'nvr-housekeeping-1';
let stateDir: string;

beforeEach(async () => {
  stateDir = await mkdtemp(join(tmpdir(), 'gb-housekeeping-'));
});
afterEach(async () => {
  await rm(stateDir, { recursive: true, force: true });
});

async function readStatus(): Promise<{ telemetry: { broker: { state: string; failedAttempts: number; lastError: unknown } | null } } | null> {
  try {
    return JSON.parse(await readFile(join(stateDir, 'daemon-status.json'), 'utf8'));
  } catch {
    return null;
  }
}

async function until<T>(what: string, probe: () => Promise<T | null | undefined | false>, ms: number): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await probe();
    if (v) return v;
    if (Date.now() > end) throw new Error(`not within ${ms} ms: ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

function daemonFor(brokerUrl: string): Daemon {
  const { config } = resolveConfig({
    file: { name: 'test config', value: { deviceId: DEVICE, stateDir, mqtt: { url: brokerUrl, reconnectMinSeconds: 1, reconnectMaxSeconds: 1 }, health: { intervalSeconds: 1, recordingPaths: [stateDir] }, egress: { enabled: false } } },
    env: {},
    flags: {},
  });
  return new Daemon({ config, log: pino({ level: 'silent' }), version: '0.0.0-test', env: {}, plugins: false });
}

const rejected: JournalEntry = {
  at: '2026-11-29T12:00:00.000Z',
  command: 'install',
  outcome: 'rejected',
  code: 'SIGNATURE_INVALID',
  reason: 'signature 1 of 2 does not verify',
  slot: null,
  version: '2.4.1',
  securityVersion: 7,
  manifestSha256: 'a'.repeat(64),
  generation: null,
  source: 'usb',
};

describe('daemon housekeeping', () => {
  let broker: EmbeddedBroker | null = null;
  afterEach(async () => {
    await broker?.close();
    broker = null;
  });

  it('rewrites the status file when the broker connection comes and goes, and turns a new journal line into an event', async () => {
    broker = await startEmbeddedBroker(0);
    const url = `mqtt://127.0.0.1:${broker.port}`;
    const ops = await connectClient(url, { clientId: 'ops', protocolVersion: 4 }); // aedes speaks 3.1.1
    const seen = collect(ops);
    await ops.subscribeAsync(`glassbox/v1/${DEVICE}/events`, { qos: 1 });
    const daemon = daemonFor(url);
    await daemon.start();
    try {
      // Connected: written on the connection change, well before any 5 s timer.
      const t0 = Date.now();
      await until('status file says connected', async () => (await readStatus())?.telemetry.broker?.state === 'connected', 3000);
      expect(Date.now() - t0).toBeLessThan(3000);

      await appendJournal(stateDir, rejected);
      const ev = await seen.waitFor((m) => m.json?.type === 'install.outcome', 5000);
      expect(ev.json.data).toMatchObject({ outcome: 'rejected', code: 'SIGNATURE_INVALID', version: '2.4.1' });

      // The broker goes away: the status file says so, then follows the reconnect attempts every 5 s.
      await endClient(ops);
      await broker.close();
      broker = null;
      await until('status file says not connected', async () => {
        const s = await readStatus();
        return s !== null && s.telemetry.broker?.state !== 'connected';
      }, 3000);
      const attempts = await until('status file counts failed attempts', async () => {
        const s = await readStatus();
        return (s?.telemetry.broker?.failedAttempts ?? 0) >= 2 ? s : null;
      }, 12_000);
      expect(attempts.telemetry.broker?.lastError).not.toBeNull();
    } finally {
      await daemon.stop();
    }
  }, 30_000);
});

describe('installStateKey', () => {
  it('changes when state.json is replaced or the journal grows or rotates, and not otherwise', async () => {
    const k0 = installStateKey(stateDir);
    expect(k0).toBe('-|-|-');
    expect(installStateKey(stateDir)).toBe(k0);

    await appendJournal(stateDir, rejected);
    const k1 = installStateKey(stateDir);
    expect(k1).not.toBe(k0);
    expect(installStateKey(stateDir)).toBe(k1);

    await appendJournal(stateDir, { ...rejected, at: '2026-11-29T12:00:01.000Z' });
    const k2 = installStateKey(stateDir);
    expect(k2).not.toBe(k1);

    // state.json replaced by rename with content of the same size: the inode differs.
    await writeFile(join(stateDir, 'state.json.tmp'), '{"generation":1}');
    await rename(join(stateDir, 'state.json.tmp'), join(stateDir, 'state.json'));
    const k3 = installStateKey(stateDir);
    expect(k3).not.toBe(k2);
    await writeFile(join(stateDir, 'state.json.tmp'), '{"generation":2}');
    await rename(join(stateDir, 'state.json.tmp'), join(stateDir, 'state.json'));
    const k4 = installStateKey(stateDir);
    expect(k4).not.toBe(k3);

    await rename(join(stateDir, 'journal.jsonl'), join(stateDir, 'journal.1.jsonl'));
    expect(installStateKey(stateDir)).not.toBe(k4);
  });
});
