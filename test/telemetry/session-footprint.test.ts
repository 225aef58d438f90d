/**
 * The MQTT session must not make mqtt-packet pre-build its number cache
 * (65,536 two-byte Buffers kept for the process's life, ≈7 MiB of heap,
 * measured in a heap snapshot of the idle daemon: docs/daemon.md, Footprint).
 */
import { createRequire } from 'node:module';
import { createServer } from 'node:net';
import { Aedes } from 'aedes';
import { pino } from 'pino';
import { afterAll, describe, expect, it } from 'vitest';
import { MqttSession } from '../../src/telemetry/session.js';

// The mqtt-packet instance mqtt.js itself uses.
const requireFromMqtt = createRequire(createRequire(import.meta.url).resolve('mqtt'));
const writeToStream = requireFromMqtt('mqtt-packet').writeToStream as { cacheNumbers: boolean };
const numbers = requireFromMqtt('mqtt-packet/numbers') as { cache: Record<number, Buffer> };

const closers: Array<() => Promise<void>> = [];
afterAll(async () => {
  for (const c of closers.splice(0)) await c();
});

describe('MqttSession footprint', () => {
  it('publishes with mqtt-packet number cache off and empty', async () => {
    const aedes = await Aedes.createBroker({});
    const server = createServer((s) => aedes.handle(s));
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
    closers.push(() => new Promise((r) => { server.close(() => r()); aedes.close(); }));
    const addr = server.address();
    const s = new MqttSession({
      url: `mqtt://127.0.0.1:${typeof addr === 'object' && addr ? addr.port : 0}`, clientId: 'footprint', ca: null, cert: null, key: null, username: null, password: null, protocol: 'auto',
      keepaliveSeconds: 30, connectTimeoutSeconds: 5, reconnectMinSeconds: 0.1, reconnectMaxSeconds: 0.2, maxPacketBytes: 65536,
      will: () => ({ topic: 'glassbox/v1/footprint/status', payload: Buffer.from('{}') }), log: pino({ level: 'silent' }), random: () => 0.5, now: () => new Date(),
    });
    closers.unshift(() => s.stop());
    const connected = new Promise((r) => s.once('connected', r));
    s.start();
    await connected;
    for (let i = 0; i < 20; i++) await s.publish('glassbox/v1/footprint/events', Buffer.from(`{"n":${i}}`), { qos: 1 });
    expect(writeToStream.cacheNumbers).toBe(false);
    expect(Object.keys(numbers.cache)).toHaveLength(0);
  });
});
