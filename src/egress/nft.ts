/**
 * The edge to nftables: the `nft` command, run without a shell, with a
 * bounded output and a timeout. Tests pass their own `nft` path (or a
 * prefix such as `ip netns exec NAME nft`) through NftOptions.
 *
 * Listings (the counter poll, every 0.5–15 s) go through one long-lived
 * `nft -j -i` (NftSession) instead of a new `nft` per poll: a spawn cost
 * ≈3.5 ms of CPU (parent 1.7 ms + nft 1.8 ms, in a 40 MiB test process;
 * more in the daemon, whose profile showed spawn as the poll's largest
 * part), a listing through the session ≈0.6 ms (docs/egress.md). Loading a script
 * (rare: install, DNS updates) still runs `nft -f -` once per script.
 */
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { GlassboxError } from '../errors.js';
import { TABLE_NAME } from './ruleset.js';
import { grid } from '../sched/grid.js';

export interface NftOptions {
  /** Command and leading arguments: default ['nft']. */
  readonly command?: readonly string[];
  readonly timeoutMs?: number;
  /** Largest stdout accepted (a listing of a table with full dynamic sets stays well below). */
  readonly maxOutputBytes?: number;
  /** false: run a new `nft -j list` per listing instead of one long-lived `nft -j -i`. */
  readonly session?: boolean;
}

/** A failed `list table`: null when the table does not exist, else the error. */
function missingOr(stderr: string): null {
  if (/No such file or directory|does not exist/i.test(stderr)) return null;
  throw new NftError(`nft list table failed: ${stderr.trim().slice(0, 2000)}`);
}

export class NftError extends GlassboxError {
  constructor(message: string, options: { cause?: unknown } = {}) {
    super('EGRESS_NFT', message, { ...options, exitCode: 2 });
  }
}

export interface RunResult {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

export function runBounded(argv: readonly string[], stdin: string | null, timeoutMs: number, maxBytes: number): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const [cmd, ...args] = argv;
    if (cmd === undefined) return reject(new NftError('empty command'));
    const child = spawn(cmd, args, { stdio: ['pipe', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    let outBytes = 0;
    let errBytes = 0;
    let overflow = false;
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.stdout.on('data', (c: Buffer) => {
      outBytes += c.length;
      if (outBytes > maxBytes) {
        overflow = true;
        child.kill('SIGKILL');
      } else out.push(c);
    });
    child.stderr.on('data', (c: Buffer) => {
      errBytes += c.length;
      if (errBytes <= 64 * 1024) err.push(c);
    });
    child.on('error', (e) => {
      clearTimeout(timer);
      reject(new NftError(`cannot run ${cmd}: ${e.message}`, { cause: e }));
    });
    child.on('close', (code) => {
      clearTimeout(timer);
      if (overflow) return reject(new NftError(`${cmd} printed more than ${maxBytes} bytes`));
      resolve({ code, stdout: Buffer.concat(out).toString('utf8'), stderr: Buffer.concat(err).toString('utf8') });
    });
    child.stdin.on('error', () => undefined);
    child.stdin.end(stdin ?? '');
  });
}

/** What one `list` in the session answered: its JSON line, or nft's error text. */
type SessionAnswer = { readonly ok: true; readonly json: string } | { readonly ok: false; readonly error: string };

/**
 * One long-lived `nft -j -i`, asked one command at a time.
 *
 * Framing: nft answers a successful `list` with one JSON line on stdout and
 * a failed one with a few lines on stderr, and flushes after each command.
 * Each request is followed by a sync command that always fails the same
 * way (`list table inet <token>`, a table name with a random per-session
 * nonce and the request's sequence number, which nobody else creates); the
 * request is complete when that failure, with its caret line, shows on
 * stderr. nft writes the request's stdout line before it even reads the
 * sync command, and node delivers data already in a pipe within the same
 * turn of the event loop; the answer is read one turn later.
 *
 * Bounded: one request at a time (callers queue), stdout per request at
 * most maxOutputBytes, stderr kept to the last 64 KiB, a timeout that kills
 * the session, and a fresh nft after RECYCLE_AFTER requests (nft's memory
 * grows slowly across commands in one session: 4.3 → 5.9 MiB over 5,000
 * listings, measured). Any fault kills the session; the next request
 * starts another. The session ends when the daemon's end of stdin closes,
 * so it never outlives the daemon.
 */
export class NftSession {
  static readonly RECYCLE_AFTER = 1000;
  private child: ChildProcessWithoutNullStreams | null = null;
  private readonly nonce = randomBytes(6).toString('hex');
  private seq = 0;
  private served = 0;
  private queue: Promise<unknown> = Promise.resolve();
  private closed = false;
  /** The request in flight: its stdout and stderr so far, and how to finish it. */
  private pending: {
    out: Buffer[];
    outBytes: number;
    err: string;
    /** The sync command's echo on stderr; the request is complete once the caret line after it ends too. */
    sync: string;
    done: (e: Error | null) => void;
  } | null = null;

