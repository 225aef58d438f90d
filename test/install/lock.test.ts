import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { acquireLock, currentBootId, lockInfo, processStartTime, LOCK_NAME } from '../../src/install/lock.js';
import { tempDir } from './fixtures.js';

let root: string;
beforeAll(async () => {
  root = await tempDir('lock');
});
afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

let n = 0;
async function dir(): Promise<string> {
  const d = join(root, `d${++n}`);
  await mkdir(d);
  return d;
}

/** The pid of a process that has exited (so it is certainly not alive, unless reused: checked). */
function deadPid(): number {
  const r = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))'], { encoding: 'utf8' });
  return Number(r.stdout);
}

function lockFile(fields: Record<string, unknown>): string {
  return JSON.stringify({ pid: 1, procStart: null, bootId: currentBootId(), nonce: 'aa', command: 'install', since: '2026-01-01T00:00:00.000Z', ...fields }) + '\n';
}

describe('install lock', () => {
  it('a live holder makes a second acquisition fail with LOCKED; release frees it', async () => {
    const d = await dir();
    const first = await acquireLock(d, 'install', new Date());
    await expect(acquireLock(d, 'install', new Date())).rejects.toMatchObject({ code: 'LOCKED' });
    await first.release();
    const second = await acquireLock(d, 'install', new Date());
    expect(second.tookOver).toBeNull();
    await second.release();
    expect(existsSync(join(d, LOCK_NAME))).toBe(false);
  });

  it.each([
    ['the holder process is gone', () => lockFile({ pid: deadPid() }), /is gone/],
    ['the machine rebooted since', () => lockFile({ pid: process.pid, bootId: '00000000-0000-0000-0000-000000000000' }), /before the last reboot/],
    ['the pid now belongs to another process', () => lockFile({ pid: process.pid, procStart: '1' }), /another process/],
    ['the lock file is garbage', () => 'not json', /unreadable/],
  ])('a stale lock is taken over when %s', async (_what, content, reason) => {
    const d = await dir();
    await writeFile(join(d, LOCK_NAME), content());
    expect((await lockInfo(d))?.stale).toMatch(reason);
    const lock = await acquireLock(d, 'install', new Date());
    expect(lock.tookOver).toMatch(reason);
    expect(JSON.parse(await readFile(join(d, LOCK_NAME), 'utf8'))).toMatchObject({ pid: process.pid, procStart: processStartTime(process.pid) });
    await lock.release();
  });

  it('assertHeld fails once someone else holds the lock file', async () => {
    const d = await dir();
    const lock = await acquireLock(d, 'install', new Date());
    await lock.assertHeld();
    await writeFile(join(d, LOCK_NAME), lockFile({ pid: process.pid }));
    await expect(lock.assertHeld()).rejects.toMatchObject({ code: 'STATE_CONFLICT' });
  });

  it('processes racing to take over the same stale lock never hold it at the same time', async () => {
    const lockJs = resolve('dist/install/lock.js');
    expect(existsSync(lockJs), 'run npm run build').toBe(true);
    const d = await dir();
    const log = join(d, 'log');
    await writeFile(join(d, LOCK_NAME), lockFile({ pid: deadPid() }));
    const script = `
      const { acquireLock } = await import(${JSON.stringify(lockJs)});
      const { appendFileSync } = await import('node:fs');
      const log = ${JSON.stringify(log)};
      let got = 0;
      for (let i = 0; i < 40 && got < 3; i++) {
        try {
          const l = await acquireLock(${JSON.stringify(d)}, 'install', new Date());
          appendFileSync(log, 'enter ' + process.pid + '\\n');
          await new Promise((r) => setTimeout(r, 5));
          appendFileSync(log, 'exit ' + process.pid + '\\n');
          await l.release();
          got++;
        } catch (e) {
          if (e.code !== 'LOCKED') throw e;
          await new Promise((r) => setTimeout(r, Math.random() * 10));
        }
      }
    `;
    const children = Array.from({ length: 6 }, () => spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: ['ignore', 'inherit', 'inherit'] }));
    const codes = await Promise.all(children.map((c) => new Promise<number | null>((r) => c.on('close', r))));
    expect(codes.every((c) => c === 0)).toBe(true);
    const lines = (await readFile(log, 'utf8')).trim().split('\n');
    expect(lines.length).toBeGreaterThan(6);
    // Strict alternation: enter X, exit X, enter Y, exit Y, …
    for (let i = 0; i < lines.length; i += 2) {
      const [a, pa] = lines[i]!.split(' ');
      const [b, pb] = (lines[i + 1] ?? '').split(' ');
      expect([a, b, pa === pb]).toEqual(['enter', 'exit', true]);
    }
  });
});
