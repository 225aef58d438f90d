/**
 * The detail stream: `conntrack -E` writing to a spool file on tmpfs, tailed
 * by the daemon.
 *
 * Why a file and not a pipe: conntrack 1.4.7 blocks as soon as its stdout
 * pipe is full (64 KiB, ~250 events); while it blocks it does not read its
 * netlink socket, and the kernel drops events (ENOBUFS) whatever
 * --buffer-size says. Measured here: a 3 s pause of the pipe's reader kept
 * ~470 of 2,000 events; at 20,000 flows/run 443–1,734 were lost. A write
 * to tmpfs never blocks, so conntrack keeps draining the kernel at its own
 * pace whatever the daemon is doing; the daemon reads the file behind it
 * (256 KiB reads, polled every 20–250 ms, parsed in slices between other work).
 *
 * Bounded, without losing events to the rotation:
 *   - a segment (`conntrack-<seq>.events`) is rotated when it reaches
 *     segmentBytes, make-before-break: a new conntrack writing segment
 *     seq+1 is started and listening, a marker entry is inserted, and once
 *     the old writer has written the marker it is stopped; both segments
 *     are cut at the marker (handover.ts), so the overlap is read once. If
 *     the old writer does not show the marker within 5 s the rotation is
 *     abandoned (the new writer stopped, its segment discarded: everything
 *     in it is in the old one too) and retried later;
 *   - a segment is deleted once read to its end after its writer exited;
 *   - if the parser falls so far behind that more than maxSegments
 *     segments wait, the oldest is dropped unread and its bytes counted
 *     (onDropped): reconciliation then reports the flows as lost.
 *   - conntrack is run under `setpriv --pdeathsig TERM` when available, so
 *     it dies with the daemon instead of writing on for nobody; a stale
 *     writer of an earlier daemon (owner.json) is killed at start.
 *
 * conntrack 1.4.7 applies `--buffer-size` to its query socket, not to the
 * event socket it reads (conntrack.c, CT_EVENT: setsockopt on sock->mnl,
 * recvfrom on event_sock->mnl; /proc/net/netlink shows the event socket
 * overflowing at Rmem 212480 with --buffer-size 64 MiB). The event socket
 * keeps net.core.rmem_default (~208 KiB, ~166 events): conntrack loses
 * events whenever it is not scheduled for that long (16 ms at 10,000
 * flows/s). So conntrack runs under SCHED_FIFO (chrt, priority 10, as
 * conntrackd's `Scheduler` option does for the same reason) when the system
 * allows it: measured under 6 CPU hogs on 2 cores, 8,000 flows per round,
 * losses in 2 of 12 rounds with the normal scheduler, none in 16 rounds
 * under SCHED_FIFO. --buffer-size is still passed (a fixed conntrack uses it).
 *
 * Only flows carrying glassbox's mark bit are asked for (`--mark`).
 * conntrack's stderr stays a pipe (a few lines); its ENOBUFS reports are
 * counted. If conntrack exits unexpectedly it is restarted (backoff 250 ms
 * → 5 s, new segment) and the time it was down is a gap.
 */
