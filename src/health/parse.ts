/** Pure parsers of /proc and /sys text. Each returns null (or skips a line) on what it cannot read. */

export function parseLoadavg(text: string): { load1: number; load5: number; load15: number } | null {
  const [a, b, c] = text.trim().split(/\s+/).map(Number);
  if (a === undefined || b === undefined || c === undefined || [a, b, c].some((n) => !Number.isFinite(n))) return null;
  return { load1: a, load5: b, load15: c };
}

/** /proc/meminfo → bytes. */
export function parseMeminfo(text: string): { totalBytes: number; availableBytes: number; usedPercent: number; swapTotalBytes: number; swapFreeBytes: number } | null {
  const kb = new Map<string, number>();
  for (const line of text.split('\n')) {
    const m = /^(\w+):\s+(\d+)(?: kB)?$/.exec(line.trim());
    if (m && m[1] !== undefined && m[2] !== undefined) kb.set(m[1], Number(m[2]));
  }
  const total = kb.get('MemTotal');
  if (total === undefined || total === 0) return null;
  const available = kb.get('MemAvailable') ?? (kb.get('MemFree') ?? 0) + (kb.get('Buffers') ?? 0) + (kb.get('Cached') ?? 0);
  return {
    totalBytes: total * 1024,
    availableBytes: available * 1024,
    usedPercent: round2(((total - available) / total) * 100),
    swapTotalBytes: (kb.get('SwapTotal') ?? 0) * 1024,
    swapFreeBytes: (kb.get('SwapFree') ?? 0) * 1024,
  };
}

export interface DiskStats {
  readonly readsCompleted: number;
  readonly sectorsRead: number;
  readonly writesCompleted: number;
  readonly sectorsWritten: number;
  readonly ioMillis: number;
}

/** /proc/diskstats → per device name. */
export function parseDiskstats(text: string): Map<string, DiskStats> {
  const out = new Map<string, DiskStats>();
  for (const line of text.split('\n')) {
    const f = line.trim().split(/\s+/);
    if (f.length < 14) continue;
    const name = f[2];
    const n = f.slice(3, 14).map(Number);
    if (name === undefined || n.some((x) => !Number.isFinite(x))) continue;
    out.set(name, { readsCompleted: n[0]!, sectorsRead: n[2]!, writesCompleted: n[4]!, sectorsWritten: n[6]!, ioMillis: n[9]! });
  }
  return out;
}

/** /proc/self/mountinfo → mount point to "major:minor". The last mount on a point wins (it is the visible one). */
export function parseMountinfo(text: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const line of text.split('\n')) {
    const f = line.split(' ');
    const dev = f[2];
    const point = f[4];
    if (dev === undefined || point === undefined || !/^\d+:\d+$/.test(dev)) continue;
    out.set(point.replace(/\\040/g, ' '), dev);
  }
  return out;
}

/** The mount point holding `path` (longest mount-point prefix). */
export function mountPointOf(path: string, mounts: Iterable<string>): string | null {
  let best: string | null = null;
  for (const m of mounts) {
    const inside = m === '/' || path === m || path.startsWith(m.endsWith('/') ? m : `${m}/`);
    if (inside && (best === null || m.length > best.length)) best = m;
  }
  return best;
}

/** /proc/uptime → seconds. */
export function parseUptime(text: string): number | null {
  const v = Number(text.trim().split(/\s+/)[0]);
  return Number.isFinite(v) ? Math.round(v) : null;
}

/** A thermal zone or hwmon value in millidegrees → °C; null for absurd readings. */
export function parseMilliCelsius(text: string): number | null {
  const v = Number(text.trim());
  if (!Number.isFinite(v)) return null;
  const c = v / 1000;
  return c > -60 && c < 200 ? round2(c) : null;
}

/** `smartctl -H` text or JSON output → health. */
export function parseSmartHealth(stdout: string): 'passed' | 'failed' | 'unknown' {
  try {
    const j = JSON.parse(stdout) as { smart_status?: { passed?: unknown } };
    if (typeof j.smart_status?.passed === 'boolean') return j.smart_status.passed ? 'passed' : 'failed';
  } catch {
    /* text output */
  }
  if (/overall-health self-assessment test result: PASSED|SMART Health Status: OK/i.test(stdout)) return 'passed';
  if (/self-assessment test result: FAILED|SMART Health Status: (?!OK)/i.test(stdout)) return 'failed';
  return 'unknown';
}

/** `chronyc -n tracking` → sync state. */
export function parseChronyTracking(stdout: string): 'synchronized' | 'unsynchronized' | 'unknown' {
  const m = /^Leap status\s*:\s*(.+)$/m.exec(stdout);
  if (!m || m[1] === undefined) return 'unknown';
  return /not synchronised/i.test(m[1]) ? 'unsynchronized' : 'synchronized';
}

export function percentile(sortedAsc: readonly number[], p: number): number | null {
  if (sortedAsc.length === 0) return null;
  const i = Math.min(sortedAsc.length - 1, Math.max(0, Math.ceil((p / 100) * sortedAsc.length) - 1));
  return sortedAsc[i] ?? null;
}

export function round2(n: number): number {
  return Math.round(n * 100) / 100;
}
