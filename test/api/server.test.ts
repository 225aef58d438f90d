import { afterEach, describe, expect, it } from 'vitest';
import { request } from 'node:http';
import { connect, type Socket } from 'node:net';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ApiServer, parseListen } from '../../src/api/server.js';
import { egressRoutes } from '../../src/api/routes.js';
import { RateLimiter } from '../../src/api/rate-limit.js';
import { snapshotFixture } from '../attestation/fixtures.js';

function get(port: number, path: string, method = 'GET'): Promise<{ status: number; body: string; headers: Record<string, unknown> }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, method, agent: false }, (res) => {
      let body = '';
      res.on('data', (c) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body, headers: res.headers }));
    });
    req.on('error', reject);
    req.end();
  });
}

let api: ApiServer | null = null;
let dir: string | null = null;
afterEach(async () => {
  await api?.stop();
  api = null;
  if (dir) await rm(dir, { recursive: true, force: true });
});

async function serve(opts: Partial<ConstructorParameters<typeof ApiServer>[0]> = {}): Promise<number> {
  api = new ApiServer({
    tcp: '127.0.0.1:0',
    socketPath: null,
    routes: egressRoutes({ snapshot: async () => snapshotFixture(), attest: async (n) => Buffer.from(JSON.stringify({ nonce: n })) }),
    ...opts,
  });
  await api.start();
  return api.tcpAddress!.port;
}

describe('the local API', () => {
  it('serves the attestation for a good nonce and 400 + JSON for a bad one', async () => {
    const port = await serve();
    const ok = await get(port, '/v1/attestation?nonce=abcdefghijklmnop');
    expect(ok.status).toBe(200);
    expect(JSON.parse(ok.body)).toEqual({ nonce: 'abcdefghijklmnop' });
    for (const q of ['', '?nonce=abc', '?nonce=abcdefghijklmnop%2F', `?nonce=${'a'.repeat(129)}`]) {
      const bad = await get(port, `/v1/attestation${q}`);
      expect(bad.status).toBe(400);
      expect(JSON.parse(bad.body).error).toBe('NONCE_INVALID');
    }
  });
  it('serves /v1/egress and /healthz; 404 elsewhere; GET only', async () => {
    const port = await serve();
    expect(JSON.parse((await get(port, '/v1/egress')).body).verdict).toBe('undeclared-egress');
    expect((await get(port, '/healthz')).status).toBe(200);
    expect((await get(port, '/nope')).status).toBe(404);
    expect((await get(port, '/healthz', 'POST')).status).toBe(405);
  });
  it('rate-limits each client', async () => {
    const port = await serve({ rateLimit: { perMinute: 60, burst: 3 } });
    const statuses = [];
    for (let i = 0; i < 5; i++) statuses.push((await get(port, '/healthz')).status);
    expect(statuses).toEqual([200, 200, 200, 429, 429]);
  });
  it('listens on a Unix socket too', async () => {
    dir = await mkdtemp(join(tmpdir(), 'glassbox-api-'));
    const sock = join(dir, 'api.sock');
    api = new ApiServer({ tcp: null, socketPath: sock, routes: egressRoutes({ snapshot: async () => snapshotFixture(), attest: null }) });
    await api.start();
    const status = await new Promise<number>((resolve, reject) => {
      const req = request({ socketPath: sock, path: '/v1/attestation?nonce=abcdefghijklmnop', agent: false }, (res) => { res.resume(); resolve(res.statusCode ?? 0); });
      req.on('error', reject);
      req.end();
    });
    expect(status).toBe(503);
  });
  it('never binds a wildcard address unless configured', () => {
    expect(() => parseListen('0.0.0.0:8780', false)).toThrow(/wildcard/);
    expect(() => parseListen('[::]:8780', false)).toThrow(/wildcard/);
    expect(parseListen('0.0.0.0:8780', true)).toEqual({ host: '0.0.0.0', port: 8780 });
    expect(parseListen('[::1]:1', false)).toEqual({ host: '::1', port: 1 });
    expect(() => parseListen('example.com:80', false)).toThrow();
  });
});

describe('slow clients', () => {
  /** Opens a raw connection; resolves with what the server sent and when it closed the connection. */
  function raw(port: number, talk: (sock: Socket) => void, giveUpMs = 5000): Promise<{ received: string; closedAfterMs: number }> {
    return new Promise((resolve, reject) => {
      const t0 = Date.now();
      const sock = connect(port, '127.0.0.1');
      let received = '';
      sock.on('data', (c) => (received += c.toString()));
      sock.on('error', () => undefined);
      sock.on('close', () => resolve({ received, closedAfterMs: Date.now() - t0 }));
      sock.on('connect', () => talk(sock));
      setTimeout(() => {
        sock.destroy();
        reject(new Error('the server never closed the connection'));
      }, giveUpMs).unref();
    });
  }
  function trickle(sock: Socket, text: string, everyMs: number): void {
    let i = 0;
    const t = setInterval(() => {
      if (sock.destroyed || i >= text.length) return clearInterval(t);
      sock.write(text[i++]!);
    }, everyMs);
  }

  it('closes a connection that sends no request within the headers timeout', async () => {
    const port = await serve({ headersTimeoutMs: 300 });
    const r = await raw(port, () => undefined);
    expect(r.closedAfterMs).toBeGreaterThanOrEqual(250);
    expect(r.closedAfterMs).toBeLessThan(2000);
    expect(api!.timedOut).toBe(1);
  });

  it('closes a connection whose headers trickle in, although bytes keep coming', async () => {
    const port = await serve({ headersTimeoutMs: 300 });
    const r = await raw(port, (sock) => trickle(sock, 'GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ' + 'a'.repeat(200), 20));
    expect(r.closedAfterMs).toBeLessThan(1500);
    expect(r.received).toBe('');
  });

  it('serves a keep-alive request, then cuts the next one that trickles', async () => {
    const port = await serve({ headersTimeoutMs: 300 });
    const r = await raw(port, (sock) => {
      sock.write('GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n');
      sock.once('data', () => trickle(sock, 'GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ' + 'a'.repeat(600), 20)); // 12 s of bytes
    }, 10_000);
    expect(r.received).toMatch(/^HTTP\/1\.1 200/);
    expect(r.received.match(/HTTP\/1\.1/g)).toHaveLength(1);
    // headers timeout + keep-alive timeout (5 s) would be the idle limit; trickling does not extend it.
    expect(r.closedAfterMs).toBeLessThan(5000 + 300 + 1000);
    expect(api!.timedOut).toBe(1);
  }, 15_000);
});

describe('the rate limiter', () => {
  it('refills with time', () => {
    const r = new RateLimiter({ perMinute: 60, burst: 1 });
    expect(r.take('a', 0)).toBe(true);
    expect(r.take('a', 500)).toBe(false);
    expect(r.take('a', 1000)).toBe(true);
    expect(r.take('b', 1000)).toBe(true);
  });
});
