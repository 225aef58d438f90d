/**
 * `glassbox verify` end to end: spawns the built CLI (npm run build first;
 * `npm test` does) on bundles and policies written to a temp directory.
 */
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseAt, parseSecurityFloor } from '../../src/cli/verify.js';
import { makeTestPki, type TestPki } from '../helpers/pki.js';
import { makeBundle, type TestBundle } from '../helpers/bundle.js';

const MAIN = resolve('dist/cli/main.js');
let dir: string;
let pki: TestPki;
let good: TestBundle;
const path = (name: string): string => join(dir, name);
const AT = '2026-06-01T12:00:00Z';

function glassbox(args: string[], input?: Buffer): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [MAIN, ...args], { input, encoding: 'utf8', timeout: 60_000 });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

beforeAll(async () => {
  if (!existsSync(MAIN)) throw new Error(`${MAIN} is missing: run npm run build first`);
  dir = await mkdtemp(join(tmpdir(), 'gbx-cli-verify-'));
  pki = await makeTestPki();
  good = makeBundle(pki);
  await writeFile(path('good.tar'), good.tar);
  await writeFile(path('policy.json'), pki.policyBytes);
  await writeFile(path('unsigned.tar'), makeBundle(pki, { signers: [] }).tar);
  await writeFile(path('policy-invalid.json'), '{"schema":"glassbox.trust/v1"}');
});

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('exit 0: accepted', () => {
  test('one ACCEPTED line', () => {
    const r = glassbox(['verify', path('good.tar'), '--trust', path('policy.json'), '--at', AT]);
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout.trim().split('\n')).toHaveLength(1);
    expect(r.stdout).toMatch(/^ACCEPTED hss-nvr 2\.4\.1 \(securityVersion 12, sha256 [0-9a-f]{12}…\): 2 of 2 required signers valid; hardware check skipped \(no --hardware\)\n$/);
  });

  test('from standard input, with hardware and floor', () => {
    const r = glassbox(['verify', '-', '--trust', path('policy.json'), '--at', AT, '--hardware', 'nvr-8p', '--security-floor', '12'], good.tar);
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toContain('hardware nvr-8p listed');
  });

  test('--json prints the report', () => {
    const r = glassbox(['verify', path('good.tar'), '--trust', path('policy.json'), '--at', AT, '--json']);
    expect(r.status, r.stderr).toBe(0);
    const report = JSON.parse(r.stdout) as Record<string, unknown>;
    expect(report).toMatchObject({
      ok: true,
      code: null,
      manifest: { product: 'hss-nvr', version: '2.4.1', securityVersion: 12, hardware: ['nvr-8p', 'nvr-16p'], released: '2026-05-01T12:00:00Z', expires: '2027-05-01T12:00:00Z' },
      provenance: { sourceRepository: 'https://git.hss.example/nvr/firmware', sourceCommit: '0123456789abcdef0123456789abcdef01234567', builder: 'https://ci.hss.example/builders/release' },
      hardwareCheck: 'skipped',
      threshold: 2,
      distinctValidSigners: 2,
      at: '2026-06-01T12:00:00.000Z',
      securityFloor: 0,
    });
    expect((report['manifest'] as { sha256: string }).sha256).toMatch(/^[0-9a-f]{64}$/);
    const signers = report['signers'] as Array<Record<string, unknown>>;
    expect(signers).toHaveLength(2);
    for (const s of signers) {
      expect(Object.keys(s).sort()).toEqual(['index', 'outcome', 'reason', 'spkiSha256', 'subject']);
      expect(s['outcome']).toBe('valid');
    }
    expect((report['artifacts'] as Array<{ outcome: string }>).map((a) => a.outcome)).toEqual(['ok', 'ok', 'ok', 'ok']);
    expect(report).not.toHaveProperty('manifestBytes');
    expect(report).not.toHaveProperty('manifestObject');
  });
});

