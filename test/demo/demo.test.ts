/**
 * `glassbox demo` (what `npm start` runs) from a newcomer's point of view:
 * spawns the built CLI in a fresh directory.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { tempDir, removeTempDirs } from '../release/fixtures.js';

afterAll(removeTempDirs);

const MAIN = resolve('dist/cli/main.js');

function demo(cwd: string, args: string[] = []): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [MAIN, 'demo', ...args], { cwd, encoding: 'utf8', timeout: 120_000 });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

describe('glassbox demo', () => {
  it('runs with no setup in .glassbox-dev/ of the current directory: accepted, then tampered copy refused', async () => {
    const cwd = await tempDir('demo');
    const r = demo(cwd);
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    const out = r.stdout;
    expect(out).toContain('created .glassbox-dev/pki');
    expect(out).toMatch(/3\. Build \(unsigned\)[\s\S]*verify: REJECTED THRESHOLD_NOT_MET/);
    expect(out).toMatch(/signer 1: signatures\/1\.sig[\s\S]*verify: REJECTED THRESHOLD_NOT_MET[\s\S]*signer 2: signatures\/2\.sig/);
    expect(out).toMatch(/5\. Verify\n {3}ACCEPTED hss-nvr 4\.2\.0-demo\.1 .*2 of 2 required signers valid; hardware nvr-8p listed/);
    expect(out).toContain('provenance: built by https://ci.hss.example/builders/demo from https://git.hss.example/nvr/firmware at commit 4f6c2b1e');
    expect(out).toMatch(/6\. Tamper[\s\S]*verify: REJECTED ARTIFACT_DIGEST: artifact rootfs\.img/);
    expect(existsSync(join(cwd, '.glassbox-dev', 'release', 'generated', 'sbom.cdx.json'))).toBe(true);

    // the printed verify command works as printed
    const verify = spawnSync(process.execPath, [MAIN, 'verify', '.glassbox-dev/release/firmware.bundle', '--trust', '.glassbox-dev/pki/trust-policy.json', '--hardware', 'nvr-8p'], {
      cwd,
      encoding: 'utf8',
    });
    expect(verify.status).toBe(0);
  }, 120_000);

  it('is idempotent: a second run reuses the PKI and rebuilds the release; --json gives every verdict', async () => {
    const cwd = await tempDir('demo');
    const dir = join(cwd, 'work');
    expect(demo(cwd, ['--dir', dir]).status).toBe(0);
    const policy = await readFile(join(dir, 'pki', 'trust-policy.json'));
    const again = demo(cwd, ['--dir', dir, '--json']);
    expect(again.status).toBe(0);
    const res = JSON.parse(again.stdout) as {
      ok: boolean;
      pki: { reused: boolean };
      unsigned: { code: string };
      oneSignature: { code: string };
      signed: { ok: boolean; signers: { outcome: string }[] };
      tampered: { code: string };
    };
    expect(res.ok).toBe(true);
    expect(res.pki.reused).toBe(true);
    expect(res.unsigned.code).toBe('THRESHOLD_NOT_MET');
    expect(res.oneSignature.code).toBe('THRESHOLD_NOT_MET');
    expect(res.signed.ok).toBe(true);
    expect(res.signed.signers.map((s) => s.outcome)).toEqual(['valid', 'valid']);
    expect(res.tampered.code).toBe('ARTIFACT_DIGEST');
    expect((await readFile(join(dir, 'pki', 'trust-policy.json'))).equals(policy)).toBe(true);
  }, 120_000);

  it('recreates a damaged PKI cleanly, and never deletes what it did not make', async () => {
    const cwd = await tempDir('demo');
    const dir = join(cwd, 'work');
    expect(demo(cwd, ['--dir', dir]).status).toBe(0);
    await rm(join(dir, 'pki', 'signer-2.key'));
    const repaired = demo(cwd, ['--dir', dir]);
    expect(repaired.status).toBe(0);
    expect(repaired.stdout).toContain("signer 2's key or chain file is missing");

    await writeFile(join(dir, 'pki', 'my-notes.txt'), 'mine');
    await rm(join(dir, 'pki', 'pki.json'));
    const refused = demo(cwd, ['--dir', dir]);
    expect(refused.status).toBe(2);
    expect(refused.stderr).toContain('my-notes.txt');
    expect(await readFile(join(dir, 'pki', 'my-notes.txt'), 'utf8')).toBe('mine');

    const other = join(cwd, 'other');
    await mkdir(join(other, 'release'), { recursive: true });
    await writeFile(join(other, 'release', 'thesis.tex'), 'mine');
    const refusedRelease = demo(cwd, ['--dir', other]);
    expect(refusedRelease.status).toBe(2);
    expect(refusedRelease.stderr).toContain('was not made by the demo');
    expect(await readFile(join(other, 'release', 'thesis.tex'), 'utf8')).toBe('mine');
  }, 180_000);
});
