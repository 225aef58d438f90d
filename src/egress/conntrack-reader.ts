/**
 * The detail stream: `conntrack -E` spawned and read without ever pausing.
 * Bytes go from the pipe into a bounded ring at once; the parser drains the
 * ring in slices on later turns of the event loop, so slow consumers make
 * the parser lag, never the pipe (a full pipe would block conntrack, whose
 * netlink socket would then overflow and lose events in the kernel).
 *
 * Only flows carrying glassbox's mark bit are asked for (`--mark`), so
 * loopback and inbound connections do not compete for the buffer.
 * conntrack reports kernel-side losses (ENOBUFS) on stderr; each report is
 * counted. If conntrack exits it is restarted with a backoff and the time
 * it was down is reported as a gap.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { StringDecoder } from 'node:string_decoder';
import { ByteRing } from './ring.js';
import { LineSplitter, isOverrunMessage, parseConntrackLine, type ConntrackEvent } from './conntrack-parse.js';
import { MARK_COUNTED, hex32 } from './mark.js';

export interface ConntrackReaderOptions {
  /** Command and leading arguments: default ['conntrack']. */
  readonly command?: readonly string[];
  /** Netlink receive buffer asked of the kernel (conntrack --buffer-size). */
  readonly bufferBytes?: number;
  /** Bytes held between pipe and parser before chunks are dropped. */
  readonly ringBytes?: number;
  readonly onEvent: (ev: ConntrackEvent) => void;
  readonly onOverrun: () => void;
  readonly onMalformed: (reason: string) => void;
  readonly onDropped: (bytes: number) => void;
  /** conntrack ended and was restarted: the interval it was not running. */
  readonly onGap: (start: Date, end: Date, reason: string) => void;
  readonly onError: (message: string) => void;
  readonly now: () => Date;
}

export const DEFAULT_CONNTRACK_BUFFER = 64 * 1024 * 1024;
export const DEFAULT_RING_BYTES = 16 * 1024 * 1024;
const SLICE_BYTES = 256 * 1024;

export function conntrackArgv(command: readonly string[], bufferBytes: number): string[] {
  return [...command, '-E', '-e', 'NEW', '-o', 'timestamp,extended,id', '--mark', `${hex32(MARK_COUNTED)}/${hex32(MARK_COUNTED)}`, '--buffer-size', String(bufferBytes)];
}

export class ConntrackReader {
  private child: ChildProcess | null = null;
  private readonly ring: ByteRing;
  private readonly decoder = new StringDecoder('utf8');
  private readonly lines = new LineSplitter(4096);
  private parseScheduled = false;
  private stopping = false;
  private downSince: Date | null = null;
  private backoffMs = 250;
  private restartTimer: NodeJS.Timeout | null = null;
  private readyWaiters: Array<() => void> = [];
  private isReady = false;
  events = 0;
  restarts = 0;

  constructor(private readonly opts: ConntrackReaderOptions) {
    this.ring = new ByteRing(opts.ringBytes ?? DEFAULT_RING_BYTES);
  }

  get pid(): number | undefined {
    return this.child?.pid;
  }

  get running(): boolean {
    return this.child !== null && this.isReady;
  }

  /** When the reader stopped running (null while it runs). */
  get downSinceTime(): Date | null {
    return this.downSince;
  }

  /** Resolves once conntrack has set its buffer and listens (or after 1 s). */
  async start(timeoutMs = 3000): Promise<void> {
    this.stopping = false;
    this.spawnOnce();
    let timer: NodeJS.Timeout | undefined;
    const ok = await Promise.race([
      this.ready().then(() => true),
      new Promise<boolean>((resolve) => { timer = setTimeout(() => resolve(false), timeoutMs); }),
    ]);
    clearTimeout(timer);
    if (!ok) {
      await this.stop();
      throw new Error(`conntrack did not start within ${timeoutMs} ms`);
    }
  }

