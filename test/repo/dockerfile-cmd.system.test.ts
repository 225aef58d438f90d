/**
 * The image's command, run here: no Docker engine runs on this machine, so
 * the Dockerfile's ENTRYPOINT + CMD, its ENV lines and its USER are read
 * from the file and run as the container would run them — Debian's tini,
 * the image's numeric uid/gid with no supplementary groups and no
 * capabilities (setpriv from root), the environment of ENV and nothing
 * else, the WORKDIR — with /opt/glassbox/ mapped to this checkout and the
 * config path replaced by a temp config (as bench:idle does with the
 * systemd unit's ExecStart). Against a real Mosquitto with mutual TLS:
 * the daemon connects with its device certificate, publishes its retained
 * `online` status, and on SIGTERM to tini publishes `offline` and exits 0
 * within the daemon's 5 s (docker stop waits 10 s before SIGKILL).
 *
 * Also: `glassbox provision init` with its default `--owner glassbox:glassbox`
 * works as that user once the account exists as the Dockerfile's
 * groupadd/useradd make it (run here with --prefix into a temp /etc,
 * bind-mounted over /etc/passwd and /etc/group in a private mount
 * namespace), and fails with OWNER_UNKNOWN where it does not.
 *
 * Needs root, tini, setpriv, mosquitto, unshare, mount, groupadd, useradd,
 * and `npm run build`.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { chmod, chown, copyFile, mkdir, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import type { MqttClient } from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { requireSystem } from '../helpers/system.js';
import { collect, connectClient, endClient, requireBuilt, MAIN, type Collected } from '../helpers/daemon-process.js';
import { freePort, makeBrokerPki, startMosquitto, type BrokerPki, type Mosquitto } from '../helpers/mosquitto.js';
import { REPO_ROOT, imageLaunch, readDockerfile, runCommands } from './dockerfile-parse.js';
import { run, type RunResult } from '../helpers/run.js';

const missing = requireSystem(['tini', 'setpriv', 'mosquitto', 'unshare', 'mount', 'groupadd', 'useradd'], { root: true });
const IMAGE_ROOT = '/opt/glassbox/';
const IMAGE_CONFIG = '/etc/glassbox/config.json';
const DEVICE = 'nvr-image-0001';
const STATUS = `glassbox/v1/${DEVICE}/status`;
/** The daemon's own promise on SIGTERM (src/cli/daemon.ts, docs/daemon.md); docker stop waits 10 s. */
const STOP_BUDGET_MS = 5_000;
/** A PATH like the node image's, with this machine's node first (the image's is /usr/local/bin/node). */
const IMAGE_PATH = [dirname(process.execPath), '/usr/local/sbin', '/usr/local/bin', '/usr/sbin', '/usr/bin', '/sbin', '/bin'].join(':');

const launch = imageLaunch(readDockerfile());

function numericUser(user: string): { uid: number; gid: number } {
  const m = /^([0-9]+):([0-9]+)$/.exec(user);
  if (!m) throw new Error(`Dockerfile USER ${JSON.stringify(user)} is not numeric uid:gid`);
  return { uid: Number(m[1]), gid: Number(m[2]) };
}

/** The image's argv with its paths mapped onto this checkout and the temp config. */
function mappedArgv(config: string): string[] {
  return launch.argv.map((a) => (a === IMAGE_CONFIG ? config : a.startsWith(IMAGE_ROOT) ? join(REPO_ROOT, a.slice(IMAGE_ROOT.length)) : a));
}

function procStatus(pid: number): Promise<Record<string, string>> {
  return readFile(`/proc/${pid}/status`, 'utf8').then((t) => Object.fromEntries(t.split('\n').map((l) => l.split(/:\s*/, 2) as [string, string]).filter((kv) => kv.length === 2)));
}


