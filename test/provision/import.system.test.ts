/**
 * `provision init` → `ca issue-device` → `provision import` through the
 * built CLI, against a real mosquitto with mutual TLS and the fleet ACL.
 * Every refusal is checked for its code, its fix line, and for leaving the
 * state directory and the configuration exactly as they were.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { mkdir, mkdtemp, readFile, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { requireSystem } from '../helpers/system.js';
import { createDeviceCert, csrPublicKey, parseCsr } from '../../src/pki/certs.js';
import { keyPairFromPem } from '../../src/pki/keys.js';
import { createDevPki, type DevPki } from '../../src/pki/devpki.js';
import { resolveConfig } from '../../src/config/resolve.js';
import { freePort, makeBrokerPki, makeSite, pemBodyLines, snapshot, startFleetBroker, type BrokerPki, type Mosquitto, type Site } from './fixtures.js';

const missing = requireSystem(['mosquitto'], { root: true });
const CLI = join(process.cwd(), 'dist', 'cli', 'main.js');
const DAY = 86_400_000;

interface Run {
  readonly status: number | null;
  readonly stdout: string;
  readonly stderr: string;
  json(): Record<string, unknown>;
}

describe.skipIf(missing)(`provisioning against a real broker${missing ? ` (skipped: ${missing})` : ''}`, () => {
  let dir: string;
  let site: Site;
  let otherFleet: DevPki;
  let otherBroker: BrokerPki;
  let broker: Mosquitto;
  let brokerOfOtherFleet: Mosquitto;
  const outputs: string[] = [];
  const keys: string[] = [];

  function glassbox(...args: string[]): Run {
    const r = spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', timeout: 60_000, env: { ...process.env, GLASSBOX_STATE_DIR: '' } });
    outputs.push(r.stdout, r.stderr);
    return {
      status: r.status,
      stdout: r.stdout,
      stderr: r.stderr,
      json: () => JSON.parse(r.stdout) as Record<string, unknown>,
    };
  }

  interface Recorder {
    readonly name: string;
    readonly state: string;
    readonly config: string;
    readonly usb: string;
    readonly csr: string;
  }

  let counter = 0;
  async function newRecorder(deviceId: string): Promise<Recorder> {
    const name = `r${++counter}`;
    const base = join(dir, name);
    const rec = { name, state: join(base, 'state'), config: join(base, 'etc', 'config.json'), usb: join(base, 'usb'), csr: join(base, 'usb', `${deviceId}.csr`) };
    await mkdir(rec.usb, { recursive: true });
    const r = glassbox('provision', 'init', '--device-id', deviceId, '--hardware', 'HSS-NVR-8', '--state-dir', rec.state, '--owner', 'nobody:nogroup', '--out-csr', rec.usb);
    expect(r.status, r.stderr).toBe(0);
    keys.push(await readFile(join(rec.state, 'identity', 'device.key'), 'utf8'));
    return rec;
  }

  function issue(rec: Recorder, out: string, pki: DevPki = site.pki, ...extra: string[]): Run {
    return glassbox('ca', 'issue-device', rec.csr, '--ca-cert', pki.deviceCa.cert, '--ca-key', pki.deviceCa.key, '--days', '365', '--out', out, ...extra);
  }

  function importCert(rec: Recorder, cert: string, over: { broker?: string; brokerCa?: string; chain?: string } = {}, ...extra: string[]): Run {
    return glassbox(
      'provision',
      'import',
      cert,
      '--chain',
      over.chain ?? site.pki.deviceCa.cert,
      '--trust',
      site.pki.trustPolicy,
      '--broker',
      over.broker ?? broker.url,
      '--broker-ca',
      over.brokerCa ?? site.broker.serverCaFile,
      '--config',
      rec.config,
      '--state-dir',
      rec.state,
      '--broker-timeout',
      '5',
      '--json',
      ...extra,
    );
  }

  /** A certificate made by hand with the fleet device CA for the recorder's CSR key (for shapes ops' CLI would not make). */
  async function handmade(rec: Recorder, opts: { deviceId: string; notBefore?: Date; notAfter?: Date }): Promise<string> {
    const ca = { key: keyPairFromPem(await readFile(site.pki.deviceCa.key)), cert: new X509Certificate(await readFile(site.pki.deviceCa.cert)), pem: await readFile(site.pki.deviceCa.cert, 'utf8') };
    const publicKey = csrPublicKey(parseCsr(await readFile(rec.csr)));
    const c = await createDeviceCert(ca, { deviceId: opts.deviceId, hardwareModel: 'HSS-NVR-8', publicKey }, { ...(opts.notBefore ? { notBefore: opts.notBefore } : {}), ...(opts.notAfter ? { notAfter: opts.notAfter } : {}) });
    const path = join(rec.usb, `handmade-${Date.now()}-${opts.deviceId}.crt`);
    await writeFile(path, c.pem);
    return path;
  }

  async function expectRefusal(rec: Recorder, run: () => Run, code: string, exit: number): Promise<Run> {
    const before = { state: await snapshot(rec.state), etc: await snapshot(join(rec.state, '..', 'etc')) };
    const r = run();
    expect(r.json()['code'], r.stderr).toBe(code);
    expect(r.status).toBe(exit);
    expect(r.stderr).toMatch(/\n {2}fix: \S/);
    expect(await snapshot(rec.state)).toEqual(before.state);
    expect(await snapshot(join(rec.state, '..', 'etc'))).toEqual(before.etc);
    return r;
  }

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'glassbox-import-'));
    site = await makeSite(dir);
    otherFleet = await createDevPki(join(dir, 'other-fleet-pki'), { signers: 1, threshold: 1 });
    otherBroker = await makeBrokerPki(join(dir, 'other-broker'));
    broker = await startFleetBroker(join(dir, 'mosquitto'), site);
    brokerOfOtherFleet = await startFleetBroker(join(dir, 'mosquitto-other'), site, otherFleet.root.cert);
  });

  afterAll(async () => {
    await broker?.stop();
    await brokerOfOtherFleet?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('imports the issued certificate, writes the configuration, checks the broker and prints the checklist', async () => {
    const rec = await newRecorder('rec-0042');
    const cert = join(rec.usb, 'rec-0042.crt');
    expect(issue(rec, cert).status).toBe(0);
    const r = importCert(rec, cert);
    expect(r.status, r.stderr).toBe(0);
    const out = r.json() as { checks: Array<{ id: string; state: string }>; broker: { roundTripMs: number; protocolVersion: number }; deviceStateInitialised: boolean };
    const states = Object.fromEntries(out.checks.map((c) => [c.id, c.state]));
    expect(states).toMatchObject({ identity: 'ok', trust: 'ok', broker: 'ok', clock: expect.stringMatching(/ok|warn/) });
    expect(out.checks.map((c) => c.id)).toEqual(['identity', 'trust', 'broker', 'clock', 'firmware', 'egress-policy']);
    expect(out.broker.protocolVersion).toBe(5);
    expect(out.deviceStateInitialised).toBe(true);

    // the configuration is valid for the daemon and names the identity
    const config = JSON.parse(await readFile(rec.config, 'utf8')) as Record<string, unknown>;
    const resolved = resolveConfig({ file: { name: rec.config, value: config }, env: {}, flags: {} }).config;
    expect(resolved.deviceId).toBe('rec-0042');
    expect(resolved.mqtt).toMatchObject({ url: broker.url, cert: join(rec.state, 'identity', 'device.crt'), key: join(rec.state, 'identity', 'device.key'), ca: join(rec.state, 'identity', 'broker-ca.pem') });

    // key: 0600, owned by the daemon account (nobody:nogroup here), in a 0700 directory of the same owner
    const key = await stat(join(rec.state, 'identity', 'device.key'));
    expect(key.mode & 0o777).toBe(0o600);
    expect([key.uid, key.gid]).toEqual([65534, 65534]);
    const idDir = await stat(join(rec.state, 'identity'));
    expect(idDir.mode & 0o777).toBe(0o700);
    expect([idDir.uid, idDir.gid]).toEqual([65534, 65534]);
    for (const f of await readdir(join(rec.state, 'identity'))) expect((await stat(join(rec.state, 'identity', f))).uid, f).toBe(65534);

    // the broker saw this recorder's certificate identity
    expect(await readFile(broker.log, 'utf8')).toMatch(/as rec-0042-provision-[0-9a-f]{8} \(.*u'rec-0042'\)/);

    // human form of the same: one line per check, the daemon is next
    const again = glassbox('provision', 'import', cert, '--chain', site.pki.deviceCa.cert, '--trust', site.pki.trustPolicy, '--broker', broker.url, '--broker-ca', site.broker.serverCaFile, '--config', rec.config, '--state-dir', rec.state);
    expect(again.status, again.stderr).toBe(0);
    expect(again.stdout).toContain('already imported');
    expect(again.stdout).toMatch(/\[ ok \] Identity +rec-0042/);
    expect(again.stdout).toMatch(/\[ ok \] Broker +connected to mqtts:\/\/127\.0\.0\.1:\d+ \(MQTT 5 over TLSv1\.3, retained status read back in \d+ ms\)/);
    expect(again.stdout).toMatch(/\[ ok \] Trust policy +sha256 [0-9a-f]{64}/);
  });

  describe('refusals leave the recorder as it was', () => {
    it('a certificate from another CA: CERT_WRONG_CA', async () => {
      const rec = await newRecorder('rec-0101');
      const cert = join(rec.usb, 'other-ca.crt');
      expect(issue(rec, cert, otherFleet).status).toBe(0);
      await expectRefusal(rec, () => importCert(rec, cert), 'CERT_WRONG_CA', 1);
      // and with the other fleet's chain: it does not lead to this fleet's roots
      await expectRefusal(rec, () => importCert(rec, cert, { chain: otherFleet.deviceCa.cert }), 'CERT_WRONG_CA', 1);
    });

    it('a certificate for another key: CERT_KEY_MISMATCH', async () => {
      const rec = await newRecorder('rec-0102');
      const twin = await newRecorder('rec-0102');
      const cert = join(twin.usb, 'twin.crt');
      expect(issue(twin, cert).status).toBe(0);
      const r = await expectRefusal(rec, () => importCert(rec, cert), 'CERT_KEY_MISMATCH', 1);
      expect(r.stderr).toContain('for another key');
    });

    it('an expired certificate: CERT_EXPIRED', async () => {
      const rec = await newRecorder('rec-0103');
      const cert = await handmade(rec, { deviceId: 'rec-0103', notBefore: new Date(Date.now() - 400 * DAY), notAfter: new Date(Date.now() - DAY) });
      await expectRefusal(rec, () => importCert(rec, cert), 'CERT_EXPIRED', 1);
    });

    it('a certificate not valid yet by this clock: CLOCK_SKEW with the hours', async () => {
      const rec = await newRecorder('rec-0108');
      const cert = await handmade(rec, { deviceId: 'rec-0108', notBefore: new Date(Date.now() + 6 * 3600_000), notAfter: new Date(Date.now() + 30 * DAY) });
      const r = await expectRefusal(rec, () => importCert(rec, cert), 'CLOCK_SKEW', 1);
      expect(r.stderr).toMatch(/(5|6) hours before the certificate becomes valid/);
    });

    it('a certificate for another device id: CERT_DEVICE_ID', async () => {
      const rec = await newRecorder('rec-0104');
      const cert = await handmade(rec, { deviceId: 'rec-9999' });
      const r = await expectRefusal(rec, () => importCert(rec, cert), 'CERT_DEVICE_ID', 1);
      expect(r.stderr).toContain('rec-9999');
    });

    it('an unreachable broker: BROKER_UNREACHABLE', async () => {
      const rec = await newRecorder('rec-0105');
      const cert = join(rec.usb, 'c.crt');
      expect(issue(rec, cert).status).toBe(0);
      const port = await freePort();
      await expectRefusal(rec, () => importCert(rec, cert, { broker: `mqtts://127.0.0.1:${port}` }), 'BROKER_UNREACHABLE', 2);
    });

    it("a wrong broker CA: BROKER_TLS_UNTRUSTED, naming the CA file", async () => {
      const rec = await newRecorder('rec-0106');
      const cert = join(rec.usb, 'c.crt');
      expect(issue(rec, cert).status).toBe(0);
      const r = await expectRefusal(rec, () => importCert(rec, cert, { brokerCa: otherBroker.serverCaFile }), 'BROKER_TLS_UNTRUSTED', 1);
      expect(r.stderr).toContain(`the broker's certificate is not signed by the CA in ${otherBroker.serverCaFile}`);
    });

    it('a broker that trusts another device CA: BROKER_REFUSED', async () => {
      const rec = await newRecorder('rec-0107');
      const cert = join(rec.usb, 'c.crt');
      expect(issue(rec, cert).status).toBe(0);
      const r = await expectRefusal(rec, () => importCert(rec, cert, { broker: brokerOfOtherFleet.url }), 'BROKER_REFUSED', 1);
      expect(r.stderr).toContain('trusts another device CA');
    });

    it('provisioning twice without --force: ALREADY_PROVISIONED; --force keeps the old one aside', async () => {
      const rec = await newRecorder('rec-0110');
      const cert = join(rec.usb, 'first.crt');
      expect(issue(rec, cert).status).toBe(0);
      expect(importCert(rec, cert).status).toBe(0);
      // init again
      const before = await snapshot(rec.state);
      const init = glassbox('provision', 'init', '--device-id', 'rec-0110', '--hardware', 'HSS-NVR-8', '--state-dir', rec.state, '--owner', 'nobody:nogroup', '--json');
      expect(init.json()['code']).toBe('ALREADY_PROVISIONED');
      expect(init.status).toBe(2);
      expect(init.stderr).toMatch(/\n {2}fix: /);
      expect(await snapshot(rec.state)).toEqual(before);
      // a second certificate for the same key
      const second = join(rec.usb, 'second.crt');
      expect(issue(rec, second).status).toBe(1); // ALREADY_ISSUED on the ops side
      expect(issue(rec, second, site.pki, '--allow-reissue').status).toBe(0);
      await expectRefusal(rec, () => importCert(rec, second), 'ALREADY_PROVISIONED', 2);
      const forced = importCert(rec, second, {}, '--force');
      expect(forced.status, forced.stderr).toBe(0);
      const replacedTo = forced.json()['replacedTo'] as string;
      expect(await readFile(join(replacedTo, 'device.crt'), 'utf8')).toContain(((await readFile(cert, 'utf8')).split('\n')[1]) ?? 'x');
      expect(await readdir(replacedTo)).not.toContain('device.key');
    });
  });

  it('never prints, logs or writes the private key outside the identity directory', async () => {
    expect(keys.length).toBeGreaterThan(5);
    const places: string[] = [...outputs, await readFile(broker.log, 'utf8'), await readFile(brokerOfOtherFleet.log, 'utf8')];
    // every file a run wrote outside identity/ directories: configs, USB sticks, issuance log, device state
    const walk = async (d: string): Promise<void> => {
      for (const e of await readdir(d, { withFileTypes: true })) {
        const p = join(d, e.name);
        if (e.isDirectory()) {
          if (e.name !== 'identity' && !e.name.startsWith('identity.replaced-')) await walk(p);
        } else if (!e.name.endsWith('.key')) places.push(await readFile(p, 'latin1'));
      }
    };
    await walk(dir);
    const haystack = places.join('\n');
    for (const pem of keys) for (const line of pemBodyLines(pem)) expect(haystack.includes(line)).toBe(false);
    // and the search itself can find a key body: the key files do contain them
    expect(pemBodyLines(keys[0] as string).length).toBeGreaterThan(0);
  });
});
