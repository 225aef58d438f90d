/**
 * The daemon against a real Mosquitto: mutual TLS, ACL, commands, status
 * and last will. Needs `mosquitto` (skips naming it when absent; fails in CI).
 */
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { MqttClient } from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { requireSystem } from '../helpers/system.js';
import { expiredOverrides, makeBrokerPki, startMosquitto, type BrokerPki, type IdentityFiles, type Mosquitto } from '../helpers/mosquitto.js';
import { collect, connectClient, endClient, startDaemon, type Collected, type DaemonProcess } from '../helpers/daemon-process.js';

const missing = requireSystem(['mosquitto']);
const DEVICE = 'nvr-0001';
const ROOT = `glassbox/v1/${DEVICE}`;

describe.skipIf(missing)('daemon with Mosquitto (mutual TLS, ACL)', () => {
  let dir: string;
  let pki: BrokerPki;
  let broker: Mosquitto;
  let device: IdentityFiles;
  let ops: MqttClient;
  let opsSeen: Collected;
  let daemon: DaemonProcess;
  let stateDir: string;

  const tls = (id: IdentityFiles) => ({ ca: [pki.serverCaFile].map((f) => require_(f)), cert: require_(id.cert), key: require_(id.key) });
  const files = new Map<string, Buffer>();
  const require_ = (f: string): Buffer => files.get(f)!;
  async function load(...paths: string[]): Promise<void> {
    for (const p of paths) files.set(p, await readFile(p));
  }

  function daemonArgs(extra: string[] = []): string[] {
    return [
      '--config', join(dir, 'absent.json'),
      '--state-dir', stateDir,
      '--broker', broker.url,
      '--broker-ca', pki.serverCaFile,
      '--cert', device.cert,
      '--key', device.key,
      '--health-interval', '3600',
      ...extra,
    ];
  }

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'gb-broker-'));
    stateDir = join(dir, 'state');
    pki = await makeBrokerPki(join(dir, 'pki'));
    broker = await startMosquitto({ dir, pki });
    device = await pki.issueClient(DEVICE);
    const opsId = await pki.issueClient('ops');
    await load(pki.serverCaFile, opsId.cert, opsId.key, device.cert, device.key);
    ops = await connectClient(broker.url, { ...tls(opsId), protocolVersion: 5, clientId: 'ops-acl-test' });
    opsSeen = collect(ops);
    await ops.subscribeAsync('glassbox/#', { qos: 1 });
    await ops.subscribeAsync(`${ROOT}/cmd/+/response`, { qos: 0 });
    // The config file is given but absent: the daemon must refuse, not guess.
    const refused = startDaemon(daemonArgs());
    expect((await refused.exited).code).toBe(2);
    expect(refused.stderr()).toMatch(/cannot read config file/);
    daemon = startDaemon(daemonArgs().slice(2));
    await daemon.waitForLog((l) => l['msg'] === 'daemon started');
  });

  afterAll(async () => {
    if (daemon && daemon.proc.exitCode === null) {
      daemon.kill('SIGTERM');
      await daemon.exited;
    }
    if (ops) await endClient(ops);
    await broker?.stop();
    await rm(dir, { recursive: true, force: true });
  });

  it('connects with its certificate over MQTT 5 and publishes a retained online status, health and a start event', async () => {
    const status = await opsSeen.waitFor((m) => m.topic === `${ROOT}/status` && m.json?.state === 'online');
    expect(status.json).toMatchObject({ schema: 'glassbox.status/v1', deviceId: DEVICE, reason: 'connected' });
    const health = await opsSeen.waitFor((m) => m.topic === `${ROOT}/health`);
    expect(health.json).toMatchObject({ schema: 'glassbox.health/v1', deviceId: DEVICE });
    expect(health.json.memory.totalBytes).toBeGreaterThan(0);
    expect(health.json.daemon.rssBytes).toBeGreaterThan(0);
    const ev = await opsSeen.waitFor((m) => m.topic === `${ROOT}/events` && m.json?.type === 'daemon.started');
    expect(ev.json.id).toMatch(/^[0-9a-f-]{36}$/);
    expect(daemon.logs.find((l) => l['msg'] === 'connected to broker')).toMatchObject({ protocolVersion: '5' });
    expect(JSON.stringify(daemon.logs)).not.toMatch(/BEGIN [A-Z ]*PRIVATE KEY/);
  });

  it('refuses a client certificate from another CA', async () => {
    const other = await pki.otherCa();
    const rogue = await pki.issueClient('rogue', { issuer: other });
    await load(rogue.cert, rogue.key);
    await expect(connectClient(broker.url, { ...tls(rogue), protocolVersion: 5, clientId: 'rogue' })).rejects.toThrow();
  });

  it('refuses an expired client certificate', async () => {
    const old = await pki.issueClient('nvr-0002', { overrides: expiredOverrides() });
    await load(old.cert, old.key);
    await expect(connectClient(broker.url, { ...tls(old), protocolVersion: 5, clientId: 'expired' })).rejects.toThrow();
  });

  it("refuses a device's publish to another device's topics", async () => {
    const other = await pki.issueClient('nvr-0003');
    await load(other.cert, other.key);
    const c = await connectClient(broker.url, { ...tls(other), protocolVersion: 5, clientId: 'nvr-0003' });
    try {
      await expect(c.publishAsync(`${ROOT}/events`, '{"forged":true}', { qos: 1 })).rejects.toMatchObject({ code: 135 });
      await c.publishAsync('glassbox/v1/nvr-0003/events', '{"own":true}', { qos: 1 });
      await opsSeen.waitFor((m) => m.topic === 'glassbox/v1/nvr-0003/events');
      expect(opsSeen.messages.some((m) => m.payload.toString().includes('forged'))).toBe(false);
    } finally {
      await endClient(c);
    }
  });

  it('answers the health and provenance commands with MQTT 5 response topic and correlation data', async () => {
    const responseTopic = `${ROOT}/cmd/health/response/ops-1`;
    await ops.subscribeAsync(`${ROOT}/cmd/+/response/#`, { qos: 0 });
    await ops.publishAsync(`${ROOT}/cmd/health`, '', { qos: 0, properties: { responseTopic, correlationData: Buffer.from('req-42') } });
    const res = await opsSeen.waitFor((m) => m.topic === responseTopic);
    expect(res.json).toMatchObject({ schema: 'glassbox.cmd-response/v1', ok: true, command: 'health', correlation: Buffer.from('req-42').toString('base64') });
    expect(Buffer.from(res.properties?.['correlationData'] as Buffer).toString()).toBe('req-42');
    expect(res.json.result.schema).toBe('glassbox.health/v1');

    await ops.publishAsync(`${ROOT}/cmd/provenance`, '{"correlationId":"p1"}', { qos: 0 });
    const prov = await opsSeen.waitFor((m) => m.topic === `${ROOT}/cmd/provenance/response` && m.json?.correlation === 'p1');
    expect(prov.json).toMatchObject({ ok: true, result: { schema: 'glassbox.provenance/v1', deviceId: DEVICE, installed: null } });
    await opsSeen.waitFor((m) => m.topic === `${ROOT}/provenance` && m.json?.schema === 'glassbox.provenance/v1');
  });

  it('answers unknown, malformed and oversized commands with an error, drops what the broker will not deliver, and keeps running', async () => {
    const ask = async (name: string, payload: string | Buffer, corr: string) => {
      await ops.publishAsync(`${ROOT}/cmd/${name}`, payload, { qos: 0, properties: { correlationData: Buffer.from(corr) } });
      return opsSeen.waitFor((m) => m.topic === `${ROOT}/cmd/${name}/response` && m.json?.correlation === Buffer.from(corr).toString('base64'));
    };
    expect((await ask('reboot', '', 'c1')).json.error.code).toBe('UNKNOWN_COMMAND');
    expect((await ask('health', '{not json', 'c2')).json.error.code).toBe('BAD_REQUEST');
    expect((await ask('health', '[1,2]', 'c3')).json.error.code).toBe('BAD_REQUEST');
    expect((await ask('health', '{"install":"http://x"}', 'c4')).json.error.code).toBe('BAD_REQUEST');
    expect((await ask('health', Buffer.alloc(20_000, 0x20), 'c5')).json.error.code).toBe('PAYLOAD_TOO_LARGE');
    // Over the daemon's MQTT 5 maximumPacketSize (256 KiB): the broker does not deliver it at all.
    await ops.publishAsync(`${ROOT}/cmd/health`, Buffer.alloc(400_000, 0x20), { qos: 0 });
    const outside = await (async () => {
      await ops.publishAsync(`${ROOT}/cmd/health`, '', { qos: 0, properties: { responseTopic: 'elsewhere/reply', correlationData: Buffer.from('c6') } });
      return opsSeen.waitFor((m) => m.topic === `${ROOT}/cmd/health/response` && m.json?.correlation === Buffer.from('c6').toString('base64'));
    })();
    expect(outside.json.error.code).toBe('RESPONSE_TOPIC_REFUSED');
    expect((await ask('health', '', 'c7')).json.ok).toBe(true);
    expect(daemon.proc.exitCode).toBeNull();
    expect(daemon.logs.some((l) => l['msg'] === 'command refused' && l['code'] === 'PAYLOAD_TOO_LARGE')).toBe(true);
  });

  it('answers a 3.1.1 client on the documented fallback topic with its correlationId', async () => {
    const opsId = await pki.issueClient('ops');
    await load(opsId.cert, opsId.key);
    const v4 = await connectClient(broker.url, { ...tls(opsId), protocolVersion: 4, clientId: 'ops-v4' });
    try {
      const seen = collect(v4);
      await v4.subscribeAsync(`${ROOT}/cmd/health/response`, { qos: 0 });
      await v4.publishAsync(`${ROOT}/cmd/health`, '{"correlationId":"v4-req"}', { qos: 0 });
      const res = await seen.waitFor((m) => m.json?.correlation === 'v4-req');
      expect(res.json.ok).toBe(true);
    } finally {
      await endClient(v4);
    }
  });

  it('the last will turns the retained status offline when the daemon is killed, and it comes back online on restart', async () => {
    daemon.kill('SIGKILL');
    await daemon.exited;
    const off = await opsSeen.waitFor((m) => m.topic === `${ROOT}/status` && m.json?.state === 'offline');
    expect(off.json.reason).toBe('connection-lost');
    const fresh = await connectClient(broker.url, { ...tls({ cert: [...files.keys()].find((k) => k.includes('client-ops'))!, key: [...files.keys()].find((k) => k.includes('client-ops') && k.endsWith('.key'))! }), protocolVersion: 5, clientId: 'ops-retained' });
    const retained = collect(fresh);
    await fresh.subscribeAsync(`${ROOT}/status`, { qos: 1 });
    expect((await retained.waitFor((m) => m.retain)).json.state).toBe('offline');
    await endClient(fresh);

    const mark = opsSeen.messages.length;
    daemon = startDaemon(daemonArgs().slice(2));
    const on = await opsSeen.waitFor((m) => m.topic === `${ROOT}/status`, 20_000, mark);
    expect(on.json).toMatchObject({ state: 'online', reason: 'connected' });
  });

  it('SIGTERM publishes a retained offline (shutdown) and exits 0 within 5 s', async () => {
    await daemon.waitForLog((l) => l['msg'] === 'connected to broker');
    const mark = opsSeen.messages.length;
    daemon.kill('SIGTERM');
    const { code, ms } = await daemon.exited;
    expect(code).toBe(0);
    expect(ms).toBeLessThan(5000);
    const off = await opsSeen.waitFor((m) => m.topic === `${ROOT}/status`, 5000, mark);
    expect(off.json.reason).toBe('shutdown');
    expect(off.json.state).toBe('offline');
    const status = JSON.parse(await readFile(join(stateDir, 'daemon-status.json'), 'utf8'));
    expect(status).toMatchObject({ deviceId: DEVICE, running: false });
  });
});
