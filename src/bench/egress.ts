/**
 * bench:egress — short flows at the highest rate a two-namespace lab
 * sustains, with and without the egress observer:
 *
 *   1. baseline: N short TCP connections from the recorder namespace to a sink
 *      in the WAN namespace, no glassbox table (the lab's physical limit);
 *   2. the same N with the observer running (table + conntrack reader + ledger);
 *   3. prints flows counted (target: all), recorded, eventsLost, the
 *      observer's CPU (node + its conntrack child), and the rate ratio.
 *
 * Needs root, ip, nft, conntrack; documentation addresses only (192.0.2.0/24,
 * 203.0.113.66). Usage: npm run bench:egress [-- FLOWS [CONCURRENCY [SEGMENT_BYTES]]]
 * (BENCH_EGRESS_REALTIME=0: conntrack with the normal scheduler instead of SCHED_FIFO)
 */
import { spawn, spawnSync } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile, chmod } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { generateKey, privateKeyPem } from '../pki/keys.js';
import { createDeviceCert, createIntermediateCa, createRootCa } from '../pki/certs.js';

const FLOWS = Number(process.argv[2] ?? 20_000);
const CONCURRENCY = Number(process.argv[3] ?? 64);
/** Spool segment size (rotation); default the observer's (16 MiB). A small one shows rotations under load. */
const SEGMENT_BYTES = process.argv[4] === undefined ? undefined : Number(process.argv[4]);
const tag = `${process.pid % 1_000_000}`;
const REC = `gbxb-${tag}-rec`;
const WAN = `gbxb-${tag}-wan`;
const HZ = 100;
const runtimeDirs: string[] = [];

function sh(argv: string[]): string {
  const r = spawnSync(argv[0] as string, argv.slice(1), { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`${argv.join(' ')}: ${r.stderr}`);
  return r.stdout;
}

/** utime + stime of a process, plus (withChildren) the CPU of its children that have exited and been reaped. */
function cpuSeconds(pid: number, withChildren = false): number {
  try {
    const stat = spawnSync('cat', [`/proc/${pid}/stat`], { encoding: 'utf8' }).stdout;
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const own = Number(f[11]) + Number(f[12]);
    return (withChildren ? own + Number(f[13]) + Number(f[14]) : own) / HZ;
  } catch {
    return 0;
  }
}

function childPids(pid: number): number[] {
  return spawnSync('pgrep', ['-P', String(pid)], { encoding: 'utf8' }).stdout.split('\n').filter(Boolean).map(Number);
}

const GEN = `
const net = require('net');
const [n, conc, port] = process.argv.slice(2).map(Number);
let started = 0, ok = 0, err = 0;
const t0 = process.hrtime.bigint();
function one() {
  if (started >= n) return Promise.resolve();
  started++;
  return new Promise((res) => {
    const s = net.connect(port, '203.0.113.66');
    s.on('connect', () => { ok++; s.end(); });
    s.on('error', () => { err++; res(); });
    s.on('close', () => res());
  }).then(one);
}
Promise.all(Array.from({ length: conc }, one)).then(() => {
  const s = Number(process.hrtime.bigint() - t0) / 1e9;
  process.stdout.write(JSON.stringify({ ok, err, seconds: s }) + '\\n');
});
`;

/** Each run uses its own server port, so no 4-tuple of an earlier run (in TIME_WAIT) is reused. */
async function generate(dir: string, port: number): Promise<{ ok: number; err: number; seconds: number }> {
  const js = join(dir, 'gen.cjs');
  await writeFile(js, GEN);
  const out = sh(['ip', 'netns', 'exec', REC, process.execPath, js, String(FLOWS), String(CONCURRENCY), String(port)]);
  return JSON.parse(out.trim()) as { ok: number; err: number; seconds: number };
}

function get(socketPath: string, path: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const req = request({ socketPath, path, agent: false, timeout: 30_000 }, (res) => {
      let b = '';
      res.on('data', (c) => (b += c));
      res.on('end', () => resolve(b));
    });
    req.on('error', reject);
    req.end();
  });
}

