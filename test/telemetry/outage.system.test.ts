/**
 * Nothing lost: Mosquitto is stopped while 1000 events are handed to the
 * daemon, then restarted; a subscriber with a persistent session receives
 * every event, in order. Then the same with the daemon SIGKILLed during the
 * outage and started again.
 */
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { MqttClient } from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { requireSystem } from '../helpers/system.js';
import { makeBrokerPki, startMosquitto, type BrokerPki, type IdentityFiles, type Mosquitto } from '../helpers/mosquitto.js';
import { collect, connectClient, endClient, startDaemon, type Collected, type DaemonProcess } from '../helpers/daemon-process.js';
import { spoolEvent, SPOOL_DIR } from '../../src/telemetry/spool.js';

const missing = requireSystem(['mosquitto']);
const DEVICE = 'nvr-outage';
const ROOT = `glassbox/v1/${DEVICE}`;
const EVENTS = 1000;

async function until(cond: () => Promise<boolean> | boolean, timeoutMs: number, what: string): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!(await cond())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

describe.skipIf(missing)('when the broker is down while events happen', () => {
  let dir: string;
  let stateDir: string;
  let configFile: string;
  let pki: BrokerPki;
  let broker: Mosquitto;
  let device: IdentityFiles;
  let ops: MqttClient;
  let seen: Collected;
  let daemon: DaemonProcess;

  const spooled = async () => (await readdir(join(stateDir, SPOOL_DIR)).catch(() => [] as string[])).filter((n) => n.endsWith('.json')).length;
  const args = () => ['--config', configFile, '--state-dir', stateDir, '--broker', broker.url, '--broker-ca', pki.serverCaFile, '--cert', device.cert, '--key', device.key];

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'gb-outage-'));
    stateDir = join(dir, 'state');
    configFile = join(dir, 'config.json');
    // Short reconnect cap and a long health interval keep the test quick and the stream to events.
    await writeFile(configFile, JSON.stringify({ mqtt: { reconnectMinSeconds: 0.2, reconnectMaxSeconds: 1 }, health: { intervalSeconds: 3600 }, log: { level: 'info' } }));
    pki = await makeBrokerPki(join(dir, 'pki'));
    broker = await startMosquitto({ dir, pki });
    device = await pki.issueClient(DEVICE);
    const opsId = await pki.issueClient('ops');
    ops = await connectClient(broker.url, {
      ca: await readFile(pki.serverCaFile),
      cert: await readFile(opsId.cert),
      key: await readFile(opsId.key),
      protocolVersion: 5,
      clientId: 'ops-outage',
      clean: false,
      properties: { sessionExpiryInterval: 3600 },
      reconnectPeriod: 300,
    });
    seen = collect(ops);
    await ops.subscribeAsync(`${ROOT}/events`, { qos: 1 });
    daemon = startDaemon(args());
    await seen.waitFor((m) => m.json?.type === 'daemon.started');
  });

  afterAll(async () => {
    if (daemon?.proc.exitCode === null) {
      daemon.kill('SIGTERM');
      await daemon.exited;
    }
    if (ops) await endClient(ops);
    await broker?.stop();
    await rm(dir, { recursive: true, force: true });
  });

  function received(run: string): Array<{ n: number; id: string }> {
    const out: Array<{ n: number; id: string }> = [];
    for (const m of seen.messages) {
      const j = JSON.parse(m.payload.toString()) as { type: string; id: string; data: { run?: string; n?: number } };
      if (j.type === 'test.outage' && j.data.run === run) out.push({ n: j.data.n!, id: j.id });
    }
    return out;
  }

  function checkInOrder(run: string): void {
    const got = received(run);
    // At least once: duplicates (same id) are allowed; first deliveries must be 0..999 in order.
    const firstIds = new Map<string, number>();
    const order: number[] = [];
    for (const g of got) {
      if (firstIds.has(g.id)) {
        expect(firstIds.get(g.id)).toBe(g.n);
        continue;
      }
      firstIds.set(g.id, g.n);
      order.push(g.n);
    }
    expect(order).toEqual(Array.from({ length: EVENTS }, (_, i) => i));
  }

  async function emit(run: string): Promise<void> {
    for (let n = 0; n < EVENTS; n++) await spoolEvent(stateDir, 'test.outage', { run, n });
  }

  it('delivers every event in order after the broker comes back', async () => {
    await broker.stop();
    await emit('a');
    await until(async () => (await spooled()) === 0, 60_000, 'the daemon to queue the spooled events');
    expect(received('a')).toHaveLength(0);
    await broker.start();
    await until(() => new Set(received('a').map((r) => r.id)).size >= EVENTS, 60_000, `${EVENTS} events at the subscriber`);
    checkInOrder('a');
  });

  it('delivers every event in order when the daemon is SIGKILLed during the outage and started again', async () => {
    await broker.stop();
    await emit('b');
    await until(async () => (await spooled()) < EVENTS * 0.7, 60_000, 'part of the events to be queued');
    daemon.kill('SIGKILL');
    await daemon.exited;
    daemon = startDaemon(args());
    await until(async () => (await spooled()) === 0, 60_000, 'the restarted daemon to queue the rest');
    await broker.start();
    await until(() => new Set(received('b').map((r) => r.id)).size >= EVENTS, 60_000, `${EVENTS} events at the subscriber`);
    checkInOrder('b');
  });
});
