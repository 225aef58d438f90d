/**
 * The egress observer as the container image runs it: a process with no
 * capabilities of its own (uid 65534, primary group the tools' group, no
 * others, via setpriv), whose tools carry file capabilities exactly as the
 * Dockerfile's setcap lines (read from it) give them — nft and conntrack
 * cap_net_admin+ep, chrt cap_sys_nice+ep — mode 0750 for that group. The
 * capable copies come first on PATH; the observer (dist/egress/observer.js)
 * runs in a network namespace made here, whose default route leads over a
 * veth pair into a second one holding the documentation addresses. It must
 * install its table, keep its `nft -j -i` session and `conntrack -E` (under
 * SCHED_FIFO) running, and count a UDP datagram to a documentation address
 * the policy does not declare.
 * Needs root, ip, nft, conntrack, chrt, setpriv, setcap, and `npm run build`.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { chmod, chown, copyFile, mkdir, mkdtemp, readFile, readlink, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { requireSystem } from '../helpers/system.js';
import { waitFor, waitForOutput } from '../helpers/netns.js';
import { canonicalBytes } from '../../src/manifest/canonical.js';
import { validManifest } from '../manifest/fixtures.js';
import type { EgressSnapshot } from '../../src/egress/types.js';
import { OBSERVER_JS, builtObserverMissing, httpGet, labPki } from './lab-observer.js';
import { readDockerfile, runCommands } from '../repo/dockerfile-parse.js';
import { mustRun as sh, run } from '../helpers/run.js';

const missing = requireSystem(['ip', 'nft', 'conntrack', 'chrt', 'setpriv', 'setcap'], { root: true }) ?? builtObserverMissing();
const NS = `gb-fcap-${process.pid}`;
/** The far end of the recorder's only link: the undeclared address lives there. */
const PEER = `gb-fcap-peer-${process.pid}`;
const UID = 65534;
/** The tools' group (stands for the image's glassbox group). */
const GID = 65534;
const UNDECLARED = '203.0.113.77';
const UNDECLARED_PORT = 9999;
/** The Dockerfile's `setcap CAPS /path/TOOL` lines, as tool → caps (the copies get exactly these). */
const TOOLS: Record<string, string> = Object.fromEntries(
  runCommands(readDockerfile())
    .filter((c) => c[0] === 'setcap' && c.length === 3)
    .map((c) => [basename(c[2]!), c[1]!]),
);
const CAP_NET_ADMIN = 1n << 12n;
const CAP_SYS_NICE = 1n << 23n;
const SCHED_FIFO = 1;


async function descendants(pid: number): Promise<number[]> {
  const out: number[] = [];
  const children = await readFile(`/proc/${pid}/task/${pid}/children`, 'utf8').catch(() => '');
  for (const c of children.trim().split(/\s+/).filter((s) => s !== '').map(Number)) out.push(c, ...(await descendants(c)));
  return out;
}

interface ProcInfo {
  readonly pid: number;
  readonly argv: string[];
  /** The executable (found on PATH: the capable copies come first). */
  readonly exe: string | null;
  readonly uid: number;
  readonly capEff: bigint;
  readonly policy: number;
  readonly rtPriority: number;
}

async function procInfo(pid: number): Promise<ProcInfo> {
  const argv = (await readFile(`/proc/${pid}/cmdline`, 'utf8')).split('\0').filter((a) => a !== '');
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
  // Fields after "(comm)": state is field 3; rt_priority is 40, policy 41.
  const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return {
    pid,
    argv,
    exe: await readlink(`/proc/${pid}/exe`).catch(() => null),
    uid: Number(/^Uid:\s+(\d+)/m.exec(status)?.[1]),
    capEff: BigInt(`0x${/^CapEff:\s+([0-9a-f]+)/m.exec(status)?.[1] ?? '0'}`),
    rtPriority: Number(rest[40 - 3]),
    policy: Number(rest[41 - 3]),
  };
}

