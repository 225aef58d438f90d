/**
 * `nft monitor` kept running: every ruleset change anywhere in the
 * namespace wakes the integrity check at once, instead of at the next poll.
 * The lines themselves are not trusted or parsed beyond a hint; the check
 * compares the table with what the daemon installed.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { StringDecoder } from 'node:string_decoder';
import { LineSplitter } from './conntrack-parse.js';

export class NftMonitor {
  private child: ChildProcess | null = null;
  private stopping = false;
  private timer: NodeJS.Timeout | null = null;

  constructor(
    private readonly argv: readonly string[],
    private readonly onChange: (line: string) => void,
    private readonly onError: (message: string) => void,
  ) {}

  start(): void {
    this.stopping = false;
    this.spawnOnce();
  }

  private spawnOnce(): void {
    const [cmd, ...args] = this.argv as [string, ...string[]];
    const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    this.child = child;
    const dec = new StringDecoder('utf8');
    const lines = new LineSplitter(8192);
    child.stdout!.on('data', (c: Buffer) => {
      for (const l of lines.push(dec.write(c))) if (l.trim() !== '') this.onChange(l);
    });
    child.stderr!.on('data', (c: Buffer) => this.onError(`nft monitor: ${c.toString('utf8').trim().slice(0, 300)}`));
    child.on('error', (e) => this.onError(`cannot run nft monitor: ${e.message}`));
    child.on('close', () => {
      if (this.child === child) this.child = null;
      if (this.stopping) return;
      // A restart can miss a change in between: report it as a change to force a check.
      this.onChange('monitor restarted');
      this.timer = setTimeout(() => this.spawnOnce(), 1000);
    });
  }

  stop(): Promise<void> {
    this.stopping = true;
    if (this.timer) clearTimeout(this.timer);
    const child = this.child;
    if (!child) return Promise.resolve();
    return new Promise((resolve) => {
      child.once('close', () => resolve());
      child.kill('SIGTERM');
    });
  }
}
