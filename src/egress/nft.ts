/**
 * The edge to nftables: the `nft` command, run without a shell, with a
 * bounded output and a timeout. Tests pass their own `nft` path (or a
 * prefix such as `ip netns exec NAME nft`) through NftOptions.
 */
import { spawn } from 'node:child_process';
import { GlassboxError } from '../errors.js';

export interface NftOptions {
  /** Command and leading arguments: default ['nft']. */
  readonly command?: readonly string[];
  readonly timeoutMs?: number;
  /** Largest stdout accepted (a listing of a table with full dynamic sets stays well below). */
  readonly maxOutputBytes?: number;
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

export class Nft {
  private readonly command: readonly string[];
  private readonly timeoutMs: number;
  private readonly maxOutputBytes: number;

  constructor(opts: NftOptions = {}) {
    this.command = opts.command ?? ['nft'];
    this.timeoutMs = opts.timeoutMs ?? 10_000;
    this.maxOutputBytes = opts.maxOutputBytes ?? 32 * 1024 * 1024;
  }

  /** Loads a script as one transaction (`nft -f -`). */
  async load(script: string): Promise<void> {
    const r = await runBounded([...this.command, '-f', '-'], script, this.timeoutMs, this.maxOutputBytes);
    if (r.code !== 0) throw new NftError(`nft -f - failed (exit ${r.code}): ${r.stderr.trim().slice(0, 2000)}`);
  }

  /** `nft -j list table inet NAME` parsed; null when the table does not exist. */
  async listTable(table: string): Promise<unknown | null> {
    const r = await runBounded([...this.command, '-j', 'list', 'table', 'inet', table], null, this.timeoutMs, this.maxOutputBytes);
    if (r.code !== 0) {
      if (/No such file or directory|does not exist/i.test(r.stderr)) return null;
      throw new NftError(`nft list table failed (exit ${r.code}): ${r.stderr.trim().slice(0, 2000)}`);
    }
    try {
      return JSON.parse(r.stdout) as unknown;
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
