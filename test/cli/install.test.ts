/**
 * The install-side commands as a technician runs them: spawn the built CLI
 * (npm test builds dist/ first).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { readFile, rm, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import type { TestPki } from '../helpers/pki.js';
import { buildBundle, deviceStateSnapshot, installPki, tempDir, writeHook, type BuiltBundle } from '../install/fixtures.js';

const MAIN = resolve('dist/cli/main.js');

interface Run {
  status: number | null;
  stdout: string;
  stderr: string;
}

function glassbox(args: string[], opts: { env?: Record<string, string>; input?: Buffer } = {}): Run {
  const r = spawnSync(process.execPath, [MAIN, ...args], { encoding: 'utf8', env: { ...process.env, ...opts.env }, input: opts.input, timeout: 60_000 });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

let root: string;
let pki: TestPki;
let trustFile: string;
let v1: BuiltBundle;
let v2: BuiltBundle;
let v0: BuiltBundle;

beforeAll(async () => {
  expect(existsSync(MAIN), 'dist/cli/main.js missing: run npm run build').toBe(true);
  root = await tempDir('cli-install');
  pki = await installPki();
  trustFile = join(root, 'trust.json');
  await writeFile(trustFile, pki.policyBytes);
  v0 = await buildBundle(root, pki, { version: '0.9.0', securityVersion: 1 });
  v1 = await buildBundle(root, pki, { version: '1.0.0', securityVersion: 2 });
  v2 = await buildBundle(root, pki, { version: '2.0.0', securityVersion: 3 });
});
afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

let n = 0;
function init(): string {
  const dir = join(root, `dev-${++n}`);
  const r = glassbox(['device', 'init', '--state-dir', dir, '--trust', trustFile, '--hardware', 'nvr-8p']);
  expect(r.status, r.stderr).toBe(0);
  return dir;
}

describe('glassbox device init', () => {
  it('initialises once, then refuses (exit 2, ALREADY_INITIALISED)', () => {
    const dir = init();
    const again = glassbox(['device', 'init', '--state-dir', dir, '--trust', trustFile, '--hardware', 'nvr-8p', '--json']);
    expect(again.status).toBe(2);
    expect(JSON.parse(again.stdout)).toMatchObject({ ok: false, code: 'ALREADY_INITIALISED' });
  });

  it('takes the state directory from GLASSBOX_STATE_DIR', () => {
    const dir = join(root, 'from-env');
    expect(glassbox(['device', 'init', '--trust', trustFile, '--hardware', 'nvr-8p'], { env: { GLASSBOX_STATE_DIR: dir } }).status).toBe(0);
    const st = glassbox(['status', '--json'], { env: { GLASSBOX_STATE_DIR: dir } });
    expect(JSON.parse(st.stdout)).toMatchObject({ stateDir: dir, active: null });
  });
});

describe('glassbox install / boot-check / status / rollback', () => {
  it('installs from a file, confirms at boot-check, and reports it in status', () => {
    const dir = init();
    const r = glassbox(['install', v1.path, '--state-dir', dir]);
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/installed 1\.0\.0 .* into slot a: pending/);

    let st = JSON.parse(glassbox(['status', '--state-dir', dir, '--json']).stdout);
    expect(st.schema).toBe('glassbox.status/v1');
    expect(st.active).toBe('a');
    expect(st.slots[0]).toMatchObject({ id: 'a', state: 'pending', version: '1.0.0', securityVersion: 2, manifestSha256: v1.manifestSha256, active: true });
    expect(st.slots[1]).toMatchObject({ id: 'b', state: 'empty', active: false });
    expect(st.lastInstall).toMatchObject({ outcome: 'ok', version: '1.0.0' });
    expect(st.next).toMatch(/Restart the recorder/);

    const b = glassbox(['boot-check', '--state-dir', dir]);
    expect(b.status, b.stderr).toBe(0);
    expect(b.stdout).toMatch(/committed; security floor now 2/);
    st = JSON.parse(glassbox(['status', '--state-dir', dir, '--json']).stdout);
    expect(st.slots[0].state).toBe('committed');
    expect(st.securityFloor).toBe(2);
    const human = glassbox(['status', '--state-dir', dir]).stdout;
    expect(human).toMatch(/Running slot a: 1\.0\.0 \(committed\)/);
    expect(human).toMatch(/Next: Nothing to do/);
  });

  it('reads a bundle from standard input with -', () => {
    const dir = init();
    const r = glassbox(['install', '-', '--state-dir', dir, '--json'], { input: readFileSync(v1.path) });
    expect(r.status, r.stderr).toBe(0);
    const out = JSON.parse(r.stdout);
    expect(out).toMatchObject({ ok: true, slot: 'a', verification: { ok: true, manifest: { version: '1.0.0' } } });
    expect(out.verification.manifestBytes).toBeUndefined();
  });

  it('a refused bundle exits 1 with the spec code, changes nothing, and status tells the technician what to do', async () => {
    const dir = init();
    expect(glassbox(['install', v2.path, '--state-dir', dir]).status).toBe(0);
    expect(glassbox(['boot-check', '--state-dir', dir]).status).toBe(0);
    const before = await deviceStateSnapshot(dir);
    const r = glassbox(['install', v0.path, '--state-dir', dir, '--json']);
    expect(r.status).toBe(1);
    expect(JSON.parse(r.stdout)).toMatchObject({ ok: false, code: 'ROLLBACK' });
    expect(r.stderr).toMatch(/ROLLBACK/);
    expect(await deviceStateSnapshot(dir)).toEqual(before);
    const human = glassbox(['status', '--state-dir', dir]).stdout;
    expect(human).toMatch(/Last install: .* rejected ROLLBACK/);
    expect(human).toMatch(/Next: The last install was refused \(ROLLBACK\): the bundle is older/);
  });

  it('a truncated stream on standard input (stick pulled) is refused and changes nothing', async () => {
    const dir = init();
    const before = await deviceStateSnapshot(dir);
    const bytes = await readFile(v1.path);
    const r = glassbox(['install', '-', '--state-dir', dir], { input: bytes.subarray(0, Math.floor(bytes.length * 0.7)) });
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/BUNDLE_FORMAT: truncated/);
    expect(await deviceStateSnapshot(dir)).toEqual(before);
  });

  it('usage and I/O errors exit 2', () => {
    const dir = init();
    expect(glassbox(['install', join(root, 'missing.tar'), '--state-dir', dir]).status).toBe(2);
    const r = glassbox(['install', v1.path, '--state-dir', join(root, 'not-initialised'), '--json']);
    expect(r.status).toBe(2);
    expect(JSON.parse(r.stdout)).toMatchObject({ code: 'NOT_INITIALISED' });
    expect(glassbox(['install', '--state-dir', dir]).status).toBe(2);
  });

  it('boot-check exits 1 on a failed start and falls back after three; status explains; rollback below the floor is refused', async () => {
    const dir = init();
    expect(glassbox(['install', v1.path, '--state-dir', dir]).status).toBe(0);
    expect(glassbox(['boot-check', '--state-dir', dir]).status).toBe(0);
    expect(glassbox(['install', v2.path, '--state-dir', dir]).status).toBe(0);
    await writeHook(dir, '20-recording', 'echo "recording disk /dev/sdb missing"; exit 1');
    for (let i = 1; i <= 2; i++) {
      const r = glassbox(['boot-check', '--state-dir', dir, '--json']);
      expect(r.status).toBe(1);
      expect(JSON.parse(r.stdout)).toMatchObject({ ok: false, outcome: 'retry', attempt: i, maxAttempts: 3 });
    }
    const last = glassbox(['boot-check', '--state-dir', dir]);
    expect(last.status).toBe(1);
    expect(last.stderr).toMatch(/fell-back/);
    const st = JSON.parse(glassbox(['status', '--state-dir', dir, '--json']).stdout);
    expect(st.active).toBe('a');
    expect(st.slots[1]).toMatchObject({ id: 'b', state: 'failed', failure: { code: 'HEALTH_CHECK_FAILED' } });
    expect(st.lastBoot).toMatchObject({ outcome: 'fell-back' });
    expect(st.lastBoot.reason).toMatch(/recording disk \/dev\/sdb missing/);
    const human = glassbox(['status', '--state-dir', dir]).stdout;
    expect(human).toMatch(/why: health hook 20-recording exited with status 1: recording disk \/dev\/sdb missing/);
    expect(human).toMatch(/Next: The last update did not pass its start checks/);

    // Commit 2.0.0 properly, then rolling back to 1.0.0 (securityVersion 2 < floor 3) is refused.
    await rm(join(dir, 'health.d', '20-recording'));
    expect(glassbox(['install', v2.path, '--state-dir', dir]).status).toBe(0);
    expect(glassbox(['boot-check', '--state-dir', dir]).status).toBe(0);
    const rb = glassbox(['rollback', '--state-dir', dir, '--json']);
    expect(rb.status).toBe(1);
    expect(JSON.parse(rb.stdout)).toMatchObject({ ok: false, code: 'ROLLBACK' });
  });

  it('a live install holds the lock: a second one is told LOCKED (exit 2)', async () => {
    const dir = init();
    // A slow source keeps the first install inside its lock.
    const child = spawn(process.execPath, [MAIN, 'install', '-', '--state-dir', dir], { stdio: ['pipe', 'pipe', 'pipe'] });
    const bytes = await readFile(v1.path);
    child.stdin.write(bytes.subarray(0, 4096));
    await new Promise((r) => setTimeout(r, 800));
    const second = glassbox(['install', v1.path, '--state-dir', dir, '--json']);
    expect(second.status).toBe(2);
    expect(JSON.parse(second.stdout)).toMatchObject({ code: 'LOCKED' });
    expect(glassbox(['status', '--state-dir', dir]).stdout).toMatch(/Lock: install running \(pid \d+/);
    child.stdin.end(bytes.subarray(4096));
    const code = await new Promise<number | null>((r) => child.on('close', r));
    expect(code).toBe(0);
  });
});