  constructor(
    private readonly command: readonly string[],
    private readonly timeoutMs: number,
    private readonly maxOutputBytes: number,
  ) {}

  /** Child pid of the session (diagnostics, tests); null when none runs. */
  get pid(): number | null {
    return this.child?.pid ?? null;
  }

  /** Runs one nft command (no newline in it) and returns what it answered. */
  ask(commandLine: string): Promise<SessionAnswer> {
    if (/[\r\n]/.test(commandLine)) return Promise.reject(new NftError('an nft session command must be one line'));
    const run = this.queue.then(() => this.askNow(commandLine));
    this.queue = run.catch(() => undefined);
    return run;
  }

  /** Ends the session (closes nft's stdin; SIGKILL if it is still there after 1 s). */
  async close(): Promise<void> {
    this.closed = true;
    await this.queue;
    this.kill(null);
  }

  private start(): ChildProcessWithoutNullStreams {
    const [cmd, ...args] = this.command;
    if (cmd === undefined) throw new NftError('empty command');
    const child = spawn(cmd, [...args, '-j', '-i'], { stdio: ['pipe', 'pipe', 'pipe'] });
    child.stdout.on('data', (c: Buffer) => {
      const p = this.pending;
      if (p === null || this.child !== child) return;
      p.outBytes += c.length;
      if (p.outBytes > this.maxOutputBytes) return p.done(new NftError(`nft printed more than ${this.maxOutputBytes} bytes`));
      p.out.push(c);
    });
    child.stderr.setEncoding('utf8');
    child.stderr.on('data', (c: string) => {
      const p = this.pending;
      if (p === null || this.child !== child) return;
      p.err = (p.err + c).slice(-64 * 1024);
      const at = p.err.indexOf(p.sync);
      if (at >= 0 && p.err.indexOf('\n', at + p.sync.length) >= 0) setImmediate(() => p.done(null));
    });
    child.on('error', (e) => {
      if (this.child === child) this.pending?.done(new NftError(`cannot run ${cmd}: ${e.message}`, { cause: e }));
    });
    child.on('exit', (code, signal) => {
      if (this.child !== child) return;
      // Ended between requests too (killed, crashed): the next request starts a fresh one.
      this.child = null;
      this.pending?.done(new NftError(`the nft session ended (${signal ?? `exit ${code}`})`));
    });
    child.stdin.on('error', () => undefined);
    this.child = child;
    this.served = 0;
    return child;
  }

  private kill(child: ChildProcessWithoutNullStreams | null): void {
    const c = child ?? this.child;
    if (c === null) return;
    if (this.child === c) this.child = null;
    c.stdin.end();
    if (c.exitCode === null && c.signalCode === null) {
      if (child !== null) c.kill('SIGKILL');
      else setTimeout(() => c.exitCode === null && c.signalCode === null && c.kill('SIGKILL'), 1000).unref();
    }
  }

