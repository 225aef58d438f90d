/**
 * bench:idle — what the idle daemon costs.
 *
 *   npm run bench:idle            (BENCH_SECONDS=120 by default)
 *
 * Starts an aedes broker in this process, then two children measured side
 * by side for the same window: the daemon with default intervals (health
 * every 30 s, keepalive 30 s) and, as the floor, an empty Node process
 * with one 1 s timer. CPU is utime+stime from /proc/<pid>/stat, RSS is
 * VmRSS. Then the cost of one health sample, in this process, against one
 * read of /proc/loadavg. Targets: RSS ≤ 80 MiB, CPU ≤ 0.5 % of one core.
 */
import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { pino } from 'pino';
import { startEmbeddedBroker } from '../daemon/embedded-broker.js';
import { HealthCollector } from '../health/collector.js';

const SECONDS = Number(process.env['BENCH_SECONDS'] ?? 120);
const WARMUP_MS = 10_000;
const MAIN = join(dirname(fileURLToPath(import.meta.url)), '..', 'cli', 'main.js');

function clockTicks(): number {
  try {
    return Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
  } catch {
    return 100;
  }
}

async function cpuTicks(pid: number): Promise<number> {
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return Number(f[11]) + Number(f[12]);
}

async function rssBytes(pid: number): Promise<number> {
  const m = /VmRSS:\s+(\d+) kB/.exec(await readFile(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) * 1024 : 0;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const mib = (b: number) => (b / 1048576).toFixed(1);

async function main(): Promise<void> {
  const hz = clockTicks();
  const broker = await startEmbeddedBroker(0);
  const dir = await mkdtemp(join(tmpdir(), 'gb-bench-idle-'));
  const children: ChildProcess[] = [];
  try {
    const daemon = spawn(process.execPath, [MAIN, 'daemon', '--state-dir', dir, '--device-id', 'bench-idle', '--broker', broker.url], {
      stdio: ['ignore', 'ignore', 'inherit'],
      env: { ...process.env, GLASSBOX_CONFIG: '', GLASSBOX_STATE_DIR: '' },
    });
    const floor = spawn(process.execPath, ['-e', 'setInterval(() => {}, 1000)'], { stdio: 'ignore' });
    children.push(daemon, floor);
    await sleep(WARMUP_MS);
    if (daemon.exitCode !== null) throw new Error(`daemon exited with ${daemon.exitCode}`);
    const pids = { daemon: daemon.pid!, floor: floor.pid! };
    const t0 = { daemon: await cpuTicks(pids.daemon), floor: await cpuTicks(pids.floor), at: performance.now() };
    let maxRss = 0;
    let floorRss = 0;
    for (let s = 0; s < SECONDS; s += 5) {
      await sleep(5000);
      maxRss = Math.max(maxRss, await rssBytes(pids.daemon));
      floorRss = Math.max(floorRss, await rssBytes(pids.floor));
    }
    const secs = (performance.now() - t0.at) / 1000;
    const cpu = (pid: number, start: number) => cpuTicks(pid).then((t) => ((t - start) / hz / secs) * 100);
    const daemonCpu = await cpu(pids.daemon, t0.daemon);
    const floorCpu = await cpu(pids.floor, t0.floor);

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
    console.log(`idle daemon over ${secs.toFixed(0)} s (default intervals, broker on loopback):`);
    console.log(`  RSS  ${mib(maxRss)} MiB max   (target ≤ 80 MiB: ${ok(maxRss <= 80 * 1048576)}; empty Node process ${mib(floorRss)} MiB, ratio ${(maxRss / floorRss).toFixed(2)})`);
    console.log(`  CPU  ${daemonCpu.toFixed(3)} % of one core   (target ≤ 0.5 %: ${ok(daemonCpu <= 0.5)}; empty Node 1 s timer ${floorCpu.toFixed(3)} %, ratio ${(daemonCpu / Math.max(floorCpu, 1e-6)).toFixed(2)})`);
    console.log(`one health sample: ${sampleMs.toFixed(3)} ms   (one read of /proc/loadavg ${readMs.toFixed(3)} ms, ratio ${(sampleMs / readMs).toFixed(1)})`);
    console.log(`  (CPU measured with ${hz} ticks/s resolution: ±${((1 / hz / secs) * 100).toFixed(3)} %)`);
  } finally {
    for (const c of children) c.kill('SIGTERM');
    await sleep(500);
    await broker.close();
    await rm(dir, { recursive: true, force: true });
  }
}

await main();
