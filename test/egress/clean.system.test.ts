/**
 * glassbox passes its own attestation: `glassbox daemon` itself — a signed
 * release installed, egress left at its default ("auto"), MQTT over TLS
 * with its device certificate to the declared broker (by name, in the
 * lab's WAN namespace), resolving that name every TTL — runs in the
 * recorder namespace for 60 s, and the signed verdict is `clean` with zero
 * undeclared flows. The daemon starts its observer before it connects, so
 * its first broker connection is inside the window; the broker restarts
 * once meanwhile, so a reconnection is a flow inside the window as well. The envelope is fetched with
 * `glassbox attest`, checked with `glassbox verify-attestation` and the
 * stock-tools script; the MQTT `attest` command returns the same envelope.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, realpathSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { createHash } from 'node:crypto';
import { requireSystem } from '../helpers/system.js';
import { ADDR, BROKER_TLS_PORT, createLab, startTlsBroker, waitFor, type Lab, type TlsBroker } from '../helpers/netns.js';
import { makeBundle } from '../helpers/bundle.js';
import { BROKER_NAME, DEVICE_ID, httpGet, labPki } from './lab-observer.js';
import { createDeviceCert, createLeaf, createRootCa } from '../../src/pki/certs.js';
import { generateKey, privateKeyPem } from '../../src/pki/keys.js';
import { x509 } from '../../src/pki/x509.js';
import type { EgressSnapshot } from '../../src/egress/types.js';

const CLI = resolve('dist/cli/main.js');
const missing =
  requireSystem(['ip', 'nft', 'conntrack', 'dnsmasq', 'mosquitto', 'mosquitto_rr', 'openssl', 'base64', 'sha256sum'], { root: true }) ??
  (existsSync(CLI) ? null : `missing: ${CLI} (run npm run build)`);
const RUN_SECONDS = Number(process.env['GLASSBOX_CLEAN_RUN_SECONDS'] ?? 60);
const DAY = 86_400_000;

/** The release's egress policy: the resolver, and the broker by name over TLS. Nothing else. */
const RULES = [
  { id: 'dns', purpose: 'name resolution', proto: 'udp', port: 53, cidr: `${ADDR.dns}/32` },
  { id: 'broker', purpose: 'central ops telemetry (MQTT over TLS)', proto: 'tcp', port: BROKER_TLS_PORT, host: BROKER_NAME },
];

function cli(args: string[]): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', timeout: 60_000, env: { ...process.env, GLASSBOX_STATE_DIR: '' } });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

