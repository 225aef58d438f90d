/**
 * Health collection at the edge: reads /proc and /sys directly (no process
 * per sample). The only processes ever spawned are `smartctl -H` (when
 * installed and enabled, at most once per disk per smartIntervalSeconds)
 * and `chronyc tracking` (only when systemd-timesyncd is absent and chronyc
 * is installed, at most every 10 minutes); both run in the background and
 * a sample uses their last answer. systeminformation is not used.
 *
 * /proc, /sys and /run are kernel or tmpfs files, answered from memory, so
 * they are read synchronously: a sample is one turn of the event loop
 * instead of some hundred thread-pool round trips, each of which wakes a
 * pool thread and then the loop (docs/daemon.md, "Idle cost"). Only
 * statfs(2) of the recording paths, which may be network or failing
 * disks, stays asynchronous.
 */
import { execFile } from 'node:child_process';
import { accessSync, closeSync, openSync, readdirSync, readSync, realpathSync } from 'node:fs';
import { statfs } from 'node:fs/promises';
import { availableParallelism } from 'node:os';
import { basename, dirname, join } from 'node:path';
import type { Logger } from '../log/logger.js';
import type { DaemonHealth, DiskHealth, HealthPayload, NetHealth } from '../telemetry/payloads.js';
import { SCHEMA_IDS } from '../telemetry/payloads.js';
import {
  mountPointOf,
  parseChronyTracking,
  parseDiskstats,
  parseLoadavg,
  parseMeminfo,
  parseMilliCelsius,
  parseMountinfo,
  parseSmartHealth,
  parseUptime,
  round2,
} from './parse.js';

export interface HealthCollectorOptions {
  readonly deviceId: string;
  readonly recordingPaths: readonly string[];
  readonly interfaces: readonly string[] | null;
  readonly smart: boolean;
  readonly smartIntervalSeconds: number;
  readonly daemon: () => DaemonHealth;
  readonly log: Logger;
  readonly now: () => Date;
  /** Root of /proc, /sys and /run (tests point it elsewhere); default '/'. */
  readonly root?: string;
}

const SMALL_FILE_MAX = 256 * 1024;
const MAX_SENSORS = 32;
const MAX_INTERFACES = 32;
const CHRONY_EVERY_MS = 600_000;
const DEVICE_MAP_EVERY_MS = 600_000;

/** Reused for every read: most of these files are under 4 KiB. */
const readBuf = Buffer.allocUnsafe(16 * 1024);

/**
 * At most SMALL_FILE_MAX bytes of a /proc, /sys or /run file as text, or
 * null when it cannot be read. Reads until EOF: such files report size 0.
 */
export function readSmall(path: string): string | null {
  let fd: number;
  try {
    fd = openSync(path, 'r');
  } catch {
    return null;
  }
  try {
    const chunks: Buffer[] = [];
    let total = 0;
    while (total < SMALL_FILE_MAX) {
      const n = readSync(fd, readBuf, 0, Math.min(readBuf.length, SMALL_FILE_MAX - total), null);
      if (n === 0) break;
      chunks.push(Buffer.from(readBuf.subarray(0, n)));
      total += n;
    }
    return chunks.length === 1 ? chunks[0]!.toString('utf8') : Buffer.concat(chunks, total).toString('utf8');
  } catch {
    return null;
  } finally {
    closeSync(fd);
  }
}

function exists(path: string): boolean {
  try {
    accessSync(path);
    return true;
  } catch {
    return false;
  }
}

function list(path: string): string[] | null {
  try {
    return readdirSync(path);
  } catch {
    return null;
  }
}

function run(cmd: string, args: string[], timeoutMs: number): Promise<string> {
  return new Promise((resolve) => {
    execFile(cmd, args, { timeout: timeoutMs, maxBuffer: 1024 * 1024, encoding: 'utf8' }, (_err, stdout) => resolve(typeof stdout === 'string' ? stdout : ''));
  });
}

function findTool(name: string): string | null {
  for (const dir of ['/usr/sbin', '/usr/bin', '/sbin', '/bin', '/usr/local/sbin', '/usr/local/bin']) {
    if (exists(join(dir, name))) return join(dir, name);
  }
  return null;
}

export class HealthCollector {
  private readonly opts: HealthCollectorOptions;
  private readonly root: string;
  private bootId: string | null | undefined;
  private smartctl: string | null | undefined;
  private chronyc: string | null | undefined;
  private readonly smartCache = new Map<string, { health: 'passed' | 'failed' | 'unknown'; checkedAt: string; atMs: number }>();
  private readonly smartRunning = new Set<string>();
  private clockCache: { sync: 'synchronized' | 'unsynchronized' | 'unknown'; source: string; atMs: number } | null = null;
  private deviceMap: { atMs: number; map: Map<string, { partition: string; disk: string } | null> } | null = null;

