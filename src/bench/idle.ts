/**
 * bench:idle — what the idle daemon costs, measured the way it runs in the field.
 *
 *   npm run bench:idle            (BENCH_SECONDS=120 by default)
 *   BENCH_EGRESS=on|off npm run bench:idle
 *   BENCH_DAEMON_LOG=FILE BENCH_NODE_FLAGS="--trace-gc" npm run bench:idle   (diagnosis)
 *
 * BENCH_EGRESS unset leaves egress.enabled at "auto", as in the field: on
 * when a release is installed (it is), so the egress observer, its
 * nftables table and the local API run when the bench runs as root. "on"
 * and "off" set egress.enabled true / false; the egress runtime files and
 * API socket always go into the temp dir (api.listen on a free loopback port),
 * and the table is removed at stop (keepTableOnStop false). The table has
 * the default name, in this host's namespace: run no other daemon meanwhile.
 *
 * Setup (all in a temp dir, nothing outside it): a device state with a
 * signed sample release installed and committed and a device identity
 * (the same steps as `glassbox daemon --dev`), and an aedes broker on
 * loopback that speaks TLS and requires a client certificate from the
 * device CA. The daemon is started the way device/systemd/glassbox.service
 * starts it: that file's ExecStart arguments (`daemon --config FILE`, only
 * the config path replaced) and its `Environment=NODE_OPTIONS=` line, read
 * from the unit at run time; mqtts:// with the device certificate, default
 * intervals (health every 30 s, keepalive 30 s). It runs as a child of this
 * process, next to the floor: an empty Node process with one 1 s timer.
 *
 * Name resolution: the sample release declares `broker.example.com`; on a
 * recorder the site's resolver is declared in the manifest and answers.
 * Here a dnsmasq on loopback (a free port, `egress.dnsServers`) answers
 * that name with a documentation address and a 300 s TTL, so the daemon
 * refreshes it as in the field (at 80 % of the TTL) and its queries stay
 * on loopback, which is not egress. Without dnsmasq (Debian's
 * dnsmasq-base) the bench stops and says so: this machine's own resolver
 * is not declared by the sample release, so every query would be an
 * undeclared flow and an alert, which is not the idle daemon.
 *
 * Warm-up: 30 s. A daemon settles after start: V8 optimizes and its memory
 * reducer runs a few full collections in the first ~10 s, and the first
 * health sample loads its parsers (measured: ~0.7 s of CPU in the first
 * 10 s, then bursts of 3–9 ticks up to ~20 s). The CPU of the warm-up is
 * printed on its own line, not hidden.
 *
 * For BENCH_SECONDS after the warm-up, every second: VmRSS of both
 * (max reported); CPU = utime+stime from /proc/<pid>/stat over the window.
 * Also reported: the daemon's VmHWM (peak RSS since exec, start-up
 * included) and the messages the broker received from it (a run where the
 * daemon delivered no health sample is not a valid measurement: exit 1).
 * Then the cost of one health sample, in this process, against one read of
 * /proc/loadavg. Targets: RSS ≤ 80 MiB, CPU ≤ 0.5 % of one core.
 */
import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import { closeSync, openSync } from 'node:fs';
import { Resolver } from 'node:dns/promises';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { pino } from 'pino';
import { prepareDev } from '../daemon/dev.js';
import { startEmbeddedBroker, type EmbeddedBroker } from '../daemon/embedded-broker.js';
import { unitLaunch } from '../daemon/runtime.js';
import { HealthCollector } from '../health/collector.js';
import { createLoopbackServer } from '../pki/certs.js';
import { privateKeyPem } from '../pki/keys.js';

const SECONDS = Number(process.env['BENCH_SECONDS'] ?? 120);
const WARMUP_MS = 30_000;
const MAIN = join(dirname(fileURLToPath(import.meta.url)), '..', 'cli', 'main.js');
const UNIT = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'device', 'systemd', 'glassbox.service');

const MiB = 1048576;