  ready(): Promise<void> {
    if (this.isReady) return Promise.resolve();
    return new Promise((resolve) => this.readyWaiters.push(resolve));
  }

  private markReady(): void {
    if (this.isReady || this.child === null) return;
    this.isReady = true;
    if (this.downSince !== null) {
      this.opts.onGap(this.downSince, this.opts.now(), 'detail reader (conntrack) not running');
      this.downSince = null;
      this.backoffMs = 250;
    }
    const w = this.readyWaiters;
    this.readyWaiters = [];
    for (const f of w) f();
  }

  private spawnOnce(): void {
    const argv = conntrackArgv(this.opts.command ?? ['conntrack'], this.opts.bufferBytes ?? DEFAULT_CONNTRACK_BUFFER);
    const [cmd, ...args] = argv as [string, ...string[]];
    const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    this.child = child;
    this.isReady = false;
    // conntrack says nothing when it listens without --buffer-size; never wait more than a second.
    const fallback = setTimeout(() => { if (this.child === child) this.markReady(); }, 1000);
    child.stdout!.on('data', (chunk: Buffer) => {
      if (!this.ring.push(chunk)) this.opts.onDropped(chunk.length);
      this.scheduleParse();
    });
    const errDecoder = new StringDecoder('utf8');
    const errLines = new LineSplitter(4096);
    child.stderr!.on('data', (chunk: Buffer) => {
      for (const line of errLines.push(errDecoder.write(chunk))) {
        if (isOverrunMessage(line)) this.opts.onOverrun();
        else if (/buffer size has been set/i.test(line)) this.markReady();
        else if (line.trim() !== '' && !/flow events have been shown/.test(line) && !/losing events|buffer size is too small|--buffer-size/.test(line)) this.opts.onError(`conntrack: ${line.trim().slice(0, 300)}`);
      }
    });
    child.on('error', (e) => this.opts.onError(`cannot run conntrack: ${e.message}`));
    child.on('close', (code, signal) => {
      clearTimeout(fallback);
      if (this.child === child) this.child = null;
      this.isReady = false;
      if (this.stopping) return;
      this.downSince ??= this.opts.now();
      this.opts.onError(`conntrack exited (${signal ?? code}); restarting in ${this.backoffMs} ms`);
      this.restartTimer = setTimeout(() => {
        this.restartTimer = null;
        if (this.stopping) return;
        this.restarts++;
        this.spawnOnce();
      }, this.backoffMs);
      this.backoffMs = Math.min(this.backoffMs * 2, 5000);
    });
  }

  private scheduleParse(): void {
    if (this.parseScheduled) return;
    this.parseScheduled = true;
    setImmediate(() => this.parseSlice());
  }

  private parseSlice(): void {
    this.parseScheduled = false;
    const chunk = this.ring.take(SLICE_BYTES);
    if (chunk === null) return;
    for (const line of this.lines.push(this.decoder.write(chunk))) {
      const p = parseConntrackLine(line);
      if (p.kind === 'event') {
        this.events++;
        this.opts.onEvent(p.event);
      } else if (p.kind === 'malformed') this.opts.onMalformed(p.reason);
    }
    if (this.ring.bytes > 0) this.scheduleParse();
  }

  /** True when every byte read so far has been parsed. */
  get idle(): boolean {
    return this.ring.bytes === 0 && !this.parseScheduled;
  }

  get ringHighWater(): number {
    return this.ring.highWater;
  }

  async stop(): Promise<void> {
    this.stopping = true;
    if (this.restartTimer) clearTimeout(this.restartTimer);
    const child = this.child;
    if (child === null) return;
    await new Promise<void>((resolve) => {
      const t = setTimeout(() => { child.kill('SIGKILL'); }, 2000);
      child.once('close', () => { clearTimeout(t); resolve(); });
      child.kill('SIGTERM');
      // A stopped (SIGSTOP) conntrack cannot act on SIGTERM until continued.
      child.kill('SIGCONT');
    });
    while (!this.idle) this.parseSlice();
  }
}
