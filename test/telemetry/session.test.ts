import { createServer } from 'node:net';
import { Aedes } from 'aedes';
import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { MqttSession } from '../../src/telemetry/session.js';

const closers: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const c of closers.splice(0)) await c();
});

async function broker(authenticate?: (user: string | undefined) => boolean): Promise<string> {
  const aedes = await Aedes.createBroker(authenticate ? { authenticate: (_c: unknown, u: string | undefined, _p: unknown, cb: (e: Error | null, ok: boolean) => void) => cb(null, authenticate(u)) } as never : {});
  const server = createServer((s) => aedes.handle(s));
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  closers.push(() => new Promise((r) => { server.close(() => r()); aedes.close(); }));
  const addr = server.address();
  return `mqtt://127.0.0.1:${typeof addr === 'object' && addr ? addr.port : 0}`;
}

function session(url: string, extra: Partial<ConstructorParameters<typeof MqttSession>[0]> = {}): MqttSession {
  const s = new MqttSession({
    url, clientId: 'test', ca: null, cert: null, key: null, username: null, password: null, protocol: 'auto',
    keepaliveSeconds: 30, connectTimeoutSeconds: 5, reconnectMinSeconds: 0.1, reconnectMaxSeconds: 0.2, maxPacketBytes: 65536,
    will: () => ({ topic: 'glassbox/v1/test/status', payload: Buffer.from('{}') }), log: pino({ level: 'silent' }), random: () => 0.5, now: () => new Date(), ...extra,
  });
  closers.push(() => s.stop());
  return s;
}

describe('MqttSession', () => {
  it('falls back to 3.1.1 when the broker refuses MQTT 5', async () => {
    const s = session(await broker());
    const connected = new Promise<{ protocolVersion: number }>((r) => s.once('connected', r));
    s.start();
    expect((await connected).protocolVersion).toBe(4);
    expect(s.state()).toMatchObject({ state: 'connected', protocolVersion: 4 });
  });

  it('records a CONNACK refusal for status and keeps retrying with backoff', async () => {
    const s = session(await broker((u) => u === 'good'), { username: 'bad', protocol: 4 });
    s.start();
    const deadline = Date.now() + 5000;
    while (s.state().failedAttempts < 2 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    const st = s.state();
    expect(st.state === 'waiting' || st.state === 'connecting').toBe(true);
    expect(st.failedAttempts).toBeGreaterThanOrEqual(2);
    expect(st.lastError).toMatchObject({ refused: true, code: 5 });
  });

  it('refuses to publish while offline', async () => {
    const s = session('mqtt://127.0.0.1:1');
    await expect(s.publish('t', Buffer.from('x'), { qos: 1 })).rejects.toMatchObject({ code: 'MQTT_OFFLINE' });
  });
});
