/**
 * A standalone egress observer: EgressService + the local API + attest(),
 * optionally with an MQTT client that publishes undeclared-flow alerts on
 * `glassbox/v1/<deviceId>/events` (QoS 1). It runs the same parts the
 * daemon plugs in (daemon-service.ts), without the rest of the daemon: for
 * the namespace lab, the benchmark, and bring-up on a bench recorder.
 *
 *   node dist/egress/observer.js CONFIG.json
 *
 * CONFIG.json: see ObserverConfig. Runs until SIGTERM/SIGINT; prints one
 * JSON line {"ready": true, ...} on stdout once the table is installed and
 * the API listens.
 */
import { readFile } from 'node:fs/promises';
import { randomUUID } from 'node:crypto';
import { join } from 'node:path';
import mqtt from 'mqtt';
import { FileKeySigner } from '../pki/signer.js';
import { parseManifest } from '../manifest/parse.js';
import { createAttester, deviceIdentityOf } from '../attestation/attester.js';
import { ApiServer } from '../api/server.js';
import { egressRoutes } from '../api/routes.js';
import { EgressService, type InstalledPolicy, type UndeclaredAlert } from './service.js';
import type { EgressMode } from './ruleset.js';

export interface ObserverConfig {
  readonly stateDir: string;
  readonly mode?: EgressMode;
  /** The installed manifest.json; null = no manifest installed. */
  readonly manifestPath: string | null;
  readonly deviceKey: string;
  readonly deviceChain: string;
  readonly hardware?: string | null;
  readonly api: { readonly tcp: string | null; readonly socket: string | null };
  readonly mqtt?: { readonly url: string; readonly heartbeatSeconds?: number } | null;
  readonly conntrackBufferBytes?: number;
  /** Runtime files (the detail reader's spool): tmpfs in service; default <stateDir>/run. */
  readonly runtimeDir?: string;
  /** Spool segment size (rotation), bytes. */
  readonly spoolSegmentBytes?: number;
  /** SCHED_FIFO priority of conntrack; null = normal scheduler; default 10. */
  readonly conntrackRealtimePriority?: number | null;
  readonly pollMs?: number;
  readonly dnsServers?: readonly string[];
  readonly table?: string;
}

export async function runObserver(config: ObserverConfig, signal: AbortSignal, print: (line: string) => void): Promise<void> {
  const signer = await FileKeySigner.fromFiles(config.deviceKey, config.deviceChain);
  const policy = async (): Promise<InstalledPolicy | null> => {
    if (config.manifestPath === null) return null;
    const bytes = await readFile(config.manifestPath);
    return { manifestBytes: bytes, manifest: parseManifest(bytes) };
  };
  let client: mqtt.MqttClient | null = null;
  let deviceId = '';
  let seq = 0;
  const publishAlert = (alert: UndeclaredAlert): void => {
    if (!client) return;
    const payload = { schema: 'glassbox.event/v1', deviceId, id: randomUUID(), seq: ++seq, type: 'egress.alert', at: new Date().toISOString(), data: alert };
    client.publish(`glassbox/v1/${deviceId}/events`, JSON.stringify(payload), { qos: 1 });
  };
  const log = {
    info: (o: object, m: string) => print(JSON.stringify({ level: 'info', msg: m, ...o })),
    warn: (o: object, m: string) => print(JSON.stringify({ level: 'warn', msg: m, ...o })),
    error: (o: object, m: string) => print(JSON.stringify({ level: 'error', msg: m, ...o })),
  };
  const egress = new EgressService({
    stateDir: config.stateDir,
    mode: config.mode ?? 'observe',
    policy,
    table: config.table,
    runtimeDir: config.runtimeDir ?? join(config.stateDir, 'run'),
    conntrack: { bufferBytes: config.conntrackBufferBytes, segmentBytes: config.spoolSegmentBytes, realtimePriority: config.conntrackRealtimePriority },
    pollMs: config.pollMs,
    dns: { servers: config.dnsServers },
    onUndeclared: publishAlert,
    log,
  });
  const attest = createAttester({ snapshot: () => egress.snapshot(), signer, hardware: config.hardware ?? null });
  deviceId = deviceIdentityOf(signer.chainPem).id;
  const api = new ApiServer({
    tcp: config.api.tcp,
    socketPath: config.api.socket,
    routes: egressRoutes({
      snapshot: () => egress.snapshot(),
      attest,
      health: async () => ({ egress: 'running' }),
      observer: () => egress.readerStats(),
    }),
  });
  // Egress first: the broker's address must be in the host sets before the client connects.
  await egress.start(signal);
  await api.start(signal);
  let heartbeat: NodeJS.Timeout | null = null;
  if (config.mqtt) {
    client = mqtt.connect(config.mqtt.url, { clientId: `glassbox-${deviceId}`, reconnectPeriod: 1000, connectTimeout: 5000, keepalive: 10 });
    client.on('error', (e) => log.warn({ err: e.message }, 'mqtt'));
    const hb = (config.mqtt.heartbeatSeconds ?? 5) * 1000;
    heartbeat = setInterval(() => client?.publish(`glassbox/v1/${deviceId}/status`, JSON.stringify({ online: true, at: new Date().toISOString() }), { qos: 1, retain: true }), hb);
  }
  print(JSON.stringify({ ready: true, deviceId, readerPid: egress.readerPid ?? null, tcp: api.tcpAddress }));
  await new Promise<void>((resolve) => signal.addEventListener('abort', () => resolve(), { once: true }));
  if (heartbeat) clearInterval(heartbeat);
  await new Promise<void>((resolve) => (client ? client.end(false, {}, () => resolve()) : resolve()));
  await api.stop();
  await egress.stop();
}

const isMain = process.argv[1] !== undefined && import.meta.url === new URL(`file://${process.argv[1]}`).href;
if (isMain) {
  const path = process.argv[2];
  if (!path) {
    process.stderr.write('usage: node dist/egress/observer.js CONFIG.json\n');
    process.exit(2);
  }
  const config = JSON.parse(await readFile(path, 'utf8')) as ObserverConfig;
  const ac = new AbortController();
  for (const s of ['SIGTERM', 'SIGINT'] as const) process.on(s, () => ac.abort());
  try {
    await runObserver(config, ac.signal, (l) => process.stdout.write(l + '\n'));
    process.exit(0);
  } catch (e) {
    process.stderr.write(`observer: ${e instanceof Error ? e.message : String(e)}\n`);
    process.exit(2);
  }
}
