/**
 * Runs the standalone egress observer (dist/egress/observer.js) inside the
 * lab's recorder namespace, with a test PKI's device identity and a lab
 * manifest, and talks to it over its Unix socket. `npm run build` first
 * (npm test does).
 */
import { request } from 'node:http';
import { existsSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import type { ChildProcess } from 'node:child_process';
import { privateKeyPem } from '../../src/pki/keys.js';
import { canonicalBytes } from '../../src/manifest/canonical.js';
import { makeTestPki, testDeviceCert, type TestPki } from '../helpers/pki.js';
import { validManifest } from '../manifest/fixtures.js';
import { ADDR, BROKER_PORT, waitForOutput, type Lab } from '../helpers/netns.js';
import type { EgressSnapshot } from '../../src/egress/types.js';

export const OBSERVER_JS = resolve('dist/egress/observer.js');
export const DEVICE_ID = 'nvr-lab-0001';
export const BROKER_NAME = 'broker.lab.example';

export function builtObserverMissing(): string | null {
  return existsSync(OBSERVER_JS) ? null : `missing: ${OBSERVER_JS} (run npm run build)`;
}

/** The lab's manifest rules: the resolver, the broker by name, RTSP to the camera LAN. */
export function labRules(): Array<Record<string, unknown>> {
  return [
    { id: 'dns', purpose: 'name resolution', proto: 'udp', port: 53, cidr: `${ADDR.dns}/32` },
    { id: 'broker', purpose: 'central ops telemetry', proto: 'tcp', port: BROKER_PORT, host: BROKER_NAME },
    { id: 'cameras', purpose: 'RTSP from the PoE LAN', proto: 'tcp', port: 554, cidr: '198.51.100.0/24' },
  ];
}

export interface RunningObserver {
  readonly proc: ChildProcess;
  readonly socket: string;
  readonly pki: TestPki;
  readonly deviceChainPem: string;
  readonly stateDir: string;
  /** The detail reader's spool is <runtimeDir>/conntrack. */
  readonly runtimeDir: string;
  readonly logs: () => string;
  get(path: string): Promise<{ status: number; body: Buffer }>;
  egress(): Promise<EgressSnapshot & { observer: { readerPid: number | null; rotations?: number; duplicatesDropped?: number; events?: number } }>;
  stop(): Promise<void>;
}

let pkiCache: Promise<{ pki: TestPki; key: string; chain: string }> | null = null;
export function labPki(): Promise<{ pki: TestPki; key: string; chain: string }> {
  pkiCache ??= (async () => {
    const pki = await makeTestPki({ now: new Date(), namespace: 'egress-lab' });
    const dev = await testDeviceCert(pki, DEVICE_ID, 'nvr-8p');
    return { pki, key: privateKeyPem(dev.key), chain: dev.chainPem };
  })();
  return pkiCache;
}

export function httpGet(socketPath: string, path: string, timeoutMs = 15_000): Promise<{ status: number; body: Buffer }> {
  return new Promise((resolvePromise, reject) => {
    const req = request({ socketPath, path, method: 'GET', timeout: timeoutMs, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolvePromise({ status: res.statusCode ?? 0, body: Buffer.concat(chunks) }));
    });
    req.on('timeout', () => req.destroy(new Error(`GET ${path} timed out`)));
    req.on('error', reject);
    req.end();
  });
}

export interface ObserverOptions {
  readonly mode?: 'observe' | 'enforce';
  /** null = no manifest installed. */
  readonly rules?: Array<Record<string, unknown>> | null;
  readonly name?: string;
  readonly conntrackBufferBytes?: number;
  readonly spoolSegmentBytes?: number;
  readonly pollMs?: number;
  readonly mqtt?: boolean;
  readonly stateDir?: string;
}