describe.skipIf(missing)("the image's command (ENTRYPOINT + CMD as its USER, with its ENV)", () => {
  const { uid, gid } = numericUser(launch.user);
  let dir: string;
  let stateDir: string;
  let config: string;
  let pki: BrokerPki;
  let broker: Mosquitto;
  let ops: MqttClient;
  let seen: Collected;
  let proc: ChildProcess;
  let out = '';
  let err = '';
  let exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  const diag = () => `stderr: ${err.slice(-2000)}\nstdout: ${out.slice(-3000)}`;

  beforeAll(async () => {
    requireBuilt();
    if (!existsSync(launch.argv[0]!)) throw new Error(`the image's init ${launch.argv[0]} is missing here (Debian package tini)`);
    dir = await mkdtemp(join(tmpdir(), 'gb-image-cmd-'));
    await chmod(dir, 0o755);
    stateDir = join(dir, 'state');
    const runDir = join(dir, 'run');
    for (const d of [stateDir, runDir]) {
      await mkdir(d, { mode: 0o750 });
      await chown(d, uid, gid);
    }
    pki = await makeBrokerPki(join(dir, 'pki'));
    broker = await startMosquitto({ dir, pki });
    const device = await pki.issueClient(DEVICE);
    // The image's user reads its identity: the key is 0600, so it must own it (as provisioning leaves it).
    await chown(device.key, uid, gid);
    const opsId = await pki.issueClient('ops');
    config = join(dir, 'config.json');
    await writeFile(
      config,
      JSON.stringify({
        stateDir,
        mqtt: { url: broker.url, ca: pki.serverCaFile, cert: device.cert, key: device.key, reconnectMinSeconds: 0.2, reconnectMaxSeconds: 1 },
        health: { intervalSeconds: 3600 },
        api: { listen: `127.0.0.1:${await freePort()}` },
        egress: { socket: join(runDir, 'api.sock'), runtimeDir: join(runDir, 'egress') },
        log: { level: 'info' },
      }),
      { mode: 0o644 },
    );
    ops = await connectClient(broker.url, { ca: await readFile(pki.serverCaFile), cert: await readFile(opsId.cert), key: await readFile(opsId.key), protocolVersion: 5, clientId: 'ops-image-cmd' });
    seen = collect(ops);
    // Retain As Published: the retain flag arrives as the daemon set it.
    await ops.subscribeAsync(STATUS, { qos: 1, rap: true });

    const env = { PATH: IMAGE_PATH, HOME: '/var/lib/glassbox', ...launch.env };
    const cwd = launch.workdir.startsWith('/opt/glassbox') ? join(REPO_ROOT, launch.workdir.slice(IMAGE_ROOT.length - 1)) : launch.workdir;
    proc = spawn('setpriv', [`--reuid=${uid}`, `--regid=${gid}`, '--clear-groups', '--', ...mappedArgv(config)], { cwd, env, stdio: ['ignore', 'pipe', 'pipe'] });
    proc.stdout!.on('data', (c: Buffer) => (out = (out + c.toString()).slice(-256 * 1024)));
    proc.stderr!.on('data', (c: Buffer) => (err = (err + c.toString()).slice(-64 * 1024)));
    exited = new Promise((resolve) => proc.once('exit', (code, signal) => resolve({ code, signal })));
  });

  afterAll(async () => {
    if (proc && proc.exitCode === null && proc.signalCode === null) {
      proc.kill('SIGKILL');
      await exited;
    }
    if (ops) await endClient(ops);
    await broker?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('runs exactly ENTRYPOINT + CMD: tini, then node on the shipped main.js with the config', () => {
    expect(mappedArgv(config)).toEqual(['/usr/bin/tini', '--', 'node', join(REPO_ROOT, 'dist/cli/main.js'), 'daemon', '--config', config]);
    // The same file the other daemon tests run (npm run build made it).
    expect(join(REPO_ROOT, 'dist/cli/main.js')).toBe(MAIN);
  });

  it('the daemon connects with its device certificate and publishes its retained online status', async () => {
    const online = await seen.waitFor((m) => m.topic === STATUS && m.json?.state === 'online', 20_000).catch((e: Error) => {
      throw new Error(`${e.message}\n${diag()}`);
    });
    expect(online.retain).toBe(true);
    expect(online.json).toMatchObject({ deviceId: DEVICE, state: 'online', reason: 'connected' });
  });

  it("tini's child, the daemon, runs as the image's uid/gid with no groups and no capabilities, with the image's ENV", async () => {
    expect((await readFile(`/proc/${proc.pid}/comm`, 'utf8')).trim()).toBe('tini');
    const children = (await readFile(`/proc/${proc.pid}/task/${proc.pid}/children`, 'utf8')).trim().split(/\s+/).map(Number);
    expect(children).toHaveLength(1);
    const daemon = children[0]!;
    const cmdline = (await readFile(`/proc/${daemon}/cmdline`, 'utf8')).split('\0').filter((a) => a !== '');
    expect(cmdline.slice(-4)).toEqual([join(REPO_ROOT, 'dist/cli/main.js'), 'daemon', '--config', config]);
    const s = await procStatus(daemon);
    expect(s['Uid']!.split(/\s+/)).toEqual(Array(4).fill(String(uid)));
    expect(s['Gid']!.split(/\s+/)).toEqual(Array(4).fill(String(gid)));
    expect(s['Groups']).toBe('');
    for (const set of ['CapInh', 'CapPrm', 'CapEff', 'CapAmb']) expect(BigInt(`0x${s[set]!}`), set).toBe(0n);
    const environ = (await readFile(`/proc/${daemon}/environ`, 'utf8')).split('\0');
    for (const [k, v] of Object.entries(launch.env)) expect(environ).toContain(`${k}=${v}`);
    // It wrote its state as that user.
    expect((await stat(join(stateDir, 'daemon-status.json'))).uid).toBe(uid);
  });

  it('SIGTERM to tini: the daemon publishes a retained offline (shutdown) and exits 0 within its stop budget', async () => {
    const mark = seen.messages.length;
    const t0 = performance.now();
    proc.kill('SIGTERM');
    const { code, signal } = await exited;
    const ms = performance.now() - t0;
    expect({ code, signal }, diag()).toEqual({ code: 0, signal: null });
    expect(ms).toBeLessThan(STOP_BUDGET_MS);
    const off = await seen.waitFor((m) => m.topic === STATUS && m.json?.state === 'offline', 5_000, mark);
    expect(off.retain).toBe(true);
    expect(off.json).toMatchObject({ state: 'offline', reason: 'shutdown' });
    const logs = out.split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as { level: number; msg: string });
    expect(logs.filter((l) => l.level >= 50).map((l) => l.msg)).toEqual([]);
  });
});

describe.skipIf(missing)("glassbox provision's default owner in the image", () => {
  const { uid, gid } = numericUser(launch.user);
  let dir: string;
  let etc: string;

  beforeAll(async () => {
    requireBuilt();
    dir = await mkdtemp(join(tmpdir(), 'gb-image-owner-'));
    await chmod(dir, 0o755);
    etc = join(dir, 'etc');
    await mkdir(etc);
    for (const f of ['passwd', 'group', 'shadow', 'gshadow', 'login.defs']) if (existsSync(`/etc/${f}`)) await copyFile(`/etc/${f}`, join(etc, f));
    // The Dockerfile's own account commands, into the temp /etc.
    const account = runCommands(readDockerfile()).filter((c) => c[0] === 'groupadd' || c[0] === 'useradd');
    expect(account.map((c) => c[0])).toEqual(['groupadd', 'useradd']);
    for (const c of account) {
      const r = await run([c[0]!, '--prefix', dir, ...c.slice(1)]);
      expect(r.code, `${c.join(' ')}: ${r.stderr}`).toBe(0);
    }
  });

  afterAll(async () => {
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  async function provisionInit(stateDir: string, withImageAccounts: boolean): Promise<RunResult> {
    await mkdir(stateDir, { mode: 0o750 });
    await chown(stateDir, uid, gid);
    const cmd = ['setpriv', `--reuid=${uid}`, `--regid=${gid}`, '--clear-groups', '--', process.execPath, MAIN, 'provision', 'init', '--device-id', DEVICE, '--hardware', 'nvr-8p', '--state-dir', stateDir, '--json'];
    const env = { PATH: IMAGE_PATH, ...launch.env };
    if (!withImageAccounts) return run(cmd, { env });
    // A private mount namespace: the bind mounts are gone when the command ends.
    const script = 'mount --bind "$1" /etc/passwd && mount --bind "$2" /etc/group && shift 2 && exec "$@"';
    return run(['unshare', '--mount', '--propagation', 'private', '--', 'sh', '-c', script, 'sh', join(etc, 'passwd'), join(etc, 'group'), ...cmd], { env });
  }

  it('the Dockerfile makes the account glassbox:glassbox with the USER ids', async () => {
    expect(await readFile(join(etc, 'passwd'), 'utf8')).toMatch(new RegExp(`^glassbox:x:${uid}:${gid}:`, 'm'));
    expect(await readFile(join(etc, 'group'), 'utf8')).toMatch(new RegExp(`^glassbox:x:${gid}:`, 'm'));
  });

  it('provision init as that user with the default --owner creates an identity it owns', async () => {
    const stateDir = join(dir, 'state-image');
    const r = await provisionInit(stateDir, true);
    expect(r.code, r.stderr + r.stdout).toBe(0);
    const result = JSON.parse(r.stdout) as { owner: { uid: number; gid: number }; keyPath: string };
    expect(result.owner).toEqual({ uid, gid });
    const key = await stat(result.keyPath);
    expect({ uid: key.uid, gid: key.gid, mode: key.mode & 0o777 }).toEqual({ uid, gid, mode: 0o600 });
    // The bind mounts stayed in their namespace.
    expect(await readFile('/etc/passwd', 'utf8')).not.toMatch(new RegExp(`^glassbox:x:${uid}:`, 'm'));
  });

  it('without the account the default owner is refused (OWNER_UNKNOWN, exit 2) and nothing is created', async () => {
    if ((await readFile('/etc/passwd', 'utf8')).match(/^glassbox:/m)) throw new Error('this machine has a glassbox account: the contrast cannot be shown');
    const stateDir = join(dir, 'state-host');
    const r = await provisionInit(stateDir, false);
    expect(r.code).toBe(2);
    expect(r.stdout + r.stderr).toMatch(/OWNER_UNKNOWN/);
    expect(existsSync(join(stateDir, 'identity'))).toBe(false);
  });
});
