/**
 * The event spool: how other processes on the recorder (CLI commands,
 * helpers) hand events to the daemon. A writer drops one JSON file per
 * event into <stateDir>/events-spool/ (written as *.tmp, then renamed);
 * the daemon picks files up in name order (names start with a millisecond
 * timestamp, so order is creation order per writer), queues each durably,
 * then deletes it. A crash between the two redelivers the event with the
 * same id. Malformed files go to events-spool/rejected/ with a log line.
 *
 *   { "type": "egress.alert", "data": { … }, "id"?: "<uuid>" }
 */
import { randomUUID } from 'node:crypto';
import { watch, type FSWatcher } from 'node:fs';
import { mkdir, readdir, readFile, rename, stat, unlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Logger } from '../log/logger.js';
import { EVENT_TYPE_PATTERN } from './topics.js';
import { grid, type GridTimer } from '../sched/grid.js';

export const SPOOL_DIR = 'events-spool';
export const SPOOL_FILE_MAX_BYTES = 64 * 1024;
const SAFETY_PASS_MS = 30_000;
const NAME = /^[0-9]{13}-[0-9]{10}-[0-9]{10}-[0-9a-f]{8}\.json$/;
const ID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
let counter = 0;

/** Writes one event for the daemon to pick up (any process on the device). Returns its id. */
export async function spoolEvent(stateDir: string, type: string, data: Record<string, unknown>, now: Date = new Date()): Promise<string> {
  if (!EVENT_TYPE_PATTERN.test(type)) throw new Error(`event type ${JSON.stringify(type)} does not match ${EVENT_TYPE_PATTERN.source}`);
  const dir = join(stateDir, SPOOL_DIR);
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const id = randomUUID();
  const name = `${String(now.getTime()).padStart(13, '0')}-${String(process.pid).padStart(10, '0')}-${String(counter++ % 1e10).padStart(10, '0')}-${id.slice(0, 8)}.json`;
  const body = JSON.stringify({ type, data, id });
  if (body.length > SPOOL_FILE_MAX_BYTES) throw new Error(`event of ${body.length} bytes is over the ${SPOOL_FILE_MAX_BYTES}-byte limit`);
  await writeFile(join(dir, `${name}.tmp`), body, { mode: 0o600 });
  await rename(join(dir, `${name}.tmp`), join(dir, name));
  return id;
}

export type SpoolSink = (type: string, data: Record<string, unknown>, id: string) => Promise<unknown>;

/** The daemon side: watches the spool and queues what arrives. */
export class SpoolReader {
  private watcher: FSWatcher | null = null;
  private timer: GridTimer | null = null;
  private running: Promise<void> | null = null;
  private again = false;
  private stopped = false;
  private readonly dir: string;

  constructor(
    stateDir: string,
    private readonly sink: SpoolSink,
    private readonly log: Logger,
    /** Pass interval when the directory cannot be watched; with a working watch, a safety pass every max(pollMs, 30 s). */
    private readonly pollMs = 5_000,
  ) {
    this.dir = join(stateDir, SPOOL_DIR);
  }

  async start(): Promise<void> {
    await mkdir(this.dir, { recursive: true, mode: 0o700 });
    try {
      this.watcher = watch(this.dir, () => this.kick());
      this.watcher.on('error', (err) => {
        this.log.warn({ err }, 'spool watch failed; polling only');
        this.watcher?.close();
        this.watcher = null;
        this.arm();
      });
    } catch (err) {
      this.log.warn({ err }, 'spool watch unavailable; polling only');
    }
    this.arm();
    this.kick();
  }

  /**
   * The pass timer: at pollMs without a watch; with one only as a safety net (a lost inotify
   * event), every SAFETY_PASS_MS, since each wake-up of an idle daemon costs CPU (bench:idle);
   * on the wake-up grid, with the daemon's other 30 s work.
   */
  private arm(): void {
    this.timer?.cancel();
    this.timer = null;
    if (this.stopped) return;
    this.timer = grid.interval(this.watcher === null ? this.pollMs : Math.max(this.pollMs, SAFETY_PASS_MS), () => void this.kick());
  }

  /** Runs a pass now (or right after the one in progress). */
  kick(): Promise<void> {
    if (this.stopped) return Promise.resolve();
    if (this.running) {
      this.again = true;
      return this.running;
    }
    this.running = (async () => {
      do {
        this.again = false;
        await this.pass().catch((err: unknown) => this.log.error({ err }, 'spool pass failed'));
      } while (this.again && !this.stopped);
    })().finally(() => {
      this.running = null;
    });
    return this.running;
  }

  private async pass(): Promise<void> {
    const names = (await readdir(this.dir)).filter((n) => NAME.test(n)).sort();
    for (const name of names.slice(0, 5000)) {
      if (this.stopped) return;
      const path = join(this.dir, name);
      const reject = async (why: string) => {
        this.log.warn({ file: name, reason: why }, 'spooled event rejected');
        await mkdir(join(this.dir, 'rejected'), { recursive: true });
        await rename(path, join(this.dir, 'rejected', name)).catch(() => unlink(path));
      };
      const st = await stat(path).catch(() => null);
      if (st === null) continue;
      if (st.size > SPOOL_FILE_MAX_BYTES) {
        await reject(`over ${SPOOL_FILE_MAX_BYTES} bytes`);
        continue;
      }
      let v: { type?: unknown; data?: unknown; id?: unknown };
      try {
        v = JSON.parse(await readFile(path, 'utf8')) as typeof v;
      } catch {
        await reject('not JSON');
        continue;
      }
      if (typeof v.type !== 'string' || !EVENT_TYPE_PATTERN.test(v.type)) {
        await reject('type missing or malformed');
        continue;
      }
      if (typeof v.data !== 'object' || v.data === null || Array.isArray(v.data)) {
        await reject('data must be an object');
        continue;
      }
      const id = typeof v.id === 'string' && ID.test(v.id) ? v.id : randomUUID();
      await this.sink(v.type, v.data as Record<string, unknown>, id);
      await unlink(path);
    }
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.watcher?.close();
    this.timer?.cancel();
    await this.running;
  }
}