  private askNow(commandLine: string): Promise<SessionAnswer> {
    if (this.closed) return Promise.reject(new NftError('the nft session is closed'));
    if (this.child !== null && this.served >= NftSession.RECYCLE_AFTER) this.kill(null);
    const child = this.child ?? this.start();
    this.served++;
    const token = `gbsync_${this.nonce}_${++this.seq}`;
    return new Promise<SessionAnswer>((resolve, reject) => {
      // A grid deadline, not a plain timer: cleared after every answer, a plain 10 s timer still woke
      // the idle daemon 10 s after each poll (Node keeps a cleared timer's wake-up; src/sched/grid.ts).
      const timer = grid.deadline(this.timeoutMs, () => this.pending?.done(new NftError(`nft did not answer "${commandLine}" within ${this.timeoutMs} ms`)));
      this.pending = {
        out: [],
        outBytes: 0,
        err: '',
        sync: `list table inet ${token}\n`,
        done: (e) => {
          const p = this.pending;
          if (p === null) return;
          this.pending = null;
          timer.cancel();
          if (e !== null) {
            this.kill(child);
            return reject(e);
          }
          const out = Buffer.concat(p.out).toString('utf8');
          const lines = out.split('\n').filter((l) => l.trim() !== '');
          const syncAt = p.err.lastIndexOf('Error:', p.err.indexOf(token));
          const error = p.err.slice(0, syncAt < 0 ? 0 : syncAt).trim();
          if (lines.length === 1 && error === '') return resolve({ ok: true, json: lines[0] as string });
          if (lines.length === 0 && error !== '') return resolve({ ok: false, error });
          this.kill(child);
          reject(new NftError(`nft session out of step: ${lines.length} line(s) on stdout, ${error === '' ? 'no error' : JSON.stringify(error.slice(0, 200))}`));
        },
      };
      child.stdin.write(`${commandLine}\nlist table inet ${token}\n`);
    });
  }
}

export class Nft {
  private readonly command: readonly string[];
  private readonly timeoutMs: number;
  private readonly maxOutputBytes: number;
  private readonly session: NftSession | null;

  constructor(opts: NftOptions = {}) {
    this.command = opts.command ?? ['nft'];
    this.timeoutMs = opts.timeoutMs ?? 10_000;
    this.maxOutputBytes = opts.maxOutputBytes ?? 32 * 1024 * 1024;
    this.session = opts.session === false ? null : new NftSession(this.command, this.timeoutMs, this.maxOutputBytes);
  }

  /** Ends the listing session, if one runs. */
  close(): Promise<void> {
    return this.session?.close() ?? Promise.resolve();
  }

  /** pid of the long-lived `nft -j -i`, when one runs. */
  get sessionPid(): number | null {
    return this.session?.pid ?? null;
  }

  /** Loads a script as one transaction (`nft -f -`). */
  async load(script: string): Promise<void> {
    const r = await runBounded([...this.command, '-f', '-'], script, this.timeoutMs, this.maxOutputBytes);
    if (r.code !== 0) throw new NftError(`nft -f - failed (exit ${r.code}): ${r.stderr.trim().slice(0, 2000)}`);
  }

  /** `nft -j list table inet NAME` parsed; null when the table does not exist. */
  async listTable(table: string): Promise<unknown | null> {
    if (!TABLE_NAME.test(table)) throw new NftError(`not a table name: ${JSON.stringify(table)}`);
    let text: string;
    if (this.session !== null) {
      const a = await this.session.ask(`list table inet ${table}`);
      if (!a.ok) return missingOr(a.error);
      text = a.json;
    } else {
      const r = await runBounded([...this.command, '-j', 'list', 'table', 'inet', table], null, this.timeoutMs, this.maxOutputBytes);
      if (r.code !== 0) return missingOr(r.stderr);
      text = r.stdout;
    }
    try {
      return JSON.parse(text) as unknown;
    } catch (e) {
      throw new NftError('nft -j printed something that is not JSON', { cause: e });
    }
  }

  async deleteTable(table: string): Promise<void> {
    await this.load(`table inet ${table} {}\ndelete table inet ${table}\n`);
  }

  /** argv for `nft monitor` (the caller spawns it and keeps it running). */
  monitorArgv(): string[] {
    return [...this.command, 'monitor'];
  }
}