function clockTicks(): number {
  try {
    return Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
  } catch {
    return 100;
  }
}

/** /proc/<pid>/stat fields after the command name: [0] state, [1] ppid, … [11] utime, [12] stime, [13] cutime, [14] cstime. */
async function statFields(pid: number): Promise<string[] | null> {
  try {
    const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  } catch {
    return null; // gone between listing and reading
  }
}

async function cpuTicks(pid: number): Promise<number> {
  const f = await statFields(pid);
  if (f === null) throw new Error(`process ${pid} is gone`);
  return Number(f[11]) + Number(f[12]);
}

/**
 * CPU of a process and everything it started: its own utime+stime, the
 * cutime+cstime of children it has reaped (nft runs, helpers), and the
 * utime+stime (plus reaped cutime+cstime) of every live descendant (the
 * conntrack reader, a long-lived nft). A child that is live at the first
 * reading and reaped before the second is counted whole at the second:
 * the figure errs high, never low.
 */
async function treeCpuTicks(root: number): Promise<{ ticks: number; processes: number }> {
  const parent = new Map<number, number>();
  const stats = new Map<number, string[]>();
  for (const name of await readdir('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    const f = await statFields(Number(name));
    if (f === null) continue;
    parent.set(Number(name), Number(f[1]));
    stats.set(Number(name), f);
  }
  const inTree = (pid: number): boolean => {
    for (let p = pid, hops = 0; p > 1 && hops < 64; p = parent.get(p) ?? 0, hops++) if (p === root) return true;
    return false;
  };
  let ticks = 0;
  let processes = 0;
  for (const [pid, f] of stats) {
    if (!inTree(pid)) continue;
    processes++;
    ticks += Number(f[11]) + Number(f[12]) + Number(f[13]) + Number(f[14]);
  }
  if (processes === 0) throw new Error(`process ${root} is gone`);
  return { ticks, processes };
}

async function statusKb(pid: number, field: 'VmRSS' | 'VmHWM'): Promise<number> {
  const m = new RegExp(`${field}:\\s+(\\d+) kB`).exec(await readFile(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) * 1024 : 0;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const mib = (b: number) => (b / MiB).toFixed(1);

/** Names the sample release declares, and the addresses the bench's resolver gives them. */
const BENCH_HOSTS: Readonly<Record<string, string>> = { 'broker.example.com': '192.0.2.10' };
const BENCH_DNS_TTL = 300;

/** dnsmasq on 127.0.0.1:port answering BENCH_HOSTS only (no upstream, no cache of negatives). */
async function startResolver(dir: string): Promise<{ server: string; child: ChildProcess }> {
  const hosts = join(dir, 'hosts');
  await writeFile(hosts, Object.entries(BENCH_HOSTS).map(([name, ip]) => `${ip} ${name}\n`).join(''));
  const port = await freePort();
  const child = spawn('dnsmasq', [
    '--keep-in-foreground', '--conf-file=/dev/null', '--no-resolv', '--no-hosts', `--addn-hosts=${hosts}`,
    // Authoritative for the names: AAAA gets "no data" (not REFUSED, which the daemon rightly retries).
    ...Object.keys(BENCH_HOSTS).map((name) => `--local=/${name}/`),
    `--local-ttl=${BENCH_DNS_TTL}`, '--listen-address=127.0.0.1', '--bind-interfaces', `--port=${port}`, '--pid-file=', '--no-negcache',
    ...(process.getuid?.() === 0 ? ['--user=root'] : []),
  ], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr?.on('data', (c: Buffer) => { if (stderr.length < 4096) stderr += c.toString(); });
  const failed = await new Promise<string | null>((resolve) => {
    child.once('error', (e) => resolve(`cannot run dnsmasq (Debian package dnsmasq-base): ${e.message}`));
    child.once('exit', (code) => resolve(`dnsmasq exited with ${code}: ${stderr.trim()}`));
    setTimeout(() => resolve(null), 300);
  });
  if (failed !== null) throw new Error(failed);
  const r = new Resolver({ timeout: 1000, tries: 3 });
  r.setServers([`127.0.0.1:${port}`]);
  for (const [name, ip] of Object.entries(BENCH_HOSTS)) {
    const got = await r.resolve4(name);
    if (!got.includes(ip)) throw new Error(`the bench resolver answered ${name} with ${got.join(', ')}, not ${ip}`);
    const aaaa = await r.resolve6(name).then(() => 'an address', (e: { code?: string }) => e.code ?? 'an error');
    if (aaaa !== 'ENODATA') throw new Error(`the bench resolver answered AAAA ${name} with ${aaaa}, not "no data"`);
  }
  return { server: `127.0.0.1:${port}`, child };
}

/** A device as in the field: sample release installed and committed, identity, broker with mutual TLS. */
async function prepareDevice(dir: string, egress: boolean | 'auto', dnsServer: string | null): Promise<{ config: string; broker: EmbeddedBroker }> {
  const quiet = { out: () => undefined, err: () => undefined };
  const devDir = join(dir, 'dev');
  const stateDir = join(dir, 'state');
  // GLASSBOX_BROKER set: prepareDev starts no broker of its own.
  await prepareDev({ io: quiet, flags: { stateDir }, env: { GLASSBOX_DEV_DIR: devDir, GLASSBOX_BROKER: 'mqtts://127.0.0.1:1' } });
  const deviceDir = join(devDir, 'device');
  // The broker trusts the dev root; device.pem carries the device CA after the leaf.

  const { ca: serverCa, server } = await createLoopbackServer('CN=bench broker CA');
  const brokerCaFile = join(dir, 'broker-ca.pem');
  await writeFile(brokerCaFile, serverCa.pem);
  const broker = await startEmbeddedBroker(0, '127.0.0.1', { cert: server.pem, key: privateKeyPem(server.key), ca: await readFile(join(devDir, 'pki', 'root-ca.pem')) });

  const config = join(dir, 'config.json');
  const body = {
    stateDir,
    mqtt: { url: broker.url, ca: brokerCaFile, cert: join(deviceDir, 'device.pem'), key: join(deviceDir, 'device.key') },
    api: { listen: `127.0.0.1:${await freePort()}` },
    // keepTableOnStop false: the bench leaves no nftables table behind in this host's namespace.
    egress: {
      enabled: egress,
      runtimeDir: join(dir, 'run'),
      socket: join(dir, 'run', 'api.sock'),
      keepTableOnStop: false,
      ...(dnsServer === null ? {} : { dnsServers: [dnsServer] }),
    },
  };
  await writeFile(config, JSON.stringify(body, null, 2));
  return { config, broker };
}

async function freePort(): Promise<number> {
  const srv = createServer();
  await new Promise<void>((resolve, reject) => srv.once('error', reject).listen(0, '127.0.0.1', resolve));
  const addr = srv.address();
  await new Promise<void>((resolve) => srv.close(() => resolve()));
  if (addr === null || typeof addr === 'string') throw new Error('no loopback port');
  return addr.port;
}

function egressSetting(): boolean | 'auto' {
  const v = process.env['BENCH_EGRESS'];
  if (v === undefined || v === '' || v === 'auto') return 'auto';
  if (v === 'on') return true;
  if (v === 'off') return false;
  throw new Error(`BENCH_EGRESS must be on, off or auto, not ${JSON.stringify(v)}`);
}

async function main(): Promise<void> {
  const hz = clockTicks();
  const egress = egressSetting();
  const dir = await mkdtemp(join(tmpdir(), 'gb-bench-idle-'));
  const children: ChildProcess[] = [];
  let broker: EmbeddedBroker | null = null;
  try {
    // egress "off" needs no resolver: nothing resolves the declared names then.
    const resolver = egress === false ? null : await startResolver(dir);
    if (resolver !== null) children.push(resolver.child);
    const prepared = await prepareDevice(dir, egress, resolver?.server ?? null);
    broker = prepared.broker;
    const received = new Map<string, number>();
    const eventTypes = new Map<string, number>();
    broker.aedes.on('publish', (packet, client) => {
      if (client === null) return;
      const kind = packet.topic.split('/')[3] ?? packet.topic;
      received.set(kind, (received.get(kind) ?? 0) + 1);
      if (kind === 'events') {
        let type = 'unparsable';
        try {
          type = String((JSON.parse(packet.payload.toString()) as { type?: unknown }).type);
        } catch {
          // counted as unparsable
        }
        eventTypes.set(type, (eventTypes.get(type) ?? 0) + 1);
      }
    });

    const env: Record<string, string> = {};
    for (const [k, v] of Object.entries(process.env)) if (v !== undefined && !k.startsWith('GLASSBOX_') && k !== 'NODE_OPTIONS') env[k] = v;
    const unit = await unitLaunch(UNIT);
    const configAt = unit.args.indexOf('--config') + 1;
    if (unit.args[0] !== 'daemon' || configAt === 0) throw new Error(`${UNIT}: ExecStart is not "glassbox daemon --config FILE …"`);
    const daemonArgs = unit.args.map((a, i) => (i === configAt ? prepared.config : a));
    // BENCH_DAEMON_LOG=FILE keeps the daemon's JSON log lines (stdout) for a look afterwards.
    const logPath = process.env['BENCH_DAEMON_LOG'];
    const logFd = logPath ? openSync(logPath, 'w') : 'ignore';
    // BENCH_NODE_FLAGS="--trace-gc" (or --cpu-prof …) adds node flags to the daemon, for a look at where its time goes.
    const nodeFlags = (process.env['BENCH_NODE_FLAGS'] ?? '').split(/\s+/).filter((f) => f !== '');
    const daemon = spawn(process.execPath, [...nodeFlags, MAIN, ...daemonArgs], { stdio: ['ignore', logFd, 'inherit'], env: { ...env, ...unit.env } });
    if (typeof logFd === 'number') closeSync(logFd);
    const floor = spawn(process.execPath, ['-e', 'setInterval(() => {}, 1000)'], { stdio: 'ignore', env });
    children.push(daemon, floor);
    await sleep(WARMUP_MS);
    if (daemon.exitCode !== null) throw new Error(`daemon exited with ${daemon.exitCode}`);
    const pids = { daemon: daemon.pid!, floor: floor.pid! };
    const atWarmup = await statusKb(pids.daemon, 'VmRSS');
    const seenAtWarmup = [...received.values()].reduce((a, b) => a + b, 0);
    const startupTicks = await cpuTicks(pids.daemon);
    const tree0 = await treeCpuTicks(pids.daemon);
    const t0 = { daemon: startupTicks, tree: tree0.ticks, floor: await cpuTicks(pids.floor), at: performance.now() };
    let maxRss = 0;
    let floorRss = 0;
    for (let s = 0; s < SECONDS; s++) {
      await sleep(1000);
      maxRss = Math.max(maxRss, await statusKb(pids.daemon, 'VmRSS'));
      floorRss = Math.max(floorRss, await statusKb(pids.floor, 'VmRSS'));
    }
    const secs = (performance.now() - t0.at) / 1000;
    const cpu = (pid: number, start: number) => cpuTicks(pid).then((t) => ((t - start) / hz / secs) * 100);
    const daemonCpu = await cpu(pids.daemon, t0.daemon);
    const floorCpu = await cpu(pids.floor, t0.floor);
    const tree1 = await treeCpuTicks(pids.daemon);
    const treeCpu = ((tree1.ticks - t0.tree) / hz / secs) * 100;
    const hwm = await statusKb(pids.daemon, 'VmHWM');
    const lastRss = await statusKb(pids.daemon, 'VmRSS');
    const health = received.get('health') ?? 0;

    const collector = new HealthCollector({
      deviceId: 'bench',
      recordingPaths: ['/'],
      interfaces: null,
      smart: false,
      smartIntervalSeconds: 3600,
      daemon: () => ({ rssBytes: 0, heapUsedBytes: 0, uptimeSeconds: 0, eventLoop: { utilization: 0, delayP50Ms: null, delayP99Ms: null, delayMaxMs: null }, queue: { depth: 0, bytes: 0, maxBytes: 0, droppedEvents: 0, droppedHealth: 0 } }),
      log: pino({ level: 'silent' }),
      now: () => new Date(),
    });
    for (let i = 0; i < 50; i++) await collector.sample();
    const N = 500;
    let t = performance.now();
    for (let i = 0; i < N; i++) await collector.sample();
    const sampleMs = (performance.now() - t) / N;
    for (let i = 0; i < 50; i++) await readFile('/proc/loadavg');
    t = performance.now();
    for (let i = 0; i < N; i++) await readFile('/proc/loadavg');
    const readMs = (performance.now() - t) / N;

    const ok = (v: boolean) => (v ? 'meets target' : 'OVER TARGET');
    const unitEnv = Object.entries(unit.env).map(([k, v]) => `${k}=${v}`).join(' ');
    console.log(`idle daemon over ${secs.toFixed(0)} s after a ${WARMUP_MS / 1000} s warm-up, started as the unit does: ${unitEnv} glassbox ${daemonArgs.join(' ')}`);
    console.log(`  (mqtts with the device certificate to a loopback broker, sample release installed, default intervals, egress.enabled ${String(egress)}, uid ${process.getuid?.() ?? '?'}; node ${process.version})`);
    if (resolver !== null) console.log(`  (declared names answered by dnsmasq on ${resolver.server}, TTL ${BENCH_DNS_TTL} s)`);
    console.log(`  RSS  ${mib(maxRss)} MiB max, sampled every 1 s   (target ≤ 80 MiB: ${ok(maxRss <= 80 * MiB)}; empty Node process ${mib(floorRss)} MiB, ratio ${(maxRss / floorRss).toFixed(2)})`);
    console.log(`       at warm-up end ${mib(atWarmup)} MiB, at the end ${mib(lastRss)} MiB, peak since exec (VmHWM, start-up included) ${mib(hwm)} MiB`);
    console.log(`  CPU  ${treeCpu.toFixed(3)} % of one core, the daemon and every process it started   (target ≤ 0.5 %: ${ok(treeCpu <= 0.5)}; empty Node 1 s timer ${floorCpu.toFixed(3)} %, ratio ${(treeCpu / Math.max(floorCpu, 1e-6)).toFixed(2)})`);
    console.log(`       the daemon process alone ${daemonCpu.toFixed(3)} %; its tree had ${tree0.processes} processes at the start, ${tree1.processes} at the end`);
    console.log(`       start-up and warm-up (exec to ${WARMUP_MS / 1000} s, not in the figure above): ${((startupTicks / hz) * 1000).toFixed(0)} ms of CPU in the daemon process`);
    console.log(`       (CPU measured with ${hz} ticks/s resolution: ±${((1 / hz / secs) * 100).toFixed(3)} %)`);
    console.log(`  broker received: ${[...received].map(([k, v]) => `${k} ${v}`).join(', ')}; ${seenAtWarmup} of these messages during the warm-up`);
    console.log(`  events by type: ${[...eventTypes].map(([k, v]) => `${k} ${v}`).join(', ')}`);
    console.log(`one health sample: ${sampleMs.toFixed(3)} ms   (one read of /proc/loadavg ${readMs.toFixed(3)} ms, ratio ${(sampleMs / readMs).toFixed(1)})`);
    if (health === 0) {
      console.log('INVALID RUN: the daemon delivered no health sample to the broker');
      process.exitCode = 1;
    }
  } finally {
    for (const c of children) c.kill('SIGTERM');
    await sleep(1000);
    await broker?.close();
    await rm(dir, { recursive: true, force: true });
  }
}

await main();
