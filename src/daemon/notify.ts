/**
 * systemd readiness and watchdog. Node has no AF_UNIX datagram sockets, so
 * the notifications are sent by spawning `systemd-notify --no-block`
 * (about 5 ms of CPU per call). Because the sender is then a child process,
 * the unit needs `NotifyAccess=all` (device/systemd/glassbox.service sets it).
 * The watchdog ping goes every WATCHDOG_USEC/2, and only while the
 * daemon's event loop turns (a timer of this process sends it).
 */
import { execFile } from 'node:child_process';
import type { Logger } from '../log/logger.js';

export interface NotifierOptions {
  readonly env: Readonly<Record<string, string | undefined>>;
  readonly log: Logger;
  /** Path or name of systemd-notify. */
  readonly binary?: string;
}

export class SystemdNotifier {
  private timer: NodeJS.Timeout | null = null;
  private missing = false;
  readonly enabled: boolean;
  readonly watchdogMs: number | null;

  constructor(private readonly o: NotifierOptions) {
    this.enabled = typeof o.env['NOTIFY_SOCKET'] === 'string' && o.env['NOTIFY_SOCKET'] !== '';
    const usec = Number(o.env['WATCHDOG_USEC'] ?? '');
    const pid = o.env['WATCHDOG_PID'];
    const forUs = pid === undefined || pid === '' || Number(pid) === process.pid;
    this.watchdogMs = this.enabled && forUs && Number.isFinite(usec) && usec > 0 ? Math.max(1000, Math.floor(usec / 2000)) : null;
  }

  private send(...fields: string[]): Promise<void> {
    if (!this.enabled || this.missing) return Promise.resolve();
    return new Promise((resolve) => {
      execFile(this.o.binary ?? 'systemd-notify', ['--no-block', ...fields], { timeout: 5000, env: { ...process.env, NOTIFY_SOCKET: this.o.env['NOTIFY_SOCKET'] } }, (err) => {
        if (err) {
          if ((err as NodeJS.ErrnoException).code === 'ENOENT') {
            this.missing = true;
            this.o.log.warn('NOTIFY_SOCKET is set but systemd-notify is not installed: no readiness or watchdog notifications');
          } else this.o.log.warn({ err: err.message, fields }, 'systemd-notify failed');
        }
        resolve();
      });
    });
  }

  async ready(status: string): Promise<void> {
    await this.send('--ready', `--status=${status.slice(0, 200)}`);
    if (this.watchdogMs !== null && this.timer === null) {
      this.timer = setInterval(() => void this.send('WATCHDOG=1'), this.watchdogMs);
      this.timer.unref();
      this.o.log.info({ intervalMs: this.watchdogMs }, 'systemd watchdog pings enabled');
    }
  }

  async stopping(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    await this.send('STOPPING=1');
  }
}