describe.skipIf(missing)('the egress observer with no capabilities of its own, its tools holding file capabilities', () => {
  let dir: string;
  let socket: string;
  let proc: ChildProcess;
  let out = '';

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'gb-fcap-'));
    await chmod(dir, 0o755);
    const bin = join(dir, 'bin');
    const home = join(dir, 'home');
    await mkdir(bin, { mode: 0o755 });
    await mkdir(home, { mode: 0o750 });
    await chown(home, UID, GID);
    expect(TOOLS).toEqual({ nft: 'cap_net_admin+ep', conntrack: 'cap_net_admin+ep', chrt: 'cap_sys_nice+ep' });
    for (const [tool, caps] of Object.entries(TOOLS)) {
      const from = (await sh(['sh', '-c', `command -v ${tool}`])).trim();
      const to = join(bin, tool);
      await copyFile(from, to);
      // As the Dockerfile: group and mode first (a chgrp clears file capabilities), then setcap.
      await chown(to, 0, GID);
      await chmod(to, 0o750);
      await sh(['setcap', caps, to]);
    }
    const { key, chain } = await labPki();
    const keyPath = join(home, 'device.key');
    const chainPath = join(home, 'device-chain.pem');
    await writeFile(keyPath, key, { mode: 0o600 });
    await writeFile(chainPath, chain);
    const m = validManifest();
    m.egress = [{ id: 'docs', purpose: 'a documentation network', proto: 'tcp', port: 443, cidr: '192.0.2.0/24' }];
    const manifestPath = join(home, 'manifest.json');
    await writeFile(manifestPath, canonicalBytes(m));
    for (const f of [keyPath, chainPath, manifestPath]) await chown(f, UID, GID);
    socket = join(home, 'api.sock');
    const configPath = join(home, 'config.json');
    await writeFile(
      configPath,
      JSON.stringify({ stateDir: join(home, 'state'), runtimeDir: join(home, 'run'), mode: 'observe', manifestPath, deviceKey: keyPath, deviceChain: chainPath, hardware: 'nvr-8p', api: { tcp: null, socket }, pollMs: 250 }),
    );

    await sh(['ip', 'netns', 'add', NS]);
    await sh(['ip', 'netns', 'add', PEER]);
    await sh(['ip', '-n', NS, 'link', 'set', 'lo', 'up']);
    await sh(['ip', '-n', NS, 'link', 'add', 'v0', 'type', 'veth', 'peer', 'name', 'v1', 'netns', PEER]);
    await sh(['ip', '-n', NS, 'addr', 'add', '192.0.2.1/24', 'dev', 'v0']);
    await sh(['ip', '-n', PEER, 'addr', 'add', '192.0.2.2/24', 'dev', 'v1']);
    await sh(['ip', '-n', PEER, 'addr', 'add', `${UNDECLARED}/32`, 'dev', 'v1']);
    await sh(['ip', '-n', NS, 'link', 'set', 'v0', 'up']);
    await sh(['ip', '-n', PEER, 'link', 'set', 'v1', 'up']);
    await sh(['ip', '-n', NS, 'route', 'add', 'default', 'via', '192.0.2.2']);

    proc = spawn('ip', ['netns', 'exec', NS, 'setpriv', `--reuid=${UID}`, `--regid=${GID}`, '--clear-groups', '--', process.execPath, OBSERVER_JS, configPath], {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { PATH: `${bin}:/usr/sbin:/usr/bin:/sbin:/bin`, HOME: home },
    });
    proc.stdout!.on('data', (c: Buffer) => (out = (out + c.toString()).slice(-200_000)));
    proc.stderr!.on('data', (c: Buffer) => (out = (out + c.toString()).slice(-200_000)));
    await waitForOutput(proc, (s) => s.includes('"ready":true'), 20_000, 'egress observer as uid 65534');
  });

  afterAll(async () => {
    if (proc && proc.exitCode === null && proc.signalCode === null) {
      const closed = new Promise((r) => proc.once('close', r));
      proc.kill('SIGTERM');
      const t = setTimeout(() => proc.kill('SIGKILL'), 10_000);
      await closed;
      clearTimeout(t);
    }
    await run(['ip', 'netns', 'del', NS]);
    await run(['ip', 'netns', 'del', PEER]);
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('the observer runs without capabilities; nft and conntrack hold CAP_NET_ADMIN, conntrack runs under SCHED_FIFO', async () => {
    // The setpriv of `ip netns exec … setpriv …` execs node: the spawned pid is the observer.
    const observer = await procInfo(proc.pid!);
    expect(observer.argv).toContain(OBSERVER_JS);
    expect(observer.uid).toBe(UID);
    expect(observer.capEff).toBe(0n);
    let tree: ProcInfo[] = [];
    await waitFor(async () => {
      tree = await Promise.all((await descendants(proc.pid!)).map((p) => procInfo(p).catch(() => null))).then((l) => l.filter((x): x is ProcInfo => x !== null));
      return tree.some((p) => p.argv.includes('-E')) && tree.some((p) => p.argv.includes('-i'));
    }, 10_000, 'the nft session and conntrack -E');
    const session = tree.find((p) => p.exe === join(dir, 'bin', 'nft') && p.argv.includes('-i'));
    const events = tree.find((p) => p.exe === join(dir, 'bin', 'conntrack') && p.argv.includes('-E'));
    expect(session, JSON.stringify(tree.map((p) => [p.exe, ...p.argv]))).toBeDefined();
    expect(events, JSON.stringify(tree.map((p) => [p.exe, ...p.argv]))).toBeDefined();
    for (const p of [session!, events!]) {
      expect(p.uid).toBe(UID);
      expect(p.capEff & CAP_NET_ADMIN).toBe(CAP_NET_ADMIN);
      expect(p.capEff & CAP_SYS_NICE).toBe(0n);
    }
    expect({ policy: events!.policy, rtPriority: events!.rtPriority }).toEqual({ policy: SCHED_FIFO, rtPriority: 10 });
    expect(out).not.toMatch(/cannot run conntrack under SCHED_FIFO/);
  });

  it('its table is installed, and a datagram to an undeclared address is counted and reported', async () => {
    const tables = await sh(['ip', 'netns', 'exec', NS, 'nft', 'list', 'tables']);
    expect(tables).toMatch(/^table inet \S+/m);
    const send = `const s = require('dgram').createSocket('udp4'); s.send('x', ${UNDECLARED_PORT}, '${UNDECLARED}', (e) => { s.close(); process.exit(e ? 1 : 0); });`;
    await sh(['ip', 'netns', 'exec', NS, process.execPath, '-e', send]);
    let snap: EgressSnapshot | null = null;
    await waitFor(async () => {
      const r = await httpGet(socket, '/v1/egress');
      snap = JSON.parse(r.body.toString()) as EgressSnapshot;
      return snap.flows.some((f) => f.dst === UNDECLARED);
    }, 10_000, 'the undeclared flow in GET /v1/egress');
    const s = snap as unknown as EgressSnapshot;
    expect(s.undeclared).toBeGreaterThanOrEqual(1);
    expect(s.verdict).toBe('undeclared-egress');
    expect(s.observation.rulesetIntact).toBe(true);
    expect(s.observation.gaps).toEqual([]);
    expect(s.observation.eventsLost).toBe(0);
  });
});
