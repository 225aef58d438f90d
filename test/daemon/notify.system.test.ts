/** Readiness and watchdog reach a NOTIFY_SOCKET (a socat datagram listener stands in for systemd). */
import { spawn } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { SystemdNotifier } from '../../src/daemon/notify.js';
import { requireSystem } from '../helpers/system.js';

const missing = requireSystem(['socat', 'systemd-notify']);

describe.skipIf(missing)('systemd notification', () => {
  it('sends READY=1, WATCHDOG=1 at WATCHDOG_USEC/2 and STOPPING=1', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'gb-notify-'));
    const sock = join(dir, 'notify.sock');
    const out = join(dir, 'out');
    const listener = spawn('socat', ['-u', `UNIX-RECV:${sock}`, `OPEN:${out},creat,append`], { stdio: 'ignore' });
    try {
      for (let i = 0; i < 50; i++) {
        if (await readFile(sock).catch((e: NodeJS.ErrnoException) => e.code !== 'ENOENT')) break;
        await new Promise((r) => setTimeout(r, 20));
      }
      const n = new SystemdNotifier({ env: { NOTIFY_SOCKET: sock, WATCHDOG_USEC: '2000000' }, log: pino({ level: 'silent' }) });
      expect(n.watchdogMs).toBe(1000);
      await n.ready('test');
      await new Promise((r) => setTimeout(r, 2300));
      await n.stopping();
      await new Promise((r) => setTimeout(r, 200));
      const got = await readFile(out, 'utf8');
      expect(got).toContain('READY=1');
      expect(got.split('WATCHDOG=1').length - 1).toBeGreaterThanOrEqual(2);
      expect(got).toContain('STOPPING=1');
    } finally {
      listener.kill();
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('does nothing without NOTIFY_SOCKET', () => {
    const n = new SystemdNotifier({ env: {}, log: pino({ level: 'silent' }) });
    expect(n.enabled).toBe(false);
    expect(n.watchdogMs).toBeNull();
  });
});