describe('exit 1: rejected with one code', () => {
  test('a flipped byte: REJECTED ARTIFACT_DIGEST', async () => {
    const bad = Buffer.from(good.tar);
    const at = bad.length - 1024 - 600; // inside the last entry's data (provenance, < 512 bytes of padding after it)
    bad[at] = bad[at]! ^ 1;
    await writeFile(path('flipped.tar'), bad);
    const r = glassbox(['verify', path('flipped.tar'), '--trust', path('policy.json'), '--at', AT]);
    expect(r.status).toBe(1);
    expect(r.stdout).toMatch(/^REJECTED ARTIFACT_DIGEST: artifact provenance\.intoto\.json: sha256 [0-9a-f]{64} differs from the manifest's [0-9a-f]{64}\n$/);
  });

  test('no signatures: THRESHOLD_NOT_MET, and --json names it', () => {
    const r = glassbox(['verify', path('unsigned.tar'), '--trust', path('policy.json'), '--at', AT, '--json']);
    expect(r.status).toBe(1);
    expect(JSON.parse(r.stdout)).toMatchObject({ ok: false, code: 'THRESHOLD_NOT_MET', signers: [] });
  });

  test('expired at --at: MANIFEST_EXPIRED', () => {
    const r = glassbox(['verify', path('good.tar'), '--trust', path('policy.json'), '--at', '2027-05-01T12:00:01Z']);
    expect(r.status).toBe(1);
    expect(r.stdout).toMatch(/^REJECTED MANIFEST_EXPIRED: /);
  });

  test('wrong hardware and a higher floor', () => {
    expect(glassbox(['verify', path('good.tar'), '--trust', path('policy.json'), '--at', AT, '--hardware', 'cam-1']).stdout).toMatch(/^REJECTED HARDWARE_MISMATCH/);
    expect(glassbox(['verify', path('good.tar'), '--trust', path('policy.json'), '--at', AT, '--security-floor', '13']).stdout).toMatch(/^REJECTED ROLLBACK/);
  });

  test('garbage on standard input: BUNDLE_FORMAT', () => {
    const r = glassbox(['verify', '-', '--trust', path('policy.json'), '--at', AT], Buffer.from('hello'));
    expect(r.status).toBe(1);
    expect(r.stdout).toMatch(/^REJECTED BUNDLE_FORMAT/);
  });
});

describe('exit 2: usage and I/O', () => {
  test.each<[string, string[]]>([
    ['a missing bundle file', ['verify', 'DIR/absent.tar', '--trust', 'DIR/policy.json']],
    ['a missing policy file', ['verify', 'DIR/good.tar', '--trust', 'DIR/absent.json']],
    ['an endless policy file', ['verify', 'DIR/good.tar', '--trust', '/dev/zero']],
    ['an invalid policy', ['verify', 'DIR/good.tar', '--trust', 'DIR/policy-invalid.json']],
    ['no --trust', ['verify', 'DIR/good.tar']],
    ['a bad --at', ['verify', 'DIR/good.tar', '--trust', 'DIR/policy.json', '--at', 'yesterday']],
    ['a non-numeric floor', ['verify', 'DIR/good.tar', '--trust', 'DIR/policy.json', '--security-floor', '1.5']],
    ['a directory as bundle', ['verify', 'DIR', '--trust', 'DIR/policy.json']],
    ['no bundle argument', ['verify', '--trust', 'DIR/policy.json']],
  ])('%s', (_name, args) => {
    const r = glassbox(args.map((a) => a.replace('DIR', dir)));
    expect(r.status, r.stdout + r.stderr).toBe(2);
    expect(r.stderr.length).toBeGreaterThan(0);
  });

  test('an invalid policy comes first, whatever the bundle (missing, or garbage that would be BUNDLE_FORMAT)', () => {
    const missing = glassbox(['verify', path('absent.tar'), '--trust', path('policy-invalid.json'), '--json']);
    const garbage = glassbox(['verify', '-', '--trust', path('policy-invalid.json'), '--json'], Buffer.from('hello'));
    for (const r of [missing, garbage]) {
      expect(r.status, r.stdout + r.stderr).toBe(2);
      expect(JSON.parse(r.stdout)).toMatchObject({ ok: false, code: 'TRUST_POLICY_INVALID' });
    }
  });

  test('--json on an I/O error prints a JSON error object', () => {
    const r = glassbox(['verify', path('absent.tar'), '--trust', path('policy.json'), '--json']);
    expect(r.status).toBe(2);
    expect(JSON.parse(r.stdout)).toMatchObject({ ok: false, code: 'IO' });
  });
});

describe('flag parsing', () => {
  test('--at takes RFC 3339 with a zone only', () => {
    expect(parseAt('2026-06-01T12:00:00Z').toISOString()).toBe('2026-06-01T12:00:00.000Z');
    expect(parseAt('2026-06-01T14:00:00.5+02:00').toISOString()).toBe('2026-06-01T12:00:00.500Z');
    for (const bad of ['2026-06-01', '2026-06-01T12:00:00', '2026-13-01T00:00:00Z', '2026-02-29T00:00:00Z', '2026-06-01T24:00:00Z', '1717243200', '']) {
      expect(() => parseAt(bad), bad).toThrow(/RFC 3339/);
    }
  });

  test('--security-floor takes 0 … 2^31-1', () => {
    expect(parseSecurityFloor('0')).toBe(0);
    expect(parseSecurityFloor('2147483647')).toBe(2147483647);
    for (const bad of ['-1', '2147483648', '01', '1e3', ' 1', '']) expect(() => parseSecurityFloor(bad), bad).toThrow(/security-floor/);
  });
});