describe.skipIf(missing)(`glassbox daemon's own traffic over ${RUN_SECONDS} s${missing ? ` (skipped: ${missing})` : ''}`, () => {
  let lab: Lab;
  let broker: TlsBroker;
  let daemon: ChildProcess;
  let out = '';
  let runtimeDir = '';
  const p = { state: '', socket: '', config: '', policy: '', opsCert: '', opsKey: '' };
  const logs = () => out.split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as Record<string, unknown>);
  const egress = async (): Promise<EgressSnapshot> => {
    const r = await httpGet(p.socket, '/v1/egress');
    expect(r.status, r.body.toString()).toBe(200);
    return JSON.parse(r.body.toString('utf8')) as EgressSnapshot;
  };

  beforeAll(async () => {
    lab = await createLab({ hosts: { [BROKER_NAME]: ADDR.broker }, dnsTtl: 2 });
    const { pki, key, chain } = await labPki();
    const dir = join(lab.dir, 'recorder');
    await mkdir(dir, { recursive: true });
    Object.assign(p, { state: join(dir, 'state'), socket: join(dir, 'api.sock'), config: join(dir, 'config.json'), policy: join(dir, 'trust-policy.json') });
    await writeFile(p.policy, pki.policyBytes);
    await writeFile(join(dir, 'device.key'), key, { mode: 0o600 });
    await writeFile(join(dir, 'device.pem'), chain);

    // A release with the lab's policy, installed and committed as on a recorder in service.
    const now = Date.now();
    const bundle = makeBundle(pki, {
      manifest: (m) => {
        m.released = new Date(now - DAY).toISOString().replace(/\.\d{3}Z$/, 'Z');
        m.expires = new Date(now + 365 * DAY).toISOString().replace(/\.\d{3}Z$/, 'Z');
        m['egress'] = RULES;
      },
    });
    await writeFile(join(dir, 'release.tar'), bundle.tar);
    for (const args of [
      ['device', 'init', '--state-dir', p.state, '--trust', p.policy, '--hardware', 'nvr-8p'],
      ['install', join(dir, 'release.tar'), '--state-dir', p.state],
      ['boot-check', '--state-dir', p.state],
    ]) {
      const r = cli(args);
      expect(r.status, `${args[0]}: ${r.stderr}`).toBe(0);
    }

    // The broker: TLS server certificate for its name, client certificates under the fleet's device CA.
    const serverCa = await createRootCa({ key: await generateKey('ecdsa-p256'), subject: 'CN=lab broker CA' });
    const serverKey = await generateKey('ecdsa-p256');
    const server = await createLeaf(
      serverCa,
      { key: serverKey, subject: `CN=${BROKER_NAME}`, purpose: 'clientAuth' },
      { extendedKeyUsage: ['1.3.6.1.5.5.7.3.1'], extraExtensions: [new x509.SubjectAlternativeNameExtension([{ type: 'dns', value: BROKER_NAME }, { type: 'ip', value: ADDR.broker }])] },
    );
    broker = await startTlsBroker(lab, { serverCa: serverCa.pem, serverCert: server.pem, serverKey: privateKeyPem(serverKey), clientCa: pki.root.pem });
    const opsKey = await generateKey('ecdsa-p256');
    const ops = await createDeviceCert(pki.deviceCa, { deviceId: 'ops', publicKey: opsKey.publicKey, now: pki.now });
    p.opsCert = join(dir, 'ops.pem');
    p.opsKey = join(dir, 'ops.key');
    await writeFile(p.opsCert, ops.pem + pki.deviceCa.pem);
    await writeFile(p.opsKey, privateKeyPem(opsKey), { mode: 0o600 });

    // The daemon's configuration: egress left at its default (auto), only the lab's paths.
    runtimeDir = existsSync('/dev/shm') ? await mkdtemp('/dev/shm/glassbox-egress-') : join(dir, 'run');
    const config = {
      stateDir: p.state,
      hardware: 'nvr-8p',
      mqtt: { url: `mqtts://${BROKER_NAME}:${BROKER_TLS_PORT}`, ca: broker.serverCaFile, cert: join(dir, 'device.pem'), key: join(dir, 'device.key') },
      health: { intervalSeconds: 5, recordingPaths: [p.state], smart: false },
      api: { listen: '127.0.0.1:8780' },
      egress: { socket: p.socket, runtimeDir, pollMs: 250 },
    };
    await writeFile(p.config, JSON.stringify(config, null, 2));
    daemon = lab.spawn(lab.rec, [process.execPath, CLI, 'daemon', '--config', p.config]);
    daemon.stdout!.on('data', (c: Buffer) => { out = (out + c.toString('utf8')).slice(-2_000_000); });
    daemon.stderr!.on('data', (c: Buffer) => { out = (out + c.toString('utf8')).slice(-2_000_000); });
    await waitFor(() => /"msg":"daemon started"/.test(out) || daemon.exitCode !== null, 60_000, 'the daemon to start');
    expect(daemon.exitCode, out.slice(-3000)).toBeNull();
    await waitFor(() => out.includes('"msg":"connected to broker"'), 30_000, 'the daemon to reach its broker');
  }, 120_000);

  afterAll(async () => {
    if (daemon && daemon.exitCode === null) {
      await new Promise<void>((r) => {
        const t = setTimeout(() => daemon.kill('SIGKILL'), 10_000);
        daemon.once('close', () => { clearTimeout(t); r(); });
        daemon.kill('SIGTERM');
      });
    }
    await lab?.teardown();
    if (runtimeDir) await rm(runtimeDir, { recursive: true, force: true });
  });

  it('decides on its own to observe (auto: a release is installed), and says so', () => {
    const decided = logs().find((l) => typeof l['msg'] === 'string' && (l['msg'] as string).startsWith('egress observer on (auto'));
    expect(decided, out.slice(-3000)).toBeDefined();
    expect(logs().some((l) => l['msg'] === 'egress observer started')).toBe(true);
  });

  it('is clean after running, with its broker and DNS flows declared and attributed', async () => {
    // A third of the way in, the broker restarts: the daemon reconnects inside the window.
    await new Promise((r) => setTimeout(r, (RUN_SECONDS * 1000) / 3));
    const connectsBefore = logs().filter((l) => l['msg'] === 'connected to broker').length;
    await broker.restart();
    await waitFor(() => logs().filter((l) => l['msg'] === 'connected to broker').length > connectsBefore, 30_000, 'the daemon to reconnect');
    await new Promise((r) => setTimeout(r, (RUN_SECONDS * 2000) / 3));

    const snap = await egress();
    expect(snap.reasons).toEqual([]);
    expect(snap.verdict).toBe('clean');
    expect(snap.undeclared).toBe(0);
    expect(snap.observation.eventsLost).toBe(0);
    expect(snap.observation.gaps).toEqual([]);
    expect(snap.observation.rulesetIntact).toBe(true);
    expect(snap.policy.rules?.map((r) => r.id)).toEqual(['dns', 'broker']);
    expect(new Set(snap.flows.map((f) => f.rule))).toEqual(new Set(['broker', 'dns']));
    // Name resolution again and again (TTL 2 s; c-ares may reuse its UDP socket, so a flow can carry many queries).
    expect(snap.observation.counters.rules['dns']!.local).toBeGreaterThan(1);
    const mqttFlow = snap.flows.find((f) => f.rule === 'broker')!;
    expect(mqttFlow.dst).toBe(ADDR.broker);
    expect(mqttFlow.dport).toBe(BROKER_TLS_PORT);
    expect(mqttFlow.uids).toEqual([0]);
    // The long-lived MQTT socket is attributed to the daemon's process and executable.
    expect(mqttFlow.process?.exe).toBe(realpathSync(process.execPath));
    expect(mqttFlow.process?.sha256).toBe(createHash('sha256').update(await readFile(process.execPath)).digest('hex'));
    expect(mqttFlow.process?.pid).toBe(daemon.pid);
    // The daemon installs its table before it connects: its FIRST broker connection is inside the
    // window too (not only the reconnection after the restart). The flow key has no source port, so
    // both connections count on one entry, first seen at or before the first connect.
    const lines = logs();
    const connectAt = lines.findIndex((l) => l['msg'] === 'connected to broker');
    const observerAt = lines.findIndex((l) => l['msg'] === 'egress observer started');
    expect(observerAt).toBeGreaterThanOrEqual(0);
    expect(observerAt).toBeLessThan(connectAt);
    const firstConnect = lines[connectAt]!;
    expect(mqttFlow.count).toBeGreaterThanOrEqual(2);
    expect(Date.parse(mqttFlow.firstSeen)).toBeLessThanOrEqual(Date.parse(firstConnect['time'] as string));
  }, (RUN_SECONDS + 90) * 1000);

  it('serves a signed clean attestation that verify-attestation and the stock-tools check accept', async () => {
    const nonce = 'lab-nonce-' + Date.now().toString(36) + 'abcdef';
    const envPath = join(lab.dir, 'envelope.json');
    const attest = cli(['attest', '--socket', p.socket, '--nonce', nonce, '--out', envPath]);
    expect(attest.stderr).toBe('');
    expect(attest.status).toBe(0);

    const verify = cli(['verify-attestation', envPath, '--trust', p.policy, '--nonce', nonce]);
    expect(verify.stderr).toBe('');
    expect(verify.status).toBe(0);
    expect(verify.stdout).toContain(`authentic and fresh: device ${DEVICE_ID}`);
    expect(verify.stdout).toContain('verdict: clean');

    const stock = spawnSync('sh', [resolve('scripts/check-attestation.sh'), envPath, p.policy, nonce], { encoding: 'utf8' });
    expect(stock.stdout + stock.stderr).toContain(`AUTHENTIC AND FRESH: device ${DEVICE_ID}, verdict clean, undeclared flows 0`);
    expect(stock.status).toBe(0);

    // The same envelope with another nonce is refused, by both.
    const other = 'someone-elses-nonce-123';
    expect(cli(['verify-attestation', envPath, '--trust', p.policy, '--nonce', other]).status).toBe(1);
    const stockBad = spawnSync('sh', [resolve('scripts/check-attestation.sh'), envPath, p.policy, other], { encoding: 'utf8' });
    expect(stockBad.status).toBe(1);
    expect(stockBad.stdout).toContain("FAIL: the document's nonce");
  }, 60_000);

  it('answers the MQTT attest command with the same envelope, which verifies offline', async () => {
    const nonce = 'ops-mqtt-nonce-' + Date.now().toString(36);
    const root = `glassbox/v1/${DEVICE_ID}`;
    // Central ops asks over the broker (MQTT 5 request/response), from the WAN side.
    const rr = await lab.run(lab.wan, [
      'mosquitto_rr', '-V', '5', '-h', ADDR.broker, '-p', String(BROKER_TLS_PORT), '--cafile', broker.serverCaFile, '--cert', p.opsCert, '--key', p.opsKey,
      '-i', 'ops-attest', '-t', `${root}/cmd/attest`, '-e', `${root}/cmd/attest/response/ops`, '-W', '20',
      '-m', JSON.stringify({ args: { nonce } }),
    ], { timeoutMs: 30_000 });
    expect(rr.code, rr.stderr).toBe(0);
    const response = JSON.parse(rr.stdout.trim()) as { ok: boolean; command: string; result: Record<string, unknown> };
    expect(response).toMatchObject({ ok: true, command: 'attest' });
    const mqttEnvelope = response.result;
    const file = join(lab.dir, 'envelope-mqtt.json');
    // The envelope is canonical JSON; parsed and serialised again it has the same bytes.
    await writeFile(file, JSON.stringify(mqttEnvelope));
    const verify = cli(['verify-attestation', file, '--trust', p.policy, '--nonce', nonce, '--json']);
    expect(verify.status, verify.stdout + verify.stderr).toBe(0);
    expect(JSON.parse(verify.stdout)).toMatchObject({ ok: true, verdict: 'clean' });
    const stock = spawnSync('sh', [resolve('scripts/check-attestation.sh'), file, p.policy, nonce], { encoding: 'utf8' });
    expect(stock.status, stock.stdout + stock.stderr).toBe(0);

    // The same envelope as the local API's: same type, signer, chain and statement (but for time, nonce and counts).
    const api = await httpGet(p.socket, `/v1/attestation?nonce=${nonce}`);
    expect(api.status).toBe(200);
    const apiEnvelope = JSON.parse(api.body.toString('utf8')) as Record<string, unknown>;
    expect(Object.keys(mqttEnvelope).sort()).toEqual(Object.keys(apiEnvelope).sort());
    for (const k of ['payloadType', 'certificates']) expect(mqttEnvelope[k]).toEqual(apiEnvelope[k]);
    const keyid = (e: Record<string, unknown>) => (e['signatures'] as Array<{ keyid: string }>)[0]!.keyid;
    expect(keyid(mqttEnvelope)).toBe(keyid(apiEnvelope));
    const statement = (e: Record<string, unknown>) => JSON.parse(Buffer.from(e['payload'] as string, 'base64').toString('utf8')) as { subject: unknown; predicate: Record<string, unknown> };
    const [a, b] = [statement(mqttEnvelope), statement(apiEnvelope)];
    expect(a.subject).toEqual(b.subject);
    for (const k of ['nonce', 'device', 'policy', 'firmware', 'verdict']) expect(a.predicate[k], k).toEqual(b.predicate[k]);
  }, 60_000);

  it('answers a missing or malformed nonce with HTTP 400 and a JSON error, never a document', async () => {
    for (const q of ['', '?nonce=short', '?nonce=' + 'x'.repeat(129), '?nonce=bad%20nonce%20with%20spaces', '?nonce=aaaaaaaaaaaaaaaa&nonce=bbbbbbbbbbbbbbbb']) {
      const r = await httpGet(p.socket, `/v1/attestation${q}`);
      expect(r.status).toBe(400);
      expect(JSON.parse(r.body.toString()).error).toBe('NONCE_INVALID');
    }
    const h = await httpGet(p.socket, '/healthz');
    expect(h.status).toBe(200);
    expect(JSON.parse(h.body.toString())).toMatchObject({ ok: true, deviceId: DEVICE_ID, egress: 'running' });
  });
});
