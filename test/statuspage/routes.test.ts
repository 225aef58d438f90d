import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { request } from 'node:http';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ApiServer } from '../../src/api/server.js';
import { basicPassword, FailureLimiter, hashPassword, parsePasswordRecord, verifyPassword, type PasswordRecord } from '../../src/statuspage/auth.js';
import { readPasswordRecord, setPassword } from '../../src/statuspage/password-file.js';
import { statusPageRoutes } from '../../src/statuspage/routes.js';
import { STATUS_PAGE_CSP } from '../../src/statuspage/render.js';
import { greenFacts } from '../status/facts.js';

interface Reply {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
}

function get(target: { port?: number; socketPath?: string }, path: string, auth?: string): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = request(
      { ...(target.socketPath ? { socketPath: target.socketPath } : { host: '127.0.0.1', port: target.port }), path, headers: auth ? { authorization: `Basic ${Buffer.from(`tech:${auth}`).toString('base64')}` } : {} },
      (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (d: string) => (body += d));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
      },
    );
    req.on('error', reject);
    req.end();
  });
}

const temps: string[] = [];
async function tempDir(prefix: string): Promise<string> {
  const d = await mkdtemp(join(tmpdir(), prefix));
  temps.push(d);
  return d;
}
afterAll(async () => {
  for (const d of temps) await rm(d, { recursive: true, force: true });
});

describe('password hashing and limits', () => {
  it('verifies the right password only, and the stored record parses back', async () => {
    const rec = await hashPassword('correct horse battery', new Date());
    expect(await verifyPassword(rec, 'correct horse battery')).toBe(true);
    expect(await verifyPassword(rec, 'correct horse batterY')).toBe(false);
    const back = parsePasswordRecord(Buffer.from(JSON.stringify(rec)));
    expect('record' in back && back.record.hash).toBe(rec.hash);
    expect(rec.hash).not.toContain('correct');
  });

  it('reads HTTP Basic passwords, with colons, and nothing else', () => {
    expect(basicPassword(`Basic ${Buffer.from('u:p:q').toString('base64')}`)).toBe('p:q');
    expect(basicPassword('Bearer abc')).toBeNull();
    expect(basicPassword(undefined)).toBeNull();
  });

  it('blocks a client after 5 failures in 5 minutes, then lets it try again', () => {
    const l = new FailureLimiter(5, 300_000);
    for (let i = 0; i < 5; i++) l.fail('a', 1000 + i);
    expect(l.blockedFor('a', 2000)).toBeGreaterThan(0);
    expect(l.blockedFor('b', 2000)).toBe(0);
    expect(l.blockedFor('a', 1000 + 300_001)).toBe(0);
  });
});

describe('the status page routes on the local API', () => {
  let api: ApiServer;
  let port: number;
  let socketPath: string;
  let password: PasswordRecord | null = null;

  beforeAll(async () => {
    const dir = await tempDir('glassbox-page-');
    socketPath = join(dir, 'api.sock');
    api = new ApiServer({
      tcp: '127.0.0.1:0',
      socketPath,
      routes: statusPageRoutes({ facts: async () => greenFacts(), password: async () => password }),
      rateLimit: { perMinute: 6000, burst: 1000 },
    });
    await api.start();
    port = api.tcpAddress!.port;
  });

  afterAll(async () => {
    await api.stop();
  });

  it('serves the page with its Content-Security-Policy, and the JSON view', async () => {
    const page = await get({ port }, '/');
    expect(page.status).toBe(200);
    expect(page.headers['content-type']).toBe('text/html; charset=utf-8');
    expect(page.headers['content-security-policy']).toBe(STATUS_PAGE_CSP);
    expect(page.body).toContain('rec-0042');
    // a fresh nonce per page
    const again = await get({ port }, '/');
    const nonce = (b: string) => /nonce=([A-Za-z0-9_-]+)/.exec(b)?.[1];
    expect(nonce(page.body)).toMatch(/^[A-Za-z0-9_-]{32}$/);
    expect(nonce(again.body)).not.toBe(nonce(page.body));
    const json = JSON.parse((await get({ port }, '/v1/status')).body) as { overall: string; checks: unknown[] };
    expect(json.overall).toBe('ok');
    expect(json.checks).toHaveLength(8);
  });

  describe('with a password set', () => {
    it('asks TCP clients for it, refuses wrong ones, rate-limits guessing, and lets the Unix socket in', async () => {
      const dir = await tempDir('glassbox-pw-');
      await setPassword(dir, 'technician-secret-1', new Date());
      password = await readPasswordRecord(dir);
      expect(password).not.toBeNull();

      const none = await get({ port }, '/');
      expect(none.status).toBe(401);
      expect(none.headers['www-authenticate']).toMatch(/^Basic realm=/);
      expect(none.body).not.toContain('rec-0042');
      expect((await get({ port }, '/v1/status')).status).toBe(401);
      expect((await get({ port }, '/', 'technician-secret-1')).status).toBe(200);
      expect((await get({ socketPath }, '/')).status).toBe(200);

      const codes: number[] = [];
      for (let i = 0; i < 6; i++) codes.push((await get({ port }, '/', `wrong-${i}-password`)).status);
      expect(codes).toEqual([401, 401, 401, 401, 401, 429]);
      // blocked even with the right one until the window passes
      const blocked = await get({ port }, '/', 'technician-secret-1');
      expect(blocked.status).toBe(429);
      expect(Number(blocked.headers['retry-after'])).toBeGreaterThan(0);
      password = null;
    });

    it('forgets a remembered password when a new one is set', async () => {
      const dir = await tempDir('glassbox-pw2-');
      await setPassword(dir, 'first-password-123', new Date());
      let record = await readPasswordRecord(dir);
      const own = new ApiServer({ tcp: '127.0.0.1:0', socketPath: null, routes: statusPageRoutes({ facts: async () => greenFacts(), password: async () => record }) });
      await own.start();
      try {
        const p = own.tcpAddress!.port;
        expect((await get({ port: p }, '/v1/status', 'first-password-123')).status).toBe(200);
        expect((await get({ port: p }, '/v1/status', 'first-password-123')).status).toBe(200); // remembered
        await setPassword(dir, 'second-password-456', new Date());
        record = await readPasswordRecord(dir);
        expect((await get({ port: p }, '/v1/status', 'first-password-123')).status).toBe(401);
        expect((await get({ port: p }, '/v1/status', 'second-password-456')).status).toBe(200);
      } finally {
        await own.stop();
      }
    });
  });
});