  constructor(opts: HealthCollectorOptions) {
    this.opts = opts;
    this.root = opts.root ?? '/';
  }

  private p(...parts: string[]): string {
    return join(this.root, ...parts);
  }

  /** Takes one sample. Never throws: what cannot be read is null/empty and named in `errors`. */
  async sample(): Promise<HealthPayload> {
    const errors: string[] = [];
    const at = this.opts.now();
    const loadavg = readSmall(this.p('proc/loadavg'));
    const meminfo = readSmall(this.p('proc/meminfo'));
    const uptime = readSmall(this.p('proc/uptime'));
    const temperatures = this.temperatures();
    const disks = await this.disks(errors);
    const network = this.network(errors);
    const clock = await this.clock();
    const bootId = await this.readBootId();
    const load = loadavg === null ? null : parseLoadavg(loadavg);
    if (load === null) errors.push('cpu: /proc/loadavg unreadable');
    const memory = meminfo === null ? null : parseMeminfo(meminfo);
    if (memory === null) errors.push('memory: /proc/meminfo unreadable');
    return {
      schema: SCHEMA_IDS.health,
      deviceId: this.opts.deviceId,
      at: at.toISOString(),
      bootId,
      uptimeSeconds: uptime === null ? null : parseUptime(uptime),
      cpu: load === null ? null : { ...load, cores: availableParallelism() },
      memory,
      temperatures,
      disks,
      network,
      clock: { sync: clock.sync, source: clock.source },
      daemon: this.opts.daemon(),
      errors,
    };
  }

  async readBootId(): Promise<string | null> {
    if (this.bootId === undefined) this.bootId = readSmall(this.p('proc/sys/kernel/random/boot_id'))?.trim() ?? null;
    return this.bootId;
  }

  private temperatures(): Array<{ sensor: string; celsius: number }> {
    const out: Array<{ sensor: string; celsius: number }> = [];
    const zones = (list(this.p('sys/class/thermal')) ?? []).filter((n) => n.startsWith('thermal_zone')).sort();
    for (const z of zones.slice(0, MAX_SENSORS)) {
      const type = readSmall(this.p('sys/class/thermal', z, 'type'));
      const temp = readSmall(this.p('sys/class/thermal', z, 'temp'));
      const c = temp === null ? null : parseMilliCelsius(temp);
      if (c !== null) out.push({ sensor: `${z}:${type?.trim() ?? 'unknown'}`, celsius: c });
    }
    // hwmon covers disks (NVMe, drivetemp) and boards without thermal zones.
    const hw = (list(this.p('sys/class/hwmon')) ?? []).sort();
    for (const h of hw) {
      if (out.length >= MAX_SENSORS) break;
      const dir = this.p('sys/class/hwmon', h);
      const name = readSmall(join(dir, 'name'))?.trim() ?? h;
      const inputs = (list(dir) ?? []).filter((n) => /^temp\d+_input$/.test(n)).sort();
      for (const i of inputs) {
        if (out.length >= MAX_SENSORS) break;
        const t = readSmall(join(dir, i));
        const c = t === null ? null : parseMilliCelsius(t);
        if (c !== null) out.push({ sensor: `${h}:${name}:${i.replace('_input', '')}`, celsius: c });
      }
    }
    return out;
  }

  private blockDevices(): Map<string, { partition: string; disk: string } | null> {
    const nowMs = this.opts.now().getTime();
    if (this.deviceMap && nowMs - this.deviceMap.atMs < DEVICE_MAP_EVERY_MS) return this.deviceMap.map;
    const map = new Map<string, { partition: string; disk: string } | null>();
    const mounts = parseMountinfo(readSmall(this.p('proc/self/mountinfo')) ?? '');
    for (const path of this.opts.recordingPaths) {
      const point = mountPointOf(path, mounts.keys());
      const dev = point === null ? undefined : mounts.get(point);
      let found: { partition: string; disk: string } | null = null;
      if (dev !== undefined && !dev.startsWith('0:')) {
        try {
          const sysPath = realpathSync(this.p('sys/dev/block', dev));
          const partition = basename(sysPath);
          const isPart = exists(join(sysPath, 'partition'));
          found = { partition, disk: isPart ? basename(dirname(sysPath)) : partition };
        } catch {
          found = null;
        }
      }
      map.set(path, found);
    }
    this.deviceMap = { atMs: nowMs, map };
    return map;
  }