export async function startObserver(lab: Lab, opts: ObserverOptions = {}): Promise<RunningObserver> {
  const name = opts.name ?? 'obs';
  const { pki, key, chain } = await labPki();
  const keyPath = join(lab.dir, `${name}-device.key`);
  const chainPath = join(lab.dir, `${name}-device-chain.pem`);
  await writeFile(keyPath, key, { mode: 0o600 });
  await writeFile(chainPath, chain);
  let manifestPath: string | null = null;
  const rules = opts.rules === undefined ? labRules() : opts.rules;
  if (rules !== null) {
    const m = validManifest();
    m.egress = rules;
    manifestPath = join(lab.dir, `${name}-manifest.json`);
    await writeFile(manifestPath, canonicalBytes(m));
  }
  const stateDir = opts.stateDir ?? join(lab.dir, `${name}-state`);
  // The detail reader's spool on tmpfs, as on a recorder (/run/glassbox/egress).
  const runtimeDir = existsSync('/dev/shm') ? await mkdtemp('/dev/shm/glassbox-egress-') : join(lab.dir, `${name}-run`);
  const socket = join(lab.dir, `${name}.sock`);
  const config = {
    stateDir,
    mode: opts.mode ?? 'observe',
    manifestPath,
    deviceKey: keyPath,
    deviceChain: chainPath,
    hardware: 'nvr-8p',
    api: { tcp: '127.0.0.1:8780', socket },
    mqtt: opts.mqtt ? { url: `mqtt://${BROKER_NAME}:${BROKER_PORT}`, heartbeatSeconds: 2 } : null,
    conntrackBufferBytes: opts.conntrackBufferBytes,
    runtimeDir,
    spoolSegmentBytes: opts.spoolSegmentBytes,
    pollMs: opts.pollMs ?? 250,
  };
  const configPath = join(lab.dir, `${name}-config.json`);
  await writeFile(configPath, JSON.stringify(config));
  const proc = lab.spawn(lab.rec, [process.execPath, OBSERVER_JS, configPath]);
  let out = '';
  proc.stdout?.on('data', (c: Buffer) => { out = (out + c.toString('utf8')).slice(-200_000); });
  proc.stderr?.on('data', (c: Buffer) => { out = (out + c.toString('utf8')).slice(-200_000); });
  await waitForOutput(proc, (s) => s.includes('"ready":true'), 20_000, 'egress observer');
  const get = (path: string) => httpGet(socket, path);
  return {
    proc,
    socket,
    pki,
    deviceChainPem: chain,
    stateDir,
    runtimeDir,
    logs: () => out,
    get,
    async egress() {
      const r = await get('/v1/egress');
      if (r.status !== 200) throw new Error(`GET /v1/egress: ${r.status} ${r.body.toString()}`);
      return JSON.parse(r.body.toString('utf8'));
    },
    async stop() {
      if (proc.exitCode === null && proc.signalCode === null) {
        await new Promise<void>((r) => {
          const t = setTimeout(() => proc.kill('SIGKILL'), 10_000);
          proc.once('close', () => { clearTimeout(t); r(); });
          proc.kill('SIGTERM');
        });
      }
      await rm(runtimeDir, { recursive: true, force: true });
    },
  };
}

/** The rogue: N short TCP connections (a few ms each) and M UDP datagrams, each from its own port. Prints JSON. */
export const ROGUE_JS = `
const net = require('net'), dgram = require('dgram');
const [host, tport, uport, nTcp, nUdp, conc] = process.argv.slice(2);
const out = { firstFlowAt: 0, tcpOk: 0, tcpErr: 0, udpSent: 0, udpErr: 0, errors: {} };
let started = 0;
function tcpOne() {
  if (started >= +nTcp) return Promise.resolve();
  started++;
  return new Promise((res) => {
    if (!out.firstFlowAt) out.firstFlowAt = Date.now();
    const s = net.connect(+tport, host);
    s.on('connect', () => { out.tcpOk++; s.end(); });
    s.on('error', (e) => { out.tcpErr++; out.errors[e.code] = (out.errors[e.code] || 0) + 1; res(); });
    s.on('close', () => res());
  }).then(tcpOne);
}
async function udp() {
  for (let i = 0; i < +nUdp; i++) {
    await new Promise((res) => {
      const u = dgram.createSocket('udp4');
      u.on('error', (e) => { out.udpErr++; out.errors[e.code] = (out.errors[e.code] || 0) + 1; try { u.close(); } catch {} res(); });
      u.bind(20000 + i, () => u.send('x', +uport, host, (e) => { if (e) { out.udpErr++; out.errors[e.code] = (out.errors[e.code] || 0) + 1; } else out.udpSent++; u.close(); res(); }));
    });
  }
}
(async () => {
  await Promise.all(Array.from({ length: +(conc || 20) }, tcpOne));
  await udp();
  process.stdout.write(JSON.stringify(out) + '\\n');
})();
`;

export async function writeRogue(lab: Lab): Promise<string> {
  const p = join(lab.dir, 'rogue.cjs');
  await writeFile(p, ROGUE_JS, { mode: 0o644 });
  return p;
}

export interface RogueResult {
  firstFlowAt: number;
  tcpOk: number;
  tcpErr: number;
  udpSent: number;
  udpErr: number;
  errors: Record<string, number>;
}

/** Runs the rogue in a namespace as uid/gid 65534 (nobody). */
export async function runRogue(lab: Lab, ns: string, args: { host: string; tcpPort: number; udpPort: number; tcp: number; udp: number; concurrency?: number; asRoot?: boolean }): Promise<RogueResult> {
  const script = await writeRogue(lab);
  const argv = [process.execPath, script, args.host, String(args.tcpPort), String(args.udpPort), String(args.tcp), String(args.udp), String(args.concurrency ?? 20)];
  const r = await lab.run(ns, args.asRoot ? argv : ['setpriv', '--reuid=65534', '--regid=65534', '--clear-groups', ...argv], { timeoutMs: 120_000 });
  if (r.code !== 0) throw new Error(`rogue failed (${r.code}): ${r.stderr}`);
  return JSON.parse(r.stdout.trim().split('\n').pop() as string) as RogueResult;
}
