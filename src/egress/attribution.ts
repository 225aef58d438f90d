/**
 * Best-effort process attribution of local flows: the flow's local port →
 * the socket's inode in /proc/net/{tcp,udp}[6] → the process holding that
 * inode in /proc/<pid>/fd → its executable and the executable's sha256.
 *
 * Lookups are batched (one /proc scan serves every pending flow) and
 * bounded (a short queue, one scan at a time, at most every minIntervalMs).
 * A socket that closed before the scan cannot be found: then the flow keeps
 * `process: null` (its uid still comes from the kernel, see mark.ts).
 */
import { createReadStream } from 'node:fs';
import { readFile, readdir, readlink, stat } from 'node:fs/promises';
import { createHash } from 'node:crypto';
import { parseProcNet, socketInode, type SocketLine } from './procnet.js';
import type { ProcessInfo } from './types.js';

export interface AttributionRequest {
  readonly proto: string;
  readonly family: 4 | 6;
  readonly src: string;
  readonly sport: number;
  readonly done: (p: ProcessInfo) => void;
}

export interface AttributorOptions {
  readonly procRoot?: string;
  readonly queueLimit?: number;
  readonly minIntervalMs?: number;
  /** Executables larger than this are not hashed (sha256 null). */
  readonly maxHashBytes?: number;
}

export class ProcessAttributor {
  private queue: AttributionRequest[] = [];
  private busy = false;
  private timer: NodeJS.Timeout | null = null;
  private stopped = false;
  private readonly hashCache = new Map<string, string>();
  private readonly proc: string;
  private readonly queueLimit: number;
  private readonly minIntervalMs: number;
  private readonly maxHashBytes: number;
  dropped = 0;
  found = 0;
  missed = 0;

  constructor(opts: AttributorOptions = {}) {
    this.proc = opts.procRoot ?? '/proc';
    this.queueLimit = opts.queueLimit ?? 256;
    this.minIntervalMs = opts.minIntervalMs ?? 50;
    this.maxHashBytes = opts.maxHashBytes ?? 512 * 1024 * 1024;
  }

  request(r: AttributionRequest): void {
    if (this.stopped) return;
    if (r.proto !== 'tcp' && r.proto !== 'udp') return;
    if (this.queue.length >= this.queueLimit) {
      this.dropped++;
      return;
    }
    this.queue.push(r);
    this.schedule(0);
  }

  private schedule(delay: number): void {
    if (this.timer || this.busy || this.stopped) return;
    this.timer = setTimeout(() => {
      this.timer = null;
      void this.run();
    }, delay);
  }

  private async run(): Promise<void> {
    if (this.busy || this.queue.length === 0) return;
    this.busy = true;
    const batch = this.queue;
    this.queue = [];
    try {
      await this.resolveBatch(batch);
    } catch {
      this.missed += batch.length;
    } finally {
      this.busy = false;
      if (this.queue.length > 0) this.schedule(this.minIntervalMs);
    }
  }

  private async resolveBatch(batch: AttributionRequest[]): Promise<void> {
    const tables = new Map<string, SocketLine[]>();
    const need = new Map<number, AttributionRequest[]>();
    for (const r of batch) {
      const file = `${r.proto}${r.family === 6 ? '6' : ''}`;
      let lines = tables.get(file);
      if (lines === undefined) {
        lines = await readFile(`${this.proc}/net/${file}`, 'utf8').then((t) => parseProcNet(t, r.family), () => []);
        tables.set(file, lines);
      }
      const s = lines.find((l) => l.localPort === r.sport && (l.localAddress === r.src || l.localAddress === '0.0.0.0' || l.localAddress === '::'));
      if (s === undefined) {
        this.missed++;
        continue;
      }
      const list = need.get(s.inode) ?? [];
      list.push(r);
      need.set(s.inode, list);
    }
    if (need.size === 0) return;
    const owners = await this.findOwners(new Set(need.keys()));
    for (const [inode, reqs] of need) {
      const pid = owners.get(inode);
      if (pid === undefined) {
        this.missed += reqs.length;
        continue;
      }
      const info = await this.describe(pid);
      for (const r of reqs) {
        this.found++;
        r.done(info);
      }
    }
  }

  private async findOwners(inodes: Set<number>): Promise<Map<number, number>> {
    const out = new Map<number, number>();
    const pids = (await readdir(this.proc).catch(() => [] as string[])).filter((n) => /^\d+$/.test(n));
    for (const pid of pids) {
      if (out.size === inodes.size) break;
      const fds = await readdir(`${this.proc}/${pid}/fd`).catch(() => [] as string[]);
      for (const fd of fds) {
        const link = await readlink(`${this.proc}/${pid}/fd/${fd}`).catch(() => '');
        const inode = socketInode(link);
        if (inode !== null && inodes.has(inode) && !out.has(inode)) out.set(inode, Number(pid));
      }
    }
    return out;
  }

  private async describe(pid: number): Promise<ProcessInfo> {
    const exe = await readlink(`${this.proc}/${pid}/exe`).catch(() => null);
    if (exe === null) return { pid, exe: null, sha256: null };
    const path = `${this.proc}/${pid}/exe`;
    const st = await stat(path).catch(() => null);
    if (st === null || st.size > this.maxHashBytes) return { pid, exe, sha256: null };
    const key = `${st.dev}:${st.ino}:${st.size}:${st.mtimeMs}`;
    let sha = this.hashCache.get(key);
    if (sha === undefined) {
      sha = await hashFile(path).catch(() => undefined);
      if (sha !== undefined) {
        if (this.hashCache.size >= 256) this.hashCache.delete(this.hashCache.keys().next().value as string);
        this.hashCache.set(key, sha);
      }
    }
    return { pid, exe: exe.replace(/ \(deleted\)$/, ''), sha256: sha ?? null };
  }

  stop(): void {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    this.queue = [];
  }
}

function hashFile(path: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const h = createHash('sha256');
    createReadStream(path)
      .on('data', (c) => h.update(c))
      .on('error', reject)
      .on('end', () => resolve(h.digest('hex')));
  });
}
