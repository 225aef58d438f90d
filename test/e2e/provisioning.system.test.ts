/**
 * End to end, as in the field: a fresh recorder (its own network namespace
 * of the egress lab) → `provision init` (key, CSR on a "USB stick") → ops'
 * `ca issue-device` → `provision import` (mutual-TLS broker check against a
 * real mosquitto in the WAN namespace) → a signed firmware bundle installed
 * and committed → `glassbox daemon` connects to the broker with the new
 * identity → `glassbox status` shows every check green → the status page,
 * loaded by headless Chromium inside the recorder's namespace, shows the
 * same, and every request it made went to the daemon. Nothing printed,
 * logged or written outside the identity directory holds the private key.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { chmod, mkdir, readFile, readdir, stat, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { requireSystem } from '../helpers/system.js';
import { ADDR, createLab, waitFor, type Lab } from '../helpers/netns.js';
import { makeTestPki, type TestPki } from '../helpers/pki.js';
import { makeBundle } from '../helpers/bundle.js';
import { createLeaf, createRootCa } from '../../src/pki/certs.js';
import { generateKey, privateKeyPem } from '../../src/pki/keys.js';
import { x509 } from '../../src/pki/x509.js';
import { CONFIG_SCHEMA } from '../../src/config/schema.js';
import { chromium, type Browser } from 'playwright-core';
import { CHROMIUM, CHROMIUM_ARGS, requireChromium } from '../statuspage/browser.js';
import { pemBodyLines } from '../provision/fixtures.js';

const CLI = resolve('dist/cli/main.js');
const DEVICE = 'rec-e2e-0001';
const MODEL = 'nvr-8p';
const BROKER_PORT = 8883;
const API = '127.0.0.1:8780';
const DAY = 86_400_000;

const missing =
  requireSystem(['ip', 'nft', 'conntrack', 'dnsmasq', 'mosquitto'], { root: true }) ?? requireChromium() ?? (existsSync(CLI) ? null : `missing: ${CLI} (run npm run build)`);
/** The daemon serves its local API (and so the status page) from the egress plug-in, enabled by config `egress`. */
const daemonApi = 'egress' in CONFIG_SCHEMA.properties ? null : 'the daemon configuration has no `egress` section yet (src/config/schema.ts), so the daemon serves no local API';

