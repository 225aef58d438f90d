/**
 * `npm start` on a fresh checkout reaches "telemetry flowing" with no other
 * setup: dev PKI and device identity generated, a sample signed bundle
 * installed, the embedded broker started; a subscriber sees the telemetry.
 */
import { spawn } from 'node:child_process';
import { mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { collect, connectClient, endClient, requireBuilt } from '../helpers/daemon-process.js';

describe('npm start', () => {
  let dir = '';
  afterAll(async () => {
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('reaches telemetry flowing from nothing, and a subscriber receives status, provenance, events and health', async () => {
    requireBuilt();
    dir = await mkdtemp(join(tmpdir(), 'gb-npmstart-'));
    const child = spawn('npm', ['start', '--silent'], {
      env: { ...process.env, GLASSBOX_DEV_DIR: join(dir, '.glassbox-dev'), GLASSBOX_DEV_BROKER_PORT: '0', GLASSBOX_API_LISTEN: '127.0.0.1:0' },
      stdio: ['ignore', 'pipe', 'pipe'],
      detached: true,
    });
    let err = '';
    child.stdout.resume();
    const flowing = new Promise<void>((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`no "telemetry flowing" within 60 s; stderr:\n${err}`)), 60_000);
      child.stderr.on('data', (d: Buffer) => {
        err += d.toString();
        if (/telemetry flowing/.test(err)) {
          clearTimeout(t);
          resolve();
        }
      });
      child.once('exit', (code) => reject(new Error(`npm start exited ${code}: ${err}`)));
    });
    try {
      await flowing;
      const m = /mosquitto_sub -h (\S+) -p (\d+) -t 'glassbox\/#' -v/.exec(err);
      expect(m).not.toBeNull();
      expect(err).toMatch(/local API: http:\/\//);
      const sub = await connectClient(`mqtt://${m![1]}:${m![2]}`, { protocolVersion: 4, clientId: 'npm-start-test' });
      try {
        const seen = collect(sub);
        await sub.subscribeAsync('glassbox/#', { qos: 1 });
        const root = 'glassbox/v1/dev-recorder-1';
        expect((await seen.waitFor((x) => x.topic === `${root}/status`)).json).toMatchObject({ state: 'online', deviceId: 'dev-recorder-1' });
        const prov = await seen.waitFor((x) => x.topic === `${root}/provenance`);
        expect(prov.json.installed).toMatchObject({ version: '1.0.0-dev.1', securityVersion: 1 });
        expect(prov.json.installed.signers).toHaveLength(2);
        expect(prov.json.installed.sbomSha256).toMatch(/^[0-9a-f]{64}$/);
        await sub.publishAsync(`${root}/cmd/health`, '{"correlationId":"npm-start"}');
        const res = await seen.waitFor((x) => x.topic === `${root}/cmd/health/response`);
        expect(res.json).toMatchObject({ ok: true, correlation: 'npm-start' });
        await seen.waitFor((x) => x.topic === `${root}/health`);
      } finally {
        await endClient(sub);
      }
      // The identity and the sample install are where the docs say.
      await stat(join(dir, '.glassbox-dev', 'device', 'device.pem'));
      await stat(join(dir, '.glassbox-dev', 'state', 'state.json'));
    } finally {
      const exited = new Promise((r) => child.once('exit', r));
      if (child.exitCode === null) process.kill(-child.pid!, 'SIGTERM');
      await exited;
      // npm may exit before the daemon (its grandchild) has finished stopping and writing its state
      // (with egress on in --dev as root, that takes longer): wait until the process group is empty.
      for (let i = 0; i < 200; i++) {
        try {
          process.kill(-child.pid!, 0);
        } catch {
          break;
        }
        await new Promise((r) => setTimeout(r, 50));
      }
    }
  });
});
