import { describe, expect, it } from 'vitest';
import { pino } from 'pino';
import { CommandRegistry, CommandRouter, parseCommand, RateLimiter } from '../../src/telemetry/commands.js';
import { reconnectDelayMs } from '../../src/telemetry/backoff.js';

const D = 'nvr-1';
const T = `glassbox/v1/${D}/cmd`;

describe('parseCommand', () => {
  it('accepts an empty payload and a correlationId, and uses the default response topic', () => {
    expect(parseCommand(D, `${T}/health`, Buffer.alloc(0), {}, 1024)).toMatchObject({ kind: 'request', request: { name: 'health', responseTopic: `${T}/health/response`, correlation: null } });
    expect(parseCommand(D, `${T}/health`, Buffer.from('{"correlationId":"x"}'), {}, 1024)).toMatchObject({ kind: 'request', request: { correlation: 'x' } });
  });
  it('prefers MQTT 5 correlation data and a response topic inside the device tree', () => {
    const r = parseCommand(D, `${T}/health`, Buffer.alloc(0), { responseTopic: `glassbox/v1/${D}/replies/1`, correlationData: Buffer.from('c') }, 1024);
    expect(r).toMatchObject({ kind: 'request', request: { responseTopic: `glassbox/v1/${D}/replies/1`, correlation: Buffer.from('c').toString('base64') } });
  });
  it.each([
    ['not JSON', '{', 'BAD_REQUEST'],
    ['an array', '[]', 'BAD_REQUEST'],
    ['an unknown field', '{"url":"x"}', 'BAD_REQUEST'],
    ['a long correlationId', JSON.stringify({ correlationId: 'x'.repeat(129) }), 'BAD_REQUEST'],
    ['args not an object', '{"args":1}', 'BAD_REQUEST'],
  ])('refuses %s', (_what, payload, code) => {
    expect(parseCommand(D, `${T}/health`, Buffer.from(payload), {}, 1024)).toMatchObject({ kind: 'error', code });
  });
  it('refuses an oversized payload, a foreign response topic and a command topic as response topic', () => {
    expect(parseCommand(D, `${T}/health`, Buffer.alloc(2000), {}, 1024)).toMatchObject({ kind: 'error', code: 'PAYLOAD_TOO_LARGE' });
    expect(parseCommand(D, `${T}/health`, Buffer.alloc(0), { responseTopic: 'glassbox/v1/other/x' }, 1024)).toMatchObject({ kind: 'error', code: 'RESPONSE_TOPIC_REFUSED', responseTopic: `${T}/health/response` });
    expect(parseCommand(D, `${T}/health`, Buffer.alloc(0), { responseTopic: `${T}/health` }, 1024)).toMatchObject({ kind: 'error', code: 'RESPONSE_TOPIC_REFUSED' });
    expect(parseCommand(D, `${T}/health`, Buffer.alloc(0), { responseTopic: `glassbox/v1/${D}/#` }, 1024)).toMatchObject({ kind: 'error', code: 'RESPONSE_TOPIC_REFUSED' });
  });
  it('ignores malformed names and foreign topics', () => {
    expect(parseCommand(D, `${T}/Bad Name`, Buffer.alloc(0), {}, 1024).kind).toBe('ignore');
    expect(parseCommand(D, `glassbox/v1/other/cmd/health`, Buffer.alloc(0), {}, 1024).kind).toBe('ignore');
  });
});

describe('CommandRouter', () => {
  const router = (now: () => Date, handlers: Record<string, () => Promise<unknown>> = {}) => {
    const reg = new CommandRegistry();
    for (const [n, h] of Object.entries(handlers)) reg.register(n, h);
    return new CommandRouter({ deviceId: D, maxBytes: 1024, perMinute: 6, timeoutMs: 50, log: pino({ level: 'silent' }), now }, reg);
  };
  it('answers a failing or hanging handler with an error, never throws', async () => {
    const r = router(() => new Date(), { boom: () => Promise.reject(new Error('disk gone')), slow: () => new Promise(() => undefined) });
    const sent: string[] = [];
    const respond = async (_t: string, p: Buffer) => void sent.push(p.toString());
    expect(await r.handle(`${T}/boom`, Buffer.alloc(0), {}, respond)).toMatchObject({ ok: false, error: { code: 'COMMAND_FAILED', message: 'disk gone' } });
    expect(await r.handle(`${T}/slow`, Buffer.alloc(0), {}, respond)).toMatchObject({ ok: false, error: { code: 'COMMAND_TIMEOUT' } });
    expect(await r.handle(`${T}/nope`, Buffer.alloc(0), {}, async () => Promise.reject(new Error('offline')))).toBeNull();
    expect(sent).toHaveLength(2);
  });
  it('drops requests over the rate', async () => {
    let t = 0;
    const r = router(() => new Date(t), { ok: async () => 1 });
    const results = [];
    for (let i = 0; i < 8; i++) results.push(await r.handle(`${T}/ok`, Buffer.alloc(0), {}, async () => undefined));
    expect(results.filter((x) => x === null)).toHaveLength(3);
    t += 60_000;
    expect(await r.handle(`${T}/ok`, Buffer.alloc(0), {}, async () => undefined)).not.toBeNull();
  });
  it('RateLimiter refills over time', () => {
    const l = new RateLimiter(60, 1, 0);
    expect(l.take(0)).toBe(true);
    expect(l.take(500)).toBe(false);
    expect(l.take(1000)).toBe(true);
  });
});

describe('reconnect backoff', () => {
  it('doubles up to the cap with half of it jittered', () => {
    expect(reconnectDelayMs(1, 1, 60, 0)).toBe(500);
    expect(reconnectDelayMs(1, 1, 60, 1)).toBe(1000);
    expect(reconnectDelayMs(4, 1, 60, 0.5)).toBe(6000);
    expect(reconnectDelayMs(30, 1, 60, 1)).toBe(60000);
    expect(reconnectDelayMs(30, 1, 60, 0)).toBe(30000);
  });
});
