/**
 * Disk full and read-only state, on a small tmpfs this test mounts (root).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, readdir, rm, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { requireSystem } from '../helpers/system.js';
import { buildBundle, deviceStateSnapshot, installPki, payload, tempDir, type BuiltBundle } from './fixtures.js';

const missing = requireSystem(['mount', 'umount'], { root: true });
const MAIN = resolve('dist/cli/main.js');

function run(cmd: string, args: string[]): void {
  const r = spawnSync(cmd, args, { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')}: ${r.stderr}`);
}

function glassbox(args: string[]): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [MAIN, ...args], { encoding: 'utf8', timeout: 60_000 });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

describe.skipIf(missing)(`install on a full or read-only disk${missing ? ` (${missing})` : ''}`, () => {
  let root: string;
  let mnt: string;
  let mounted = false;
  let small: BuiltBundle;
  let big: BuiltBundle;
  let stateDir: string;

  beforeAll(async () => {
    expect(existsSync(MAIN), 'run npm run build').toBe(true);
    root = await tempDir('disk');
    mnt = join(root, 'mnt');
    await mkdir(mnt);
    run('mount', ['-t', 'tmpfs', '-o', 'size=4m,mode=0755', 'glassbox-test', mnt]);
    mounted = true;
    const pki = await installPki();
    const trust = join(root, 'trust.json');
    await writeFile(trust, pki.policyBytes);
    small = await buildBundle(root, pki, { version: '1.0.0', artifacts: [{ name: 'rootfs.img', role: 'rootfs', data: payload(1024 * 1024, 1) }] });
    // Two 1.5 MiB artifacts: the first fits beside the committed slot, the second does not.
    big = await buildBundle(root, pki, {
      version: '2.0.0',
      artifacts: [
        { name: 'kernel.img', role: 'kernel', data: payload(1536 * 1024, 2) },
        { name: 'rootfs.img', role: 'rootfs', data: payload(1536 * 1024, 3) },
      ],
    });
    stateDir = join(mnt, 'state');
    expect(glassbox(['device', 'init', '--state-dir', stateDir, '--trust', trust, '--hardware', 'nvr-8p']).status).toBe(0);
    expect(glassbox(['install', small.path, '--state-dir', stateDir]).status).toBe(0);
    expect(glassbox(['boot-check', '--state-dir', stateDir]).status).toBe(0);
  });

  afterAll(async () => {
    if (mounted) spawnSync('umount', [mnt]);
    if (root) await rm(root, { recursive: true, force: true });
  });

  it('a full disk mid-write is DISK_FULL (exit 2), the state is unchanged and the space is given back', async () => {
    const before = await deviceStateSnapshot(stateDir);
    const r = glassbox(['install', big.path, '--state-dir', stateDir, '--json']);
    expect(r.status).toBe(2);
    expect(JSON.parse(r.stdout)).toMatchObject({ ok: false, code: 'DISK_FULL' });
    expect(r.stderr).toMatch(/no space left on the device while writing/);
    expect(await deviceStateSnapshot(stateDir)).toEqual(before);
    // The half-written slot was removed: the next install that fits succeeds.
    expect((await readdir(join(stateDir, 'slots'))).length).toBe(1);
    expect(glassbox(['install', small.path, '--state-dir', stateDir]).status).toBe(0);
    const st = JSON.parse(glassbox(['status', '--state-dir', stateDir, '--json']).stdout);
    expect(st.slots.map((s: { state: string }) => s.state)).toEqual(['committed', 'pending']);
  });

  it('a read-only state directory is READ_ONLY (exit 2), unchanged, and status still reads it', async () => {
    run('mount', ['-o', 'remount,ro', mnt]);
    try {
      const before = await deviceStateSnapshot(stateDir);
      const r = glassbox(['install', small.path, '--state-dir', stateDir, '--json']);
      expect(r.status).toBe(2);
      expect(JSON.parse(r.stdout)).toMatchObject({ ok: false, code: 'READ_ONLY' });
      expect(await deviceStateSnapshot(stateDir)).toEqual(before);
      expect(glassbox(['status', '--state-dir', stateDir]).status).toBe(0);
      expect(glassbox(['boot-check', '--state-dir', stateDir, '--json']).status).toBe(2);
    } finally {
      run('mount', ['-o', 'remount,rw', mnt]);
    }
  });
});
