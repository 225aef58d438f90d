/**
 * egress.enabled true on a machine where the observer cannot run (here: no
 * nft or conntrack on the daemon's PATH): the daemon still starts, and the
 * local API serves a signed attestation that verifies and says
 * `incomplete`, naming what is missing. Needs no root.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { privateKeyPem } from '../../src/pki/keys.js';
import { makeTestPki, testDeviceCert } from '../helpers/pki.js';
import { waitFor } from '../helpers/netns.js';
import { httpGet } from './lab-observer.js';

const CLI = resolve('dist/cli/main.js');

// `npm test` builds first; a missing build is an error here, never a silent skip.
if (!existsSync(CLI)) throw new Error(`${CLI} is missing: run \`npm run build\` (npm test does) before this test`);

describe('a daemon whose egress observer cannot run', () => {
  let dir = '';
  let daemon: ChildProcess;
  let out = '';
  const socket = () => join(dir, 'api.sock');

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'glassbox-egress-degraded-'));
    const pki = await makeTestPki({ now: new Date(), namespace: 'egress-degraded' });
    const dev = await testDeviceCert(pki, 'nvr-degraded-1', 'nvr-8p');
    await writeFile(join(dir, 'device.key'), privateKeyPem(dev.key), { mode: 0o600 });
    await writeFile(join(dir, 'device.pem'), dev.chainPem);
    await writeFile(join(dir, 'trust.json'), pki.policyBytes);
    const config = {
      stateDir: join(dir, 'state'),
      mqtt: { cert: join(dir, 'device.pem'), key: join(dir, 'device.key') },
      health: { intervalSeconds: 60, recordingPaths: [dir], smart: false },
      api: { listen: '127.0.0.1:0' },
      egress: { enabled: true, socket: socket(), runtimeDir: join(dir, 'run') },
    };
    await writeFile(join(dir, 'config.json'), JSON.stringify(config));
    // A PATH with neither nft nor conntrack (nor anything else).
    daemon = spawn(process.execPath, [CLI, 'daemon', '--config', join(dir, 'config.json')], { env: { ...process.env, PATH: join(dir, 'empty-path') }, stdio: ['ignore', 'pipe', 'pipe'] });
    daemon.stdout!.on('data', (c: Buffer) => (out += c.toString('utf8')));
    daemon.stderr!.on('data', (c: Buffer) => (out += c.toString('utf8')));
    await waitFor(() => out.includes('"msg":"daemon started"') || daemon.exitCode !== null, 30_000, 'the daemon to start');
    expect(daemon.exitCode, out.slice(-3000)).toBeNull();
  }, 60_000);

  afterAll(async () => {
    if (daemon && daemon.exitCode === null) {
      const exited = new Promise((r) => daemon.once('exit', r));
      daemon.kill('SIGTERM');
      await exited;
    }
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('says so in its log, and /healthz says the observer is not running', async () => {
    expect(out).toMatch(/"missing":\["CAP_NET_ADMIN","nft","conntrack"\]|"missing":\["nft","conntrack"\]/);
    expect(out).toContain('egress observer cannot run: attestations and status say incomplete');
    const h = await httpGet(socket(), '/healthz');
    expect(JSON.parse(h.body.toString())).toMatchObject({ ok: true, deviceId: 'nvr-degraded-1', egress: expect.stringMatching(/^not running: /) });
  });

  it('serves a signed attestation that verifies and says incomplete, with the reason', async () => {
    const nonce = 'degraded-nonce-' + Date.now().toString(36);
    const r = await httpGet(socket(), `/v1/attestation?nonce=${nonce}`);
    expect(r.status).toBe(200);
    await writeFile(join(dir, 'envelope.json'), r.body);
    const v = spawnSync(process.execPath, [CLI, 'verify-attestation', join(dir, 'envelope.json'), '--trust', join(dir, 'trust.json'), '--nonce', nonce, '--json'], { encoding: 'utf8' });
    expect(v.status, v.stdout + v.stderr).toBe(0);
    const report = JSON.parse(v.stdout) as { ok: boolean; verdict: string; statement: { predicate: { reasons: string[]; observation: { gaps: unknown[]; flowsCounted: number } } } };
    expect(report.ok).toBe(true);
    expect(report.verdict).toBe('incomplete');
    expect(report.statement.predicate.reasons[0]).toMatch(/^the egress observer is not running \(.*conntrack.*\): nothing was observed$/);
    expect(report.statement.predicate.reasons).toContain('no installed manifest: there is no egress policy to judge flows against');
    expect(report.statement.predicate.observation.gaps).toHaveLength(1);
    expect(report.statement.predicate.observation.flowsCounted).toBe(0);
  });
});