interface Run {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

describe.skipIf(missing)(`a new recorder, provisioned and reporting${missing ? ` (skipped: ${missing})` : ''}`, () => {
  let lab: Lab;
  let pki: TestPki;
  let dir: string;
  let daemon: ChildProcess | null = null;
  let daemonOut = '';
  const outputs: string[] = [];
  const paths = {
    ops: '',
    usb: '',
    state: '',
    config: '',
    bundle: '',
    brokerCa: '',
    socket: '',
  };

  /** The CLI on the host (files only), or inside the recorder's namespace (network). */
  async function glassbox(args: string[], where: 'host' | 'recorder' = 'host'): Promise<Run> {
    let r: Run;
    if (where === 'recorder') r = await lab.run(lab.rec, [process.execPath, CLI, ...args], { timeoutMs: 120_000 });
    else {
      const s = spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', timeout: 120_000, env: { ...process.env, GLASSBOX_STATE_DIR: '' } });
      r = { code: s.status, stdout: s.stdout, stderr: s.stderr };
    }
    outputs.push(r.stdout, r.stderr);
    return r;
  }

  beforeAll(async () => {
    lab = await createLab({ hosts: { 'broker.fleet.example': ADDR.broker }, dnsTtl: 30 });
    dir = lab.dir;
    for (const [k, sub] of [['ops', 'ops'], ['usb', 'usb'], ['state', 'recorder/var/lib/glassbox']] as const) {
      paths[k] = join(dir, sub);
      await mkdir(paths[k], { recursive: true });
    }
    paths.config = join(dir, 'recorder/etc/glassbox/config.json');
    paths.socket = join(dir, 'recorder/api.sock');

    // Ops: the fleet PKI (root, release signers, device CA, trust policy) and a signed release.
    pki = await makeTestPki({ now: new Date(), namespace: 'e2e' });
    await writeFile(join(paths.ops, 'device-ca.pem'), pki.deviceCa.pem);
    await writeFile(join(paths.ops, 'device-ca.key'), privateKeyPem(pki.deviceCa.key), { mode: 0o600 });
    await writeFile(join(paths.ops, 'trust-policy.json'), pki.policyBytes);
    await writeFile(join(paths.ops, 'root-ca.pem'), pki.root.pem);
    const now = Date.now();
    const bundle = makeBundle(pki, {
      manifest: (m) => {
        m.hardware = [MODEL];
        m.released = new Date(now - DAY).toISOString().replace(/\.\d{3}Z$/, 'Z');
        m.expires = new Date(now + 365 * DAY).toISOString().replace(/\.\d{3}Z$/, 'Z');
        m['egress'] = [
          { id: 'broker', purpose: 'telemetry to central ops', proto: 'tcp', port: BROKER_PORT, cidr: `${ADDR.broker}/32` },
          { id: 'dns', purpose: 'name resolution', proto: 'udp', port: 53, cidr: `${ADDR.dns}/32` },
        ];
      },
    });
    paths.bundle = join(paths.ops, 'firmware-2.4.1.tar');
    await writeFile(paths.bundle, bundle.tar);

    // The broker: mosquitto in the WAN namespace, TLS on 192.0.2.10:8883, client certificates under the fleet root, the fleet ACL.
    const brokerCa = await createRootCa({ key: await generateKey('ecdsa-p256'), subject: 'CN=e2e broker CA' });
    const serverKey = await generateKey('ecdsa-p256');
    const server = await createLeaf(
      brokerCa,
      { key: serverKey, subject: 'CN=broker.fleet.example', purpose: 'clientAuth' },
      { extendedKeyUsage: ['1.3.6.1.5.5.7.3.1'], extraExtensions: [new x509.SubjectAlternativeNameExtension([{ type: 'ip', value: ADDR.broker }, { type: 'dns', value: 'broker.fleet.example' }])] },
    );
    const b = join(dir, 'broker');
    await mkdir(b);
    paths.brokerCa = join(paths.ops, 'broker-ca.pem');
    await writeFile(paths.brokerCa, brokerCa.pem);
    await writeFile(join(b, 'server.pem'), server.pem);
    await writeFile(join(b, 'server.key'), privateKeyPem(serverKey), { mode: 0o600 });
    await writeFile(join(b, 'acl'), 'pattern readwrite glassbox/v1/%u/#\n');
    await writeFile(
      join(b, 'mosquitto.conf'),
      [
        'user root',
        'per_listener_settings false',
        'allow_anonymous false',
        `acl_file ${join(b, 'acl')}`,
        'persistence false',
        `log_dest file ${join(b, 'mosquitto.log')}`,
        'log_type all',
        `listener ${BROKER_PORT} ${ADDR.broker}`,
        `cafile ${join(paths.ops, 'root-ca.pem')}`,
        `certfile ${join(b, 'server.pem')}`,
        `keyfile ${join(b, 'server.key')}`,
        'require_certificate true',
        'use_identity_as_username true',
        '',
      ].join('\n'),
    );
    lab.spawn(lab.wan, ['mosquitto', '-c', join(b, 'mosquitto.conf')]);
    const probe = `require('net').connect(${BROKER_PORT}, '${ADDR.broker}').on('connect', () => process.exit(0)).on('error', () => process.exit(1))`;
    await waitFor(async () => (await lab.run(lab.rec, [process.execPath, '-e', probe])).code === 0, 15_000, 'mosquitto in the WAN namespace');
  }, 120_000);

  afterAll(async () => {
    if (daemon && daemon.exitCode === null) {
      daemon.kill('SIGTERM');
      await new Promise((r) => daemon?.once('exit', r));
    }
    await lab?.teardown();
  });

  it('provision init → ca issue-device → provision import: identity, trust, broker and clock are green', async () => {
    const init = await glassbox(['provision', 'init', '--device-id', DEVICE, '--hardware', MODEL, '--state-dir', paths.state, '--owner', 'nobody:nogroup', '--out-csr', paths.usb]);
    expect(init.code, init.stderr).toBe(0);
    const key = await stat(join(paths.state, 'identity', 'device.key'));
    expect([key.mode & 0o777, key.uid, key.gid]).toEqual([0o600, 65534, 65534]);

    const csr = join(paths.usb, `${DEVICE}.csr`);
    const cert = join(paths.usb, `${DEVICE}.crt`);
    const issued = await glassbox(['ca', 'issue-device', csr, '--ca-cert', join(paths.ops, 'device-ca.pem'), '--ca-key', join(paths.ops, 'device-ca.key'), '--log', join(paths.ops, 'issued.jsonl'), '--out', cert]);
    expect(issued.code, issued.stderr).toBe(0);

    const imported = await glassbox(
      ['provision', 'import', cert, '--chain', join(paths.ops, 'device-ca.pem'), '--trust', join(paths.ops, 'trust-policy.json'), '--broker', `mqtts://${ADDR.broker}:${BROKER_PORT}`, '--broker-ca', paths.brokerCa, '--config', paths.config, '--state-dir', paths.state, '--json'],
      'recorder',
    );
    expect(imported.code, imported.stderr).toBe(0);
    const checks = (JSON.parse(imported.stdout) as { checks: Array<{ id: string; state: string }> }).checks;
    expect(Object.fromEntries(checks.map((c) => [c.id, c.state]))).toMatchObject({ identity: 'ok', trust: 'ok', broker: 'ok' });
    expect(await readFile(join(dir, 'broker', 'mosquitto.log'), 'utf8')).toMatch(new RegExp(`as ${DEVICE}-provision-[0-9a-f]{8} \\(.*u'${DEVICE}'\\)`));
  });

  it('the signed release installs and commits', async () => {
    const install = await glassbox(['install', paths.bundle, '--state-dir', paths.state]);
    expect(install.code, install.stderr).toBe(0);
    const boot = await glassbox(['boot-check', '--state-dir', paths.state]);
    expect(boot.code, boot.stderr).toBe(0);
  });

  it('the daemon connects to the broker with the provisioned identity, and status shows every check green', async () => {
    // What the site adds to the configuration provisioning wrote: the API socket, a fast health interval for the test.
    const config = JSON.parse(await readFile(paths.config, 'utf8')) as Record<string, unknown>;
    Object.assign(config, {
      api: { listen: API },
      health: { intervalSeconds: 2, recordingPaths: [paths.state], smart: false },
      log: { level: 'info' },
      ...(daemonApi === null ? { egress: { enabled: true, socket: paths.socket, pollMs: 500 } } : {}),
    });
    await writeFile(paths.config, JSON.stringify(config, null, 2) + '\n');
    daemon = lab.spawn(lab.rec, [process.execPath, CLI, 'daemon', '--config', paths.config]);
    daemon.stdout?.on('data', (d: Buffer) => (daemonOut += d.toString()));
    daemon.stderr?.on('data', (d: Buffer) => (daemonOut += d.toString()));
    await waitFor(() => /"msg":"daemon started"/.test(daemonOut) || daemon?.exitCode !== null, 60_000, 'the daemon to start');
    expect(daemon.exitCode, daemonOut.slice(-3000)).toBeNull();
    await waitFor(async () => (await readFile(join(dir, 'broker', 'mosquitto.log'), 'utf8')).includes(`u'${DEVICE}'`) && daemonOut.includes('connected to broker'), 30_000, 'the daemon to connect');

    const statusArgs = ['status', '--state-dir', paths.state, '--config', paths.config, '--json', ...(daemonApi === null ? ['--socket', paths.socket] : [])];
    let last: { technician: { source: string; overall: string; checks: Array<{ id: string; state: string; detail: string }> } } | null = null;
    const wanted = daemonApi === null ? ['identity', 'trust', 'firmware', 'egress-policy', 'broker', 'clock', 'health', 'egress'] : ['identity', 'trust', 'firmware', 'egress-policy', 'broker', 'clock'];
    await waitFor(
      async () => {
        const r = await glassbox(statusArgs);
        if (r.code !== 0) return false;
        last = JSON.parse(r.stdout) as typeof last;
        return wanted.every((id) => last?.technician.checks.find((c) => c.id === id)?.state === 'ok');
      },
      60_000,
      'every check to turn green',
    ).catch((e: unknown) => {
      throw new Error(`${(e as Error).message}: ${JSON.stringify(last?.technician.checks, null, 1)}\n${daemonOut.slice(-3000)}`);
    });
    const view = last!.technician;
    if (daemonApi === null) {
      expect(view.source).toBe('daemon');
      expect(view.overall).toBe('ok');
    } else {
      expect(view.source).toBe('files');
    }
    const human = await glassbox(['status', '--state-dir', paths.state, '--config', paths.config, ...(daemonApi === null ? ['--socket', paths.socket] : [])]);
    expect(human.stdout).toContain(`Recorder ${DEVICE} (${MODEL})`);
    for (const id of wanted) expect(view.checks.find((c) => c.id === id)?.state, id).toBe('ok');
  }, 180_000);

  it.skipIf(daemonApi)(`the status page, in Chromium inside the recorder's namespace, is all green and calls only the daemon${daemonApi ? ` (skipped: ${daemonApi})` : ''}`, async () => {
    const wrapper = join(dir, 'chromium-in-recorder.sh');
    await writeFile(wrapper, `#!/bin/sh\nexec ip netns exec ${lab.rec} ${CHROMIUM} "$@"\n`);
    await chmod(wrapper, 0o755);
    const browser: Browser = await chromium.launch({ executablePath: wrapper, args: CHROMIUM_ARGS, timeout: 60_000 });
    try {
      const context = await browser.newContext({ viewport: { width: 390, height: 844 }, isMobile: true, hasTouch: true, deviceScaleFactor: 2 });
      const page = await context.newPage();
      const requests: string[] = [];
      page.on('request', (r) => requests.push(r.url()));
      const res = await page.goto(`http://${API}/`, { waitUntil: 'networkidle' });
      expect(res?.status()).toBe(200);
      expect(await page.textContent('#overall')).toBe('All checks pass');
      expect(await page.locator('[data-check][data-state="ok"]').count()).toBe(8);
      expect(await page.textContent('#egress-verdict')).toBe('Verdict: clean');
      expect(await page.textContent('#device')).toContain(DEVICE);
      expect(await page.innerText('main')).toContain('2.4.1');
      await mkdir(resolve('test-output', 'e2e'), { recursive: true });
      await page.screenshot({ path: resolve('test-output', 'e2e', 'status-page.png'), fullPage: true });
      await page.screenshot({ path: resolve('test-output', 'e2e', 'status-page-first-screen.png') });
      // The signed attestation the page offers, fetched the way a buyer's browser would, verifies offline.
      const href = (await page.getAttribute('#attestation-link', 'href')) as string;
      const nonce = new URL(href, `http://${API}`).searchParams.get('nonce') as string;
      const envelope = await page.goto(`http://${API}${href}`);
      expect(envelope?.status()).toBe(200);
      const file = join(dir, 'attestation.json');
      await writeFile(file, await envelope!.body());
      const verified = await glassbox(['verify-attestation', file, '--trust', join(paths.ops, 'trust-policy.json'), '--nonce', nonce]);
      expect(verified.code, verified.stdout + verified.stderr).toBe(0);
      for (const url of requests) expect(new URL(url).host, url).toBe(API);
      await context.close();
    } finally {
      await browser.close();
    }
  }, 120_000);

  it('never printed, logged or wrote the private key outside the identity directory', async () => {
    const key = await readFile(join(paths.state, 'identity', 'device.key'), 'utf8');
    const lines = pemBodyLines(key);
    expect(lines.length).toBeGreaterThan(0);
    const places = [...outputs, daemonOut, await readFile(join(dir, 'broker', 'mosquitto.log'), 'utf8')];
    const walk = async (d: string): Promise<void> => {
      for (const e of await readdir(d, { withFileTypes: true })) {
        const p = join(d, e.name);
        if (e.isDirectory()) {
          if (e.name !== 'identity') await walk(p);
        } else if (e.isFile() && !p.startsWith(join(paths.ops, 'device-ca.key'))) places.push(await readFile(p, 'latin1'));
      }
    };
    await walk(dir);
    const haystack = places.join('\n');
    for (const line of lines) expect(haystack.includes(line)).toBe(false);
  });
});