  private async disks(errors: string[]): Promise<DiskHealth[]> {
    const devices = this.blockDevices();
    const diskstatsText = readSmall(this.p('proc/diskstats'));
    const stats = parseDiskstats(diskstatsText ?? '');
    const out: DiskHealth[] = [];
    for (const path of this.opts.recordingPaths) {
      const dev = devices.get(path) ?? null;
      const io = dev ? stats.get(dev.partition) ?? null : null;
      if (dev) this.maybeSmart(dev.disk);
      const smart = dev ? this.smartCache.get(dev.disk) : undefined;
      try {
        const s = await statfs(path);
        const total = s.blocks * s.bsize;
        const avail = s.bavail * s.bsize;
        const used = total - s.bfree * s.bsize;
        out.push({
          path,
          device: dev?.partition ?? null,
          totalBytes: total,
          availableBytes: avail,
          usedPercent: total > 0 ? round2((used / (used + avail)) * 100) : 0,
          io,
          smart: smart ? { health: smart.health, checkedAt: smart.checkedAt } : null,
          error: null,
        });
      } catch (err) {
        const msg = `${path}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`;
        errors.push(`disk ${msg}`);
        out.push({ path, device: dev?.partition ?? null, totalBytes: 0, availableBytes: 0, usedPercent: 0, io, smart: null, error: msg });
      }
    }
    return out;
  }

  private maybeSmart(disk: string): void {
    if (!this.opts.smart || this.smartRunning.has(disk)) return;
    const nowMs = this.opts.now().getTime();
    const cached = this.smartCache.get(disk);
    if (cached && nowMs - cached.atMs < this.opts.smartIntervalSeconds * 1000) return;
    if (!/^[A-Za-z0-9._-]+$/.test(disk)) return;
    this.smartRunning.add(disk);
    void (async () => {
      if (this.smartctl === undefined) this.smartctl = findTool('smartctl');
      if (this.smartctl === null) return;
      const outText = await run(this.smartctl, ['-H', '-j', `/dev/${disk}`], 15_000);
      this.smartCache.set(disk, { health: parseSmartHealth(outText), checkedAt: this.opts.now().toISOString(), atMs: this.opts.now().getTime() });
    })()
      .catch((err: unknown) => this.opts.log.warn({ err, disk }, 'smartctl failed'))
      .finally(() => this.smartRunning.delete(disk));
  }

  private network(errors: string[]): NetHealth[] {
    const base = this.p('sys/class/net');
    const all = list(base);
    if (all === null) {
      errors.push('network: /sys/class/net unreadable');
      return [];
    }
    let names = all.filter((n) => n !== 'lo').sort();
    if (this.opts.interfaces !== null) names = names.filter((n) => this.opts.interfaces!.includes(n));
    const out: NetHealth[] = [];
    for (const name of names.slice(0, MAX_INTERFACES)) {
      const dir = join(base, name);
      const num = (f: string): number => {
        const t = readSmall(join(dir, 'statistics', f));
        const v = t === null ? NaN : Number(t.trim());
        return Number.isFinite(v) ? v : 0;
      };
      const operstate = readSmall(join(dir, 'operstate'));
      const speed = readSmall(join(dir, 'speed'));
      const [rxBytes, txBytes, rxErrors, txErrors, rxDropped, txDropped] = [num('rx_bytes'), num('tx_bytes'), num('rx_errors'), num('tx_errors'), num('rx_dropped'), num('tx_dropped')];
      const sp = speed === null ? NaN : Number(speed.trim());
      out.push({ name, operstate: operstate?.trim() ?? 'unknown', speedMbps: Number.isFinite(sp) && sp > 0 ? sp : null, rxBytes, txBytes, rxErrors, txErrors, rxDropped, txDropped });
    }
    return out;
  }

  private async clock(): Promise<{ sync: 'synchronized' | 'unsynchronized' | 'unknown'; source: string }> {
    // systemd-timesyncd touches this file once the clock is synchronised.
    if (exists(this.p('run/systemd/timesync/synchronized'))) return { sync: 'synchronized', source: 'systemd-timesyncd' };
    if (exists(this.p('run/systemd/timesync'))) return { sync: 'unsynchronized', source: 'systemd-timesyncd' };
    const nowMs = this.opts.now().getTime();
    if (this.clockCache && nowMs - this.clockCache.atMs < CHRONY_EVERY_MS) return this.clockCache;
    if (this.chronyc === undefined) this.chronyc = findTool('chronyc');
    if (this.chronyc === null) {
      this.clockCache = { sync: 'unknown', source: 'none', atMs: nowMs };
      return this.clockCache;
    }
    const text = await run(this.chronyc, ['-n', 'tracking'], 5_000);
    this.clockCache = { sync: parseChronyTracking(text), source: 'chrony', atMs: nowMs };
    return this.clockCache;
  }
}