async function main(): Promise<void> {
  if (process.getuid?.() !== 0) throw new Error('bench:egress needs root (network namespaces, nftables)');
  const dir = await mkdtemp(join(tmpdir(), 'glassbox-bench-egress-'));
  await chmod(dir, 0o755);
  const cleanup = () => {
    spawnSync('ip', ['netns', 'del', REC]);
    spawnSync('ip', ['netns', 'del', WAN]);
  };
  process.on('exit', cleanup);
  try {
    sh(['ip', 'netns', 'add', REC]);
    sh(['ip', 'netns', 'add', WAN]);
    for (const ns of [REC, WAN]) {
      sh(['ip', '-n', ns, 'link', 'set', 'lo', 'up']);
      sh(['ip', 'netns', 'exec', ns, 'sysctl', '-qw', 'net.ipv6.conf.all.disable_ipv6=1', 'net.ipv6.conf.default.disable_ipv6=1']);
    }
    sh(['ip', 'link', 'add', `gb${tag}r`, 'netns', REC, 'type', 'veth', 'peer', 'name', `gb${tag}w`, 'netns', WAN]);
    sh(['ip', '-n', REC, 'addr', 'add', '192.0.2.1/24', 'dev', `gb${tag}r`]);
    sh(['ip', '-n', WAN, 'addr', 'add', '192.0.2.2/24', 'dev', `gb${tag}w`]);
    sh(['ip', '-n', WAN, 'addr', 'add', '203.0.113.66/32', 'dev', `gb${tag}w`]);
    sh(['ip', '-n', REC, 'link', 'set', `gb${tag}r`, 'up']);
    sh(['ip', '-n', WAN, 'link', 'set', `gb${tag}w`, 'up']);
    sh(['ip', '-n', REC, 'route', 'add', 'default', 'via', '192.0.2.2']);
    const sinkJs = join(dir, 'sink.cjs');
    await writeFile(sinkJs, `const net = require('net'); let up = 0; for (const port of [7000, 7001]) net.createServer((s) => { s.on('error', () => {}); s.end(); }).listen({ port, host: '203.0.113.66', backlog: 4096 }, () => { if (++up === 2) console.log('up'); });`);
    const sink = spawn('ip', ['netns', 'exec', WAN, process.execPath, sinkJs], { stdio: ['ignore', 'pipe', 'inherit'] });
    await new Promise<void>((r) => sink.stdout.once('data', () => r()));

    const baseline = await generate(dir, 7000);
    // The baseline's flows stay in conntrack (TIME_WAIT); start the measured run from an empty table.
    spawnSync('ip', ['netns', 'exec', REC, 'conntrack', '-F']);

    // Device identity for the observer (generated now, never stored beyond the run).
    const now = new Date();
    const root = await createRootCa({ key: await generateKey('ecdsa-p256'), subject: 'CN=bench root', now });
    const ca = await createIntermediateCa(root, { key: await generateKey('ecdsa-p256'), subject: 'CN=bench device CA', now });
    const devKey = await generateKey('ecdsa-p256');
    const dev = await createDeviceCert(ca, { deviceId: 'nvr-bench-0001', publicKey: devKey.publicKey, now });
    await writeFile(join(dir, 'device.key'), privateKeyPem(devKey), { mode: 0o600 });
    await writeFile(join(dir, 'device.pem'), dev.pem + ca.pem);
    const socket = join(dir, 'api.sock');
    // The detail reader's spool on tmpfs, as on a recorder (/run/glassbox/egress).
    const runtimeDir = existsSync('/dev/shm') ? await mkdtemp('/dev/shm/glassbox-bench-egress-') : join(dir, 'run');
    runtimeDirs.push(runtimeDir);
    const config = { stateDir: join(dir, 'state'), runtimeDir, mode: 'observe', manifestPath: null, deviceKey: join(dir, 'device.key'), deviceChain: join(dir, 'device.pem'), api: { tcp: null, socket }, pollMs: 500, spoolSegmentBytes: SEGMENT_BYTES, conntrackRealtimePriority: process.env['BENCH_EGRESS_REALTIME'] === '0' ? null : 10 };
    await writeFile(join(dir, 'config.json'), JSON.stringify(config));
    const observerJs = join(dirname(fileURLToPath(import.meta.url)), '..', 'egress', 'observer.js');
    const obs = spawn('ip', ['netns', 'exec', REC, process.execPath, observerJs, join(dir, 'config.json')], { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    await new Promise<void>((resolve, reject) => {
      obs.stdout.on('data', (c: Buffer) => {
        out += c.toString();
        if (out.includes('"ready":true')) resolve();
      });
      obs.once('close', () => reject(new Error(`observer exited: ${out}`)));
    });
    // `ip netns exec` execs into node: obs.pid is the observer; its children are conntrack and nft monitor.
    const nodePid = obs.pid as number;
    // The observer's CPU: node, its live children (conntrack, nft monitor), and its reaped children
    // (conntrack writers replaced by a rotation, nft runs of the poll).
    const observerCpu = () => cpuSeconds(nodePid, true) + childPids(nodePid).reduce((a, p) => a + cpuSeconds(p), 0);
    const cpu0 = observerCpu();
    const before = JSON.parse(await get(socket, '/v1/egress')) as { observation: { flowsCounted: number; flowsRecorded: number } };
    const run = await generate(dir, 7001);
    const snap = JSON.parse(await get(socket, '/v1/egress')) as { observation: { flowsCounted: number; flowsRecorded: number; eventsLost: number; readerOverruns: number }; observer: { rotations?: number; duplicatesDropped?: number } };
    const cpu1 = observerCpu();
    obs.kill('SIGTERM');
    sink.kill('SIGKILL');

    const counted = snap.observation.flowsCounted - before.observation.flowsCounted;
    const recorded = snap.observation.flowsRecorded - before.observation.flowsRecorded;
    const rate = run.ok / run.seconds;
    const baseRate = baseline.ok / baseline.seconds;
    const cpu = cpu1 - cpu0;
    console.log(`bench:egress  ${FLOWS} short TCP flows, concurrency ${CONCURRENCY}, recorder ns → WAN ns`);
    console.log(`  baseline (no observer): ${baseline.ok} flows in ${baseline.seconds.toFixed(2)} s = ${baseRate.toFixed(0)} flows/s  (the lab's limit)`);
    console.log(`  with observer:          ${run.ok} flows in ${run.seconds.toFixed(2)} s = ${rate.toFixed(0)} flows/s  (${((rate / baseRate) * 100).toFixed(0)} % of the limit)`);
    console.log(`  flows counted ${counted} / ${run.ok} (${((counted / run.ok) * 100).toFixed(1)} %), recorded ${recorded}, eventsLost ${snap.observation.eventsLost}, reader overruns ${snap.observation.readerOverruns}`);
    console.log(`  spool: ${SEGMENT_BYTES === undefined ? 'default' : SEGMENT_BYTES} segment bytes, ${snap.observer.rotations ?? 0} rotations, ${snap.observer.duplicatesDropped ?? 0} overlap events read once`);
    console.log(`  observer CPU (node + conntrack): ${cpu.toFixed(2)} s during the ${run.seconds.toFixed(2)} s run = ${((cpu / run.seconds) * 100).toFixed(0)} % of one core; ${((cpu / Math.max(1, recorded)) * 1e6).toFixed(0)} µs per recorded flow`);
    await new Promise((r) => setTimeout(r, 500));
  } finally {
    cleanup();
    await rm(dir, { recursive: true, force: true });
    for (const d of runtimeDirs) await rm(d, { recursive: true, force: true });
  }
}

main().catch((e) => {
  console.error(`bench:egress: ${e instanceof Error ? e.message : String(e)}`);
  process.exitCode = 2;
});
