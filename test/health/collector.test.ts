/**
 * HealthCollector against a made-up /proc, /sys and /run tree (the `root`
 * option): what each file becomes in the sample, what is missing is named
 * in `errors`, and every read is bounded.
 */
import { mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { readSmall, type HealthCollector } from '../../src/health/collector.js';
import { testCollector } from '../helpers/health.js';
import { SelfMonitor } from '../../src/health/self.js';
import { Grid } from '../../src/sched/grid.js';

const at = new Date('2026-11-29T12:00:00Z');
let root: string;

async function put(rel: string, text: string): Promise<void> {
  const p = join(root, rel);
  await mkdir(dirname(p), { recursive: true });
  await writeFile(p, text);
}

function collector(recordingPaths: string[]): HealthCollector {
  return testCollector({ recordingPaths, at, root });
}

beforeEach(async () => {
  root = await mkdtemp(join(tmpdir(), 'gb-health-'));
});
afterEach(async () => {
  await rm(root, { recursive: true, force: true });
});

describe('HealthCollector', () => {
  it('turns each /proc, /sys and /run file into its field', async () => {
    await put('proc/loadavg', '0.52 0.41 0.30 2/312 9999\n');
    await put('proc/meminfo', 'MemTotal:       2048000 kB\nMemFree:         100000 kB\nMemAvailable:   1024000 kB\nSwapTotal:            0 kB\nSwapFree:             0 kB\n');
    await put('proc/uptime', '12345.67 20000.00\n');
    await put('proc/sys/kernel/random/boot_id', '4d1c6c1e-2a49-4f0e-9d49-1c2a3b4c5d6e\n');
    await put('proc/self/mountinfo', '');
    await put('proc/diskstats', '');
    await put('sys/class/thermal/thermal_zone0/type', 'x86_pkg_temp\n');
    await put('sys/class/thermal/thermal_zone0/temp', '47500\n');
    await put('sys/class/thermal/thermal_zone1/type', 'broken\n');
    await put('sys/class/thermal/thermal_zone1/temp', '999999999\n'); // absurd: left out
    await put('sys/class/hwmon/hwmon0/name', 'drivetemp\n');
    await put('sys/class/hwmon/hwmon0/temp1_input', '38000\n');
    await put('sys/class/net/eth0/operstate', 'up\n');
    await put('sys/class/net/eth0/speed', '1000\n');
    for (const [f, v] of [['rx_bytes', 1000], ['tx_bytes', 2000], ['rx_errors', 1], ['tx_errors', 2], ['rx_dropped', 3], ['tx_dropped', 4]] as const) {
      await put(`sys/class/net/eth0/statistics/${f}`, `${v}\n`);
    }
    await put('sys/class/net/lo/operstate', 'unknown\n');
    await put('run/systemd/timesync/synchronized', '');

    const s = await collector([root]).sample();
    expect(s.cpu).toMatchObject({ load1: 0.52, load5: 0.41, load15: 0.3 });
    expect(s.memory).toMatchObject({ totalBytes: 2048000 * 1024, availableBytes: 1024000 * 1024, usedPercent: 50 });
    expect(s.uptimeSeconds).toBe(12346);
    expect(s.bootId).toBe('4d1c6c1e-2a49-4f0e-9d49-1c2a3b4c5d6e');
    expect(s.temperatures).toEqual([
      { sensor: 'thermal_zone0:x86_pkg_temp', celsius: 47.5 },
      { sensor: 'hwmon0:drivetemp:temp1', celsius: 38 },
    ]);
    expect(s.network).toEqual([{ name: 'eth0', operstate: 'up', speedMbps: 1000, rxBytes: 1000, txBytes: 2000, rxErrors: 1, txErrors: 2, rxDropped: 3, txDropped: 4 }]);
    expect(s.clock).toEqual({ sync: 'synchronized', source: 'systemd-timesyncd' });
    expect(s.disks).toHaveLength(1);
    expect(s.disks[0]!.totalBytes).toBeGreaterThan(0);
    expect(s.errors).toEqual([]);
  });

  it('names what it could not read, and still samples the rest', async () => {
    await put('proc/uptime', '5.2 1.0\n');
    await put('proc/loadavg', 'garbage\n');
    const s = await collector([join(root, 'no-such-disk')]).sample();
    expect(s.uptimeSeconds).toBe(5);
    expect(s.cpu).toBeNull();
    expect(s.memory).toBeNull();
    expect(s.network).toEqual([]);
    expect(s.temperatures).toEqual([]);
    expect(s.disks[0]).toMatchObject({ path: join(root, 'no-such-disk'), totalBytes: 0, error: `${join(root, 'no-such-disk')}: ENOENT` });
    expect(s.errors).toEqual([
      `disk ${join(root, 'no-such-disk')}: ENOENT`,
      'network: /sys/class/net unreadable',
      'cpu: /proc/loadavg unreadable',
      'memory: /proc/meminfo unreadable',
    ]);
  });

  it('maps a recording path to its block device through mountinfo and /sys/dev/block', async () => {
    const disk = join(root, 'recordings');
    await mkdir(disk);
    await put('proc/self/mountinfo', `29 1 8:17 / ${disk} rw,relatime shared:1 - ext4 /dev/sdb1 rw\n`);
    await put('proc/diskstats', '   8      17 sdb1 100 0 800 10 200 0 1600 20 0 30 30 0 0 0 0\n');
    await put('sys/devices/pci0/sdb/sdb1/partition', '1\n');
    await mkdir(join(root, 'sys/dev/block'), { recursive: true });
    await symlink(join(root, 'sys/devices/pci0/sdb/sdb1'), join(root, 'sys/dev/block/8:17'));
    const s = await collector([disk]).sample();
    expect(s.disks[0]).toMatchObject({ path: disk, device: 'sdb1', io: { readsCompleted: 100, sectorsRead: 800, writesCompleted: 200, sectorsWritten: 1600, ioMillis: 30 } });
  });

  it('reads at most 256 KiB of a file that reports no size, and null for one that cannot be opened', async () => {
    await put('proc/big', 'x'.repeat(1024 * 1024));
    expect(readSmall(join(root, 'proc/big'))).toHaveLength(256 * 1024);
    await put('proc/small', 'a'.repeat(40_000));
    expect(readSmall(join(root, 'proc/small'))).toBe('a'.repeat(40_000));
    expect(readSmall(join(root, 'proc/missing'))).toBeNull();
    expect(readSmall(root)).toBeNull(); // a directory: EISDIR on read
    expect(readSmall('/proc/self/status')).toMatch(/^Name:/);
  });
});

describe('SelfMonitor', () => {
  it('on the wake-up grid (resolution ≥ 1 s): reports how late grid timers ran after a stall', async () => {
    const g = new Grid(undefined, [50]);
    const m = new SelfMonitor(1000, g);
    m.start();
    try {
      // Another grid timer of the daemon comes due during a 200 ms stall.
      const fired = new Promise((r) => g.timeout(60, () => r(undefined)));
      const until = Date.now() + 200;
      while (Date.now() < until) {
        /* the stall */
      }
      await fired;
      const s = m.sample();
      expect(s.eventLoop.delayMaxMs).toBeGreaterThanOrEqual(100);
      expect(g.pendingWakeups).toBe(1); // the probe, waiting for its next point
      // Reset after each sample: no grid timer has run since.
      expect(m.sample().eventLoop.delayMaxMs).toBeNull();
    } finally {
      m.stop();
    }
    expect(g.pendingWakeups).toBe(0);
  });

  it('under 1 s (its own timer): reports a stall of the event loop as delay beyond the resolution', async () => {
    const m = new SelfMonitor(20);
    m.start();
    try {
      await new Promise((r) => setTimeout(r, 60));
      const until = Date.now() + 150;
      while (Date.now() < until) {
        /* a 150 ms stall */
      }
      await new Promise((r) => setTimeout(r, 60));
      const s = m.sample();
      expect(s.eventLoop.delayMaxMs).toBeGreaterThanOrEqual(100);
      expect(s.eventLoop.utilization).toBeGreaterThan(0);
      expect(s.rssBytes).toBeGreaterThan(0);
      // The histogram starts over after each sample.
      await new Promise((r) => setTimeout(r, 60));
      expect(m.sample().eventLoop.delayMaxMs).toBeLessThan(100);
    } finally {
      m.stop();
    }
  });
});