import { randomInt } from 'node:crypto';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { fstatSync, readSync, watch, type FSWatcher } from 'node:fs';
import { mkdir, open, readFile, readdir, readlink, unlink, writeFile, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { StringDecoder } from 'node:string_decoder';
import { setImmediate as yieldTurn } from 'node:timers/promises';
import { LineSplitter, isOverrunMessage, parseConntrackLine, type ConntrackEvent } from './conntrack-parse.js';
import { SegmentCut, markerArgv, markerText, type Marker } from './handover.js';
import { MARK_COUNTED, hex32 } from './mark.js';
import { grid, type GridTimer } from '../sched/grid.js';

export interface ConntrackReaderOptions {
  /** Command and leading arguments: default ['conntrack']. */
  readonly command?: readonly string[];
  /** Netlink receive buffer asked of the kernel (conntrack --buffer-size). */
  readonly bufferBytes?: number;
  /** Directory of the spool segments (tmpfs: /run/glassbox/egress on a recorder). Made if missing. */
  readonly spoolDir: string;
  /** A segment is rotated once it holds this many bytes. */
  readonly segmentBytes?: number;
  /** Segments waiting to be read beyond this number are dropped, oldest first (and counted). */
  readonly maxSegments?: number;
  /**
   * Run conntrack under SCHED_FIFO with this priority (chrt), or null for the
   * normal scheduler. Default 10. See the class comment: conntrack 1.4.7
   * applies --buffer-size to the wrong socket, so its event socket holds only
   * the system default (~166 events); it must be scheduled promptly.
   */
  readonly realtimePriority?: number | null;
  readonly onEvent: (ev: ConntrackEvent) => void;
  readonly onOverrun: () => void;
  readonly onMalformed: (reason: string) => void;
  readonly onDropped: (bytes: number) => void;
  /** A rotation's cut could not be placed exactly (a listener lost the marker): the stream cannot be vouched for. */
  readonly onHandoverFault: (reason: string) => void;
  /** conntrack ended and was restarted: the interval it was not running. */
  readonly onGap: (start: Date, end: Date, reason: string) => void;
  readonly onError: (message: string) => void;
  readonly now: () => Date;
}

export const DEFAULT_CONNTRACK_BUFFER = 64 * 1024 * 1024;
export const DEFAULT_SEGMENT_BYTES = 16 * 1024 * 1024;
export const DEFAULT_MAX_SEGMENTS = 8;
const READ_BYTES = 256 * 1024;
/**
 * Reading the spool: polled every POLL_MIN_MS while events arrive, backing off to POLL_MAX_MS;
 * a pass at POLL_MAX_MS that finds nothing hands over to an inotify watch of the spool
 * directory (the next write wakes the reader), with a safety poll every IDLE_POLL_MS.
 */
const POLL_MIN_MS = 20;
const POLL_MAX_MS = 250;
const IDLE_POLL_MS = 30_000;
/** How often a pumping reader checks whether the segment being written is due for rotation (it also rotates as soon as it reads past segmentBytes). */
const SIZE_CHECK_MS = 1000;
const SEGMENT_RE = /^conntrack-\d{6,}\.events$/;

export function conntrackArgv(command: readonly string[], bufferBytes: number): string[] {
  return [...command, '-E', '-e', 'NEW', '-o', 'timestamp,extended,id', '--mark', `${hex32(MARK_COUNTED)}/${hex32(MARK_COUNTED)}`, '--buffer-size', String(bufferBytes)];
}

/** Bytes in a segment's file now (its offset when the file cannot be read: nothing new). */
function sizeOf(seg: Segment): number {
  try {
    return fstatSync(seg.fh.fd).size;
  } catch {
    return seg.offset;
  }
}

export function segmentName(seq: number): string {
  return `conntrack-${String(seq).padStart(6, '0')}.events`;
}

interface Segment {
  readonly seq: number;
  readonly path: string;
  readonly fh: FileHandle;
  offset: number;
  /** Its writer has exited: a read returning 0 bytes after this was set means the segment is complete. */
  writerDone: boolean;
  readonly decoder: StringDecoder;
  readonly lines: LineSplitter;
  readonly cut: SegmentCut;
}

interface Writer {
  readonly seg: Segment;
  readonly child: ChildProcess;
  ready: boolean;
  /** Being replaced by a rotation (or stopped): its exit is expected. */
  retiring: boolean;
  readonly exited: Promise<void>;
}

let pdeathsigSupport: boolean | null = null;
/** `setpriv --pdeathsig` (util-linux ≥ 2.33) present? Probed once. */
function pdeathsigAvailable(): boolean {
  pdeathsigSupport ??= spawnSync('setpriv', ['--pdeathsig', 'TERM', '--', 'true'], { stdio: 'ignore', timeout: 5000 }).status === 0;
  return pdeathsigSupport;
}

const chrtSupport = new Map<number, boolean>();
/** May this process start a SCHED_FIFO child (chrt present, CAP_SYS_NICE)? Probed once per priority. */
function realtimeAvailable(priority: number): boolean {
  let ok = chrtSupport.get(priority);
  if (ok === undefined) {
    ok = spawnSync('chrt', ['--fifo', String(priority), 'true'], { stdio: 'ignore', timeout: 5000 }).status === 0;
    chrtSupport.set(priority, ok);
  }
  return ok;
}

export class ConntrackReader {
  private readonly segmentBytes: number;
  private readonly maxSegments: number;
  private readonly buf = Buffer.allocUnsafe(READ_BYTES);
  private duplicates = 0;
  /** Segments not yet read to their end, oldest first; the last one is the current writer's. */
  private segments: Segment[] = [];
  private writer: Writer | null = null;
  private seq = 0;
  private stopping = false;
  /** stop() has finished: no more polling. */
  private closed = false;
  private downSince: Date | null = null;
  private backoffMs = 250;
  private restartTimer: NodeJS.Timeout | null = null;
  private pollTimer: GridTimer | null = null;
  /** The idle watch of the spool directory (null while polling). */
  private watcher: FSWatcher | null = null;
  /** fs.watch failed once here: poll only. */
  private watchBroken = false;
  private lastSizeCheck = 0;
  private pollMs = POLL_MIN_MS;
  private rotating: Promise<void> | null = null;
  private pumping: Promise<void> | null = null;
  private again = false;
  private passesStarted = 0;
  private passesEnded = 0;
  private passWaiters: Array<{ pass: number; resolve: () => void }> = [];
  private pdeathsig = false;
  private realtime: number | null = null;
  events = 0;
  restarts = 0;
  rotations = 0;
  droppedSegments = 0;

  constructor(private readonly opts: ConntrackReaderOptions) {
    this.segmentBytes = opts.segmentBytes ?? DEFAULT_SEGMENT_BYTES;
    this.maxSegments = Math.max(2, opts.maxSegments ?? DEFAULT_MAX_SEGMENTS);
  }

  /** pid of the conntrack process writing now (it is the one that loses events when stopped). */
  get pid(): number | undefined {
    return this.writer?.child.pid;
  }

  get running(): boolean {
    const w = this.writer;
    return w !== null && w.ready && !w.retiring && alive(w.child);
  }

  /** When the reader stopped running (null while it runs). */
  get downSinceTime(): Date | null {
    return this.downSince;
  }

  /** Events read twice across a rotation's overlap (and read once). */
  get duplicatesDropped(): number {
    return this.duplicates;
  }

  /** Passes over the spool so far (each poll or wake-up is one). */
  get passes(): number {
    return this.passesStarted;
  }

  /** Idle: waiting on the spool directory's inotify watch instead of polling. */
  get watching(): boolean {
    return this.watcher !== null;
  }

  /** Spool segments waiting to be read (1 when the reader keeps up). */
  get segmentsPending(): number {
    return this.segments.length;
  }

  /** Starts conntrack and resolves once it listens; throws when it does not within timeoutMs. */
  async start(timeoutMs = 3000): Promise<void> {
    this.stopping = false;
    this.closed = false;
    await mkdir(this.opts.spoolDir, { recursive: true, mode: 0o700 });
    await this.clearStale();
    this.pdeathsig = pdeathsigAvailable();
    if (!this.pdeathsig) this.opts.onError('setpriv --pdeathsig is not available: a conntrack left by a crashed daemon is only stopped at the next start (or by systemd)');
    const prio = this.opts.realtimePriority === undefined ? 10 : this.opts.realtimePriority;
    if (prio !== null) {
      if (!Number.isInteger(prio) || prio < 1 || prio > 99) throw new Error(`realtimePriority must be 1–99 or null, not ${prio}`);
      this.realtime = realtimeAvailable(prio) ? prio : null;
      if (this.realtime === null) this.opts.onError(`cannot run conntrack under SCHED_FIFO (chrt --fifo ${prio}): it runs with the normal scheduler and may lose events when the CPUs are busy (counted as eventsLost)`);
    }
    this.writer = await this.startWriter(timeoutMs);
    this.wake();
  }

  /**
   * Resolves once everything conntrack has written so far has been parsed
   * (and its events delivered), after any rotation under way: until then
   * the new segment's events wait behind the old one's.
   */
  async drain(): Promise<void> {
    await this.rotating;
    return this.drainPass();
  }

  private drainPass(): Promise<void> {
    // A pass that starts after this call (wake() starts it now, or right after the one running).
    const target = this.passesStarted + 1;
    this.wake();
    if (this.passesEnded >= target) return Promise.resolve();
    return new Promise((resolve) => this.passWaiters.push({ pass: target, resolve }));
  }

  async stop(): Promise<void> {
    this.stopping = true;
    if (this.restartTimer) clearTimeout(this.restartTimer);
    this.cancelPoll();
    this.unwatch();
    await this.rotating;
    const w = this.writer;
    if (w !== null) {
      w.retiring = true;
      await stopChild(w);
    }
    // Read every segment to its end: nothing conntrack wrote is left behind.
    for (let i = 0; i < 100 && this.segments.length > 0; i++) await this.drainPass();
    for (const s of this.segments) await this.closeSegment(s, false);
    this.segments = [];
    this.writer = null;
    this.closed = true;
    await this.pumping;
    this.cancelPoll();
    this.unwatch();
    await unlink(join(this.opts.spoolDir, 'owner.json')).catch(() => undefined);
  }

  // ------------------------------------------------------------ writers

  private async startWriter(timeoutMs: number, seq = this.seq + 1): Promise<Writer> {
    this.seq = Math.max(this.seq, seq);
    const path = join(this.opts.spoolDir, segmentName(seq));
    const out = await open(path, 'wx', 0o600);
    let fh: FileHandle;
    try {
      fh = await open(path, 'r');
    } catch (e) {
      await out.close();
      throw e;
    }
    const seg: Segment = { seq, path, fh, offset: 0, writerDone: false, decoder: new StringDecoder('utf8'), lines: new LineSplitter(4096), cut: new SegmentCut() };
    const base = conntrackArgv(this.opts.command ?? ['conntrack'], this.opts.bufferBytes ?? DEFAULT_CONNTRACK_BUFFER);
    const rt = this.realtime === null ? base : ['chrt', '--fifo', String(this.realtime), ...base];
    const argv = this.pdeathsig ? ['setpriv', '--pdeathsig', 'TERM', '--', ...rt] : rt;
    const [cmd, ...args] = argv as [string, ...string[]];
    let child: ChildProcess;
    try {
      // Its own session: a terminal's Ctrl-C (or `timeout`) signals the daemon's process group, and the
      // daemon stops conntrack itself, in order; a crashed daemon takes it along (pdeathsig).
      child = spawn(cmd, args, { stdio: ['ignore', out.fd, 'pipe'], detached: true });
    } catch (e) {
      await out.close();
      await fh.close();
      throw e;
    }
    // Every listener is attached before the next await: a failed spawn reports 'error' on the next tick.
    let spawnError: string | null = null;
    child.on('error', (e) => {
      spawnError = e.message;
      this.opts.onError(`cannot run conntrack: ${e.message}`);
    });
    this.segments.push(seg);
    let markReady: () => void = () => undefined;
    const ready = new Promise<void>((resolve) => (markReady = resolve));
    const exited = new Promise<void>((resolve) => child.once('close', () => resolve()));
    const w: Writer = { seg, child, ready: false, retiring: false, exited };
    const setReady = () => {
      if (w.ready) return;
      w.ready = true;
      markReady();
    };
    // conntrack says nothing when it listens without --buffer-size; never wait more than a second then.
    const fallback = setTimeout(setReady, 1000);
    const errDecoder = new StringDecoder('utf8');
    const errLines = new LineSplitter(4096);
    child.stderr!.on('data', (chunk: Buffer) => {
      for (const line of errLines.push(errDecoder.write(chunk))) {
        if (isOverrunMessage(line)) this.opts.onOverrun();
        else if (/buffer size has been set/i.test(line)) setReady();
        else if (line.trim() !== '' && !/flow events have been shown/.test(line) && !/losing events|buffer size is too small|--buffer-size/.test(line)) this.opts.onError(`conntrack: ${line.trim().slice(0, 300)}`);
      }
    });
    child.once('close', (code, signal) => {
      clearTimeout(fallback);
      seg.writerDone = true;
      this.wake();
      if (w.retiring || this.stopping || this.writer !== w) return;
      // Unexpected: restart on a new segment; the time without a listener is a gap.
      this.downSince ??= this.opts.now();
      this.opts.onError(`conntrack exited (${signal ?? code}); restarting in ${this.backoffMs} ms`);
      this.scheduleRestart();
    });
    // The child holds its own copy of the write end.
    await out.close();
    await this.writeOwner(child.pid);
    let timer: NodeJS.Timeout | undefined;
    const ok = await Promise.race([
      ready.then(() => true),
      exited.then(() => false),
      new Promise<boolean>((resolve) => { timer = setTimeout(() => resolve(false), timeoutMs); }),
    ]);
    clearTimeout(timer);
    if (!ok) {
      w.retiring = true;
      await stopChild(w);
      throw new Error(spawnError !== null ? `cannot run conntrack: ${spawnError}` : `conntrack did not start listening within ${timeoutMs} ms`);
    }
    return w;
  }

  private scheduleRestart(): void {
    const dead = this.writer;
    this.restartTimer = setTimeout(() => {
      this.restartTimer = null;
      if (this.stopping || this.writer !== dead) return;
      this.restarts++;
      this.startWriter(3000).then(
        (w) => {
          if (this.stopping || this.writer !== dead) {
            // Stopping, or a rotation replaced the dead writer meanwhile.
            w.retiring = true;
            void stopChild(w);
            return;
          }
          this.writer = w;
          if (this.downSince !== null) this.opts.onGap(this.downSince, this.opts.now(), 'detail reader (conntrack) not running');
          this.downSince = null;
          this.backoffMs = 250;
        },
        (e: unknown) => {
          this.opts.onError(`conntrack restart failed: ${e instanceof Error ? e.message : String(e)}; retrying in ${this.backoffMs} ms`);
          if (!this.stopping && this.writer === dead) this.scheduleRestart();
        },
      );
    }, this.backoffMs);
    this.backoffMs = Math.min(this.backoffMs * 2, 5000);
  }

  /** Make-before-break, cut at a marker: see handover.ts. */
  private rotate(): Promise<void> {
    this.rotating ??= this.handover()
      .catch((e: unknown) => this.opts.onError(`spool rotation failed: ${e instanceof Error ? e.message : String(e)}`))
      .finally(() => {
        this.rotating = null;
      });
    return this.rotating;
  }

  private async handover(): Promise<void> {
    const old = this.writer;
    if (old === null || !old.ready || !alive(old.child) || this.stopping) return;
    let next: Writer;
    try {
      next = await this.startWriter(3000);
    } catch (e) {
      this.opts.onError(`spool rotation: the next conntrack did not start (${e instanceof Error ? e.message : String(e)}); segment ${old.seg.seq} keeps growing`);
      return;
    }
    const marker: Marker = { sport: 1 + (next.seg.seq % 65535), dport: randomInt(1, 65536) };
    next.seg.cut.skipUntilMarker(marker);
    old.seg.cut.cutAfterMarker(marker);
    const from = (await old.seg.fh.stat()).size;
    const inserted = await runQuiet(markerArgv(this.opts.command ?? ['conntrack'], marker), 5000);
    const seen = inserted === null && (await this.waitForText(old.seg, from, markerText(marker), 5000));
    if (!seen && !alive(old.child) && !this.stopping && this.writer === old) {
      // The old writer died during the handover: the new one has listened since before, so it takes over
      // whole (its pending restart stands down); what both saw before the death is read twice: a fault.
      old.seg.cut.cutAfterMarker(null);
      next.seg.cut.clearSkip();
      this.writer = next;
      this.downSince = null;
      this.backoffMs = 250;
      this.opts.onHandoverFault(`conntrack of segment ${old.seg.seq} exited during a rotation; the overlap may be read twice`);
      await this.writeOwner(next.child.pid);
      return;
    }
    if (!seen || this.stopping || this.writer !== old) {
      // Abandon: the old writer goes on; everything the new one wrote is in the old one's segment too.
      old.seg.cut.cutAfterMarker(null);
      next.seg.cut.discardEverything();
      next.retiring = true;
      await stopChild(next);
      if (!this.stopping) this.opts.onError(`spool rotation abandoned: ${inserted ?? 'the marker did not show in the current segment within 5 s'}; retrying later`);
      return;
    }
    this.writer = next;
    old.retiring = true;
    await stopChild(old);
    next.seg.cut.skipAtMostUntil(Date.now() + 2000);
    this.rotations++;
    await this.writeOwner(next.child.pid);
  }

  /** Polls a segment's bytes from `from` until `text` shows (true) or timeoutMs pass (false). Bounded reads. */
  private async waitForText(seg: Segment, from: number, text: string, timeoutMs: number): Promise<boolean> {
    const deadline = Date.now() + timeoutMs;
    const buf = Buffer.allocUnsafe(64 * 1024);
    let pos = from;
    let tail = '';
    while (Date.now() < deadline && !this.stopping) {
      const n = (await seg.fh.read(buf, 0, buf.length, pos)).bytesRead;
      if (n > 0) {
        pos += n;
        const chunk = tail + buf.toString('latin1', 0, n);
        if (chunk.includes(text)) return true;
        tail = chunk.slice(-text.length);
        continue;
      }
      await new Promise((r) => setTimeout(r, 10));
    }
    return false;
  }

  /**
   * Rotates the writer's segment once it holds segmentBytes, also while the reader is still
   * behind in older segments (the pump rotates as soon as it reads past segmentBytes itself).
   * Called from the pump at most every SIZE_CHECK_MS; an idle reader has nothing growing to check.
   */
  private checkSize(): void {
    const now = Date.now();
    if (now - this.lastSizeCheck < SIZE_CHECK_MS) return;
    this.lastSizeCheck = now;
    const w = this.writer;
    if (w !== null && w.ready && !w.retiring && this.rotating === null && sizeOf(w.seg) >= this.segmentBytes) void this.rotate();
  }

  // ------------------------------------------------------------ reading

  /**
   * Reads now (and then polls, or watches). While events arrive the spool is
   * polled, not watched: inotify would report every line conntrack writes,
   * and a wake-up per line costs more than the line (measured: ~20 µs of CPU
   * per flow at 8,000 flows/s). Polling every 20 ms while events arrive keeps
   * alerts well within their second. Once a pass at the slowest rate (250 ms)
   * finds nothing, the reader watches the spool directory instead (inotify:
   * the next write by conntrack, or a new segment, wakes it) with a safety
   * poll every 30 s: an idle daemon then wakes for no spool work at all.
   * Each wake-up of an idle Node process costs ~1.3 ms of CPU on the
   * recorder-class VM measured here, so polling four times a second alone
   * cost 0.5–1.4 % of a core (bench:idle, docs/egress.md).
   */
  private wake(): void {
    this.unwatch();
    if (this.pumping) {
      this.again = true;
      return;
    }
    if (this.pollTimer !== null) {
      this.pollTimer.cancel();
      this.pollTimer = null;
    }
    let idle = false;
    this.pumping = this.pump().then((read) => {
      idle = read === 0 && this.pollMs >= POLL_MAX_MS;
      this.pollMs = read > 0 ? POLL_MIN_MS : Math.min(POLL_MAX_MS, this.pollMs * 2);
    }).finally(() => {
      this.pumping = null;
      if (this.again) {
        this.again = false;
        this.wake();
      } else if (!this.closed && this.pollTimer === null) {
        if (idle && this.watchIdle()) return;
        this.pollTimer = grid.timeout(
          this.pollMs,
          () => {
            this.pollTimer = null;
            this.wake();
          },
          { unref: true },
        );
      }
    });
  }

  /**
   * Idle: watch the spool directory until something is written there. False when the reader
   * must keep polling (fs.watch unavailable, segments still waiting, or bytes already there).
   */
  private watchIdle(): boolean {
    if (this.watchBroken || this.stopping || this.segments.length !== 1) return false;
    const seg = this.segments[0] as Segment;
    try {
      const w = watch(this.opts.spoolDir, { persistent: false }, () => this.wake());
      w.on('error', (e) => {
        this.watchBroken = true;
        this.opts.onError(`spool watch failed (${e.message}); polling every ${POLL_MAX_MS} ms instead`);
        this.wake();
      });
      this.watcher = w;
    } catch (e) {
      this.watchBroken = true;
      this.opts.onError(`cannot watch the spool (${e instanceof Error ? e.message : String(e)}); polling every ${POLL_MAX_MS} ms instead`);
      return false;
    }
    // Written between the last read and the watch: no event will tell, so read now.
    if (sizeOf(seg) > seg.offset || seg.writerDone) {
      this.unwatch();
      return false;
    }
    // On the wake-up grid, with the daemon's other 30 s work (src/sched/grid.ts).
    this.pollTimer = grid.timeout(
      IDLE_POLL_MS,
      () => {
        this.pollTimer = null;
        this.wake();
      },
      { unref: true },
    );
    return true;
  }

  private cancelPoll(): void {
    this.pollTimer?.cancel();
    this.pollTimer = null;
  }

  private unwatch(): void {
    if (this.watcher === null) return;
    this.watcher.close();
    this.watcher = null;
  }

  /** One pass over the spool; returns the bytes read. */
  private async pump(): Promise<number> {
    const pass = ++this.passesStarted;
    let chunks = 0;
    let total = 0;
    try {
      for (;;) {
        if (this.segments.length > this.maxSegments) await this.dropExcess();
        const seg = this.segments[0];
        if (seg === undefined) return total;
        const complete = seg.writerDone;
        let n: number;
        try {
          // Synchronous: the spool is on tmpfs (page cache at worst), where a read never waits for a
          // device, and an idle poll (nothing new) then costs a system call instead of a round trip
          // through the thread pool and a promise (measured: the reader was the idle daemon's largest
          // cost with promise reads). At most READ_BYTES per call; the loop yields every 1 MiB.
          n = readSync(seg.fh.fd, this.buf, 0, READ_BYTES, seg.offset);
        } catch (e) {
          this.opts.onError(`spool read ${seg.path}: ${(e as Error).message}`);
          return total;
        }
        if (n > 0) {
          seg.offset += n;
          total += n;
          this.feed(seg, this.buf.subarray(0, n));
          if (seg.offset >= this.segmentBytes && this.writer?.seg === seg && this.rotating === null) void this.rotate();
          // Long catch-ups leave room for the rest of the daemon between slices.
          if (++chunks % 4 === 0) await yieldTurn();
          continue;
        }
        if (complete) {
          this.segments.shift();
          await this.closeSegment(seg, true);
          continue;
        }
        if (total > 0 || this.segments.length > 1) this.checkSize();
        return total;
      }
    } finally {
      this.passesEnded = pass;
      const due = this.passWaiters.filter((w) => w.pass <= pass);
      if (due.length > 0) {
        this.passWaiters = this.passWaiters.filter((w) => w.pass > pass);
        for (const w of due) w.resolve();
      }
    }
  }

  private feed(seg: Segment, chunk: Buffer): void {
    for (const line of seg.lines.push(seg.decoder.write(chunk))) {
      const p = parseConntrackLine(line);
      if (p.kind === 'event') {
        const faults = seg.cut.faults;
        const d = seg.cut.decide(p.event);
        if (seg.cut.faults !== faults) this.opts.onHandoverFault(`segment ${seg.seq}: the rotation marker never showed; events after the old writer stopped were skipped until ${new Date(p.event.at).toISOString()}`);
        if (d === 'duplicate') this.duplicates++;
        if (d !== 'deliver') continue;
        this.events++;
        this.opts.onEvent(p.event);
      } else if (p.kind === 'malformed') this.opts.onMalformed(p.reason);
    }
  }

  /** Too many segments waiting: the oldest complete ones go unread, their bytes counted. */
  private async dropExcess(): Promise<void> {
    while (this.segments.length > this.maxSegments) {
      const seg = this.segments[0] as Segment;
      if (!seg.writerDone) return;
      const size = sizeOf(seg);
      this.segments.shift();
      this.droppedSegments++;
      this.opts.onDropped(Math.max(0, size - seg.offset));
      this.opts.onError(`detail reader ${this.segments.length + 1} segments behind: segment ${seg.seq} dropped unread (${size - seg.offset} bytes); the flows count as lost`);
      await this.closeSegment(seg, false);
    }
  }

  private async closeSegment(seg: Segment, complete: boolean): Promise<void> {
    // A line cut off by the writer's exit has no newline: it is not an event.
    if (complete && seg.lines.push(seg.decoder.end() + '\n').some((l) => l.trim() !== '')) this.opts.onMalformed('segment ended inside a line');
    await seg.fh.close().catch(() => undefined);
    await unlink(seg.path).catch(() => undefined);
  }

  // ------------------------------------------------------------ ownership

  private async writeOwner(conntrackPid: number | undefined): Promise<void> {
    const body = JSON.stringify({ daemonPid: process.pid, conntrackPid: conntrackPid ?? null });
    await writeFile(join(this.opts.spoolDir, 'owner.json'), body, { mode: 0o600 }).catch((e: Error) => this.opts.onError(`owner.json: ${e.message}`));
  }

  /**
   * A spool left by an earlier daemon: refuse it while that daemon still
   * runs; otherwise stop its conntrack (if it still writes into this
   * directory) and delete its segments (their flows were counted; without
   * records they are reported as lost).
   */
  private async clearStale(): Promise<void> {
    const dir = this.opts.spoolDir;
    const owner = await readFile(join(dir, 'owner.json'), 'utf8').then((t) => JSON.parse(t) as { daemonPid?: unknown; conntrackPid?: unknown }, () => null);
    if (owner !== null) {
      const d = owner.daemonPid;
      if (typeof d === 'number' && d !== process.pid && (await sameExecutable(d))) {
        throw new Error(`spool directory ${dir} is in use by process ${d}; give each observer its own directory`);
      }
      const c = owner.conntrackPid;
      if (typeof c === 'number' && c > 1) {
        const cmdline = await readFile(`/proc/${c}/cmdline`, 'utf8').catch(() => '');
        const out = await readlink(`/proc/${c}/fd/1`).catch(() => '');
        if (cmdline.includes('conntrack') && out.startsWith(dir)) {
          try {
            process.kill(c, 'SIGKILL');
          } catch {
            /* gone meanwhile */
          }
        }
      }
    }
    for (const name of await readdir(dir)) if (SEGMENT_RE.test(name)) await unlink(join(dir, name)).catch(() => undefined);
  }
}

async function sameExecutable(pid: number): Promise<boolean> {
  const [theirs, mine] = await Promise.all([readlink(`/proc/${pid}/exe`).catch(() => null), readlink('/proc/self/exe').catch(() => null)]);
  return theirs !== null && theirs === mine;
}

function alive(child: ChildProcess): boolean {
  return child.exitCode === null && child.signalCode === null;
}

/** Runs a short command; null on success, else what went wrong. Bounded output and time. */
function runQuiet(argv: readonly string[], timeoutMs: number): Promise<string | null> {
  return new Promise((resolve) => {
    const [cmd, ...args] = argv as [string, ...string[]];
    const child = spawn(cmd, args, { stdio: ['ignore', 'ignore', 'pipe'] });
    let err = '';
    child.stderr!.on('data', (c: Buffer) => { if (err.length < 2000) err += c.toString('utf8'); });
    const t = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('error', (e) => { clearTimeout(t); resolve(`${cmd}: ${e.message}`); });
    child.on('close', (code) => {
      clearTimeout(t);
      resolve(code === 0 ? null : `${argv.slice(0, 2).join(' ')} exited ${code}: ${err.trim().slice(0, 300)}`);
    });
  });
}

async function stopChild(w: Writer): Promise<void> {
  const child = w.child;
  if (!alive(child)) return w.exited;
  const t = setTimeout(() => child.kill('SIGKILL'), 2000);
  child.kill('SIGTERM');
  // A stopped (SIGSTOP) conntrack cannot act on SIGTERM until continued.
  child.kill('SIGCONT');
  await w.exited;
  clearTimeout(t);
}
