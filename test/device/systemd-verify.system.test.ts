/**
 * `systemd-analyze verify` on the units of device/systemd/, in a scratch
 * root: systemd's own units copied in and an executable at the ExecStart
 * path, so the files are checked as they are, unmodified. Any complaint
 * naming one of our units fails (verify exits 0 on unknown keys and only
 * prints them). Needs systemd-analyze (Debian package `systemd`).
 */
import { spawnSync } from 'node:child_process';
import { chmod, cp, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { requireSystem } from '../helpers/system.js';

const missing = requireSystem(['systemd-analyze']);
const src = join(import.meta.dirname, '..', '..', 'device', 'systemd');
const UNITS = ['glassbox.service', 'glassbox-boot-check.service'];

describe.skipIf(missing)('device/systemd units pass systemd-analyze verify', () => {
  let root = '';
  beforeAll(async () => {
    root = await mkdtemp(join(tmpdir(), 'gb-systemd-'));
    await mkdir(join(root, 'usr/local/bin'), { recursive: true });
    await mkdir(join(root, 'etc/systemd/system'), { recursive: true });
    await mkdir(join(root, 'usr/lib/systemd'), { recursive: true });
    if (existsSync('/usr/lib/systemd/system')) await cp('/usr/lib/systemd/system', join(root, 'usr/lib/systemd/system'), { recursive: true, verbatimSymlinks: true });
    await writeFile(join(root, 'usr/local/bin/glassbox'), '#!/bin/sh\nexit 0\n');
    await chmod(join(root, 'usr/local/bin/glassbox'), 0o755);
  });
  afterAll(async () => {
    if (root) await rm(root, { recursive: true, force: true });
  });

  function verify(files: Record<string, string>): { status: number | null; complaints: string[]; output: string } {
    const paths = Object.keys(files).map((name) => join(root, 'etc/systemd/system', name));
    const r = spawnSync('systemd-analyze', ['verify', `--root=${root}`, '--man=no', ...paths], { encoding: 'utf8', timeout: 60_000 });
    const output = `${r.stdout}${r.stderr}`;
    const complaints = output.split('\n').filter((l) => Object.keys(files).some((n) => l.includes(n)));
    return { status: r.status, complaints, output };
  }

  async function install(files: Record<string, string>): Promise<void> {
    for (const [name, text] of Object.entries(files)) await writeFile(join(root, 'etc/systemd/system', name), text);
  }

  it('accepts both units without a single complaint', async () => {
    const files: Record<string, string> = {};
    for (const u of UNITS) files[u] = await readFile(join(src, u), 'utf8');
    await install(files);
    const r = verify(files);
    expect(r.complaints, r.output).toEqual([]);
    expect(r.status, r.output).toBe(0);
  });

  it('complains about a unit with a bad value and an unknown key (the check can fail)', async () => {
    const good = await readFile(join(src, 'glassbox.service'), 'utf8');
    const bad = { 'glassbox-bad.service': good.replace('Type=notify', 'Type=notifyy').replace('[Install]', 'NotAKey=1\n[Install]') };
    await install(bad);
    const r = verify(bad);
    expect(r.complaints.join('\n')).toMatch(/notifyy/);
    expect(r.complaints.join('\n')).toMatch(/NotAKey/);
  });
});
