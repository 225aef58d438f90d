import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { open, readFile, rm, writeFile, appendFile, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { readFileChunks } from '../../src/bundle/reader.js';
import { initDevice } from '../../src/install/init.js';
import { installBundle } from '../../src/install/install.js';
import { bootCheck } from '../../src/install/boot.js';
import { rollback } from '../../src/install/rollback.js';
import { StateDir } from '../../src/install/state-store.js';
import { readJournal } from '../../src/install/journal.js';
import { buildStatus, renderStatus } from '../../src/install/status.js';
import { lockInfo } from '../../src/install/lock.js';
import type { TestPki } from '../helpers/pki.js';
import { HARDWARE, buildBundle, deviceStateSnapshot, installPki, payload, tempDir, writeHook } from './fixtures.js';

let root: string;
let pki: TestPki;

beforeAll(async () => {
  root = await tempDir('install');
  pki = await installPki();
});
afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

let n = 0;
async function freshDevice(opts: { maxBootAttempts?: number; trust?: Buffer } = {}): Promise<string> {
  const dir = join(root, `dev-${++n}`);
  await initDevice({ stateDir: dir, trustBytes: opts.trust ?? pki.policyBytes, hardware: HARDWARE, clock: new Date(), ...(opts.maxBootAttempts ? { maxBootAttempts: opts.maxBootAttempts } : {}) });
  return dir;
}

function install(stateDir: string, bundlePath: string) {
  return installBundle({ stateDir, source: readFileChunks(bundlePath), sourceName: bundlePath, clock: new Date() });
}

async function state(stateDir: string) {
  return (await new StateDir(stateDir).read()).state;
}

async function installAndCommit(stateDir: string, bundlePath: string): Promise<void> {
  const r = await install(stateDir, bundlePath);
  expect(r.ok, r.reason).toBe(true);
  const b = await bootCheck({ stateDir, clock: new Date() });
  expect(b.outcome, b.reason).toBe('committed');
}

describe('device init', () => {
  it('creates two empty slots and refuses to overwrite an initialised state', async () => {
    const dir = await freshDevice();
    const s = await state(dir);
    expect(s.active).toBeNull();
    expect(s.slots.a.state).toBe('empty');
    expect(s.slots.b.state).toBe('empty');
    expect(s.hardware).toBe(HARDWARE);
    await expect(initDevice({ stateDir: dir, trustBytes: pki.policyBytes, hardware: HARDWARE, clock: new Date() })).rejects.toMatchObject({ code: 'ALREADY_INITIALISED' });
  });

  it('refuses a trust policy that does not load (fail closed)', async () => {
    await expect(initDevice({ stateDir: join(root, 'bad-trust'), trustBytes: Buffer.from('{}'), hardware: HARDWARE, clock: new Date() })).rejects.toMatchObject({ code: 'TRUST_POLICY_INVALID' });
  });

  it('install on a directory without state says NOT_INITIALISED', async () => {
    const b = await buildBundle(root, pki, { version: '0.0.1' });
    await expect(install(join(root, 'nowhere'), b.path)).rejects.toMatchObject({ code: 'NOT_INITIALISED' });
  });
});

describe('install, boot confirmation and commit', () => {
  it('writes the inactive slot, switches to it pending, and commits on a good start', async () => {
    const dir = await freshDevice();
    const b = await buildBundle(root, pki, { version: '1.0.0', securityVersion: 5 });
    const r = await install(dir, b.path);
    expect(r.ok, r.reason).toBe(true);
    expect(r.slot).toBe('a');
    let s = await state(dir);
    expect(s.active).toBe('a');
    expect(s.slots.a).toMatchObject({ state: 'pending', version: '1.0.0', securityVersion: 5, manifestSha256: b.manifestSha256 });
    expect(s.securityFloor).toBe(0); // floor rises only at commit
    // The slot mirrors the bundle layout, byte for byte.
    const slotDir = join(dir, 'slots', s.slots.a.ref!);
    expect((await readFile(join(slotDir, 'manifest.json'))).equals(b.manifestBytes)).toBe(true);
    for (const a of b.artifacts) expect((await readFile(join(slotDir, 'artifacts', a.name))).equals(a.data)).toBe(true);
    expect((await readdir(join(slotDir, 'signatures'))).sort()).toEqual(['1.pem', '1.sig', '2.pem', '2.sig']);

    const boot = await bootCheck({ stateDir: dir, clock: new Date() });
    expect(boot.outcome).toBe('committed');
    s = await state(dir);
    expect(s.slots.a.state).toBe('committed');
    expect(s.securityFloor).toBe(5);
    expect(new Date(s.trustedTime).getTime()).toBeGreaterThanOrEqual(new Date(s.slots.a.released!).getTime());

    // A second start has nothing to confirm.
    expect((await bootCheck({ stateDir: dir, clock: new Date() })).outcome).toBe('nothing-pending');

    // The next install goes to the other slot; the committed one stays as fallback.
    const b2 = await buildBundle(root, pki, { version: '1.1.0', securityVersion: 6 });
    const r2 = await install(dir, b2.path);
    expect(r2.slot).toBe('b');
    s = await state(dir);
    expect(s.active).toBe('b');
    expect(s.slots.a.state).toBe('committed');
    expect(s.slots.b.state).toBe('pending');
  });

  it('an artifact with a 128-character name (pax header in the bundle) installs and re-verifies at boot', async () => {
    const dir = await freshDevice();
    const name = 'r' + 'x'.repeat(120) + '.squash';
    expect(name.length).toBe(128);
    const b = await buildBundle(root, pki, { version: '1.0.0', artifacts: [{ name, role: 'rootfs', data: payload(10_000, 9) }] });
    expect((await install(dir, b.path)).ok).toBe(true);
    const boot = await bootCheck({ stateDir: dir, clock: new Date() });
    expect(boot.checks[0]).toMatchObject({ name: 'slot-verification', ok: true });
    expect(boot.outcome).toBe('committed');
  });

  it('a second install before confirmation replaces the pending slot, never the committed fallback', async () => {
    const dir = await freshDevice();
    await installAndCommit(dir, (await buildBundle(root, pki, { version: '1.0.0' })).path);
    const committedRef = (await state(dir)).slots.a.ref;
    await install(dir, (await buildBundle(root, pki, { version: '1.1.0' })).path);
    const r = await install(dir, (await buildBundle(root, pki, { version: '1.2.0' })).path);
    expect(r.slot).toBe('b');
    const s = await state(dir);
    expect(s.slots.a).toMatchObject({ state: 'committed', ref: committedRef });
    expect(s.slots.b).toMatchObject({ state: 'pending', version: '1.2.0' });
    // The replaced pending content is swept.
    expect((await readdir(join(dir, 'slots'))).sort()).toEqual([s.slots.a.ref, s.slots.b.ref].sort());
  });
});

describe('refused and failed installs change nothing', () => {
  it('an artifact whose digest fails mid-stream (after bytes were written) leaves the state byte for byte', async () => {
    const dir = await freshDevice();
    await installAndCommit(dir, (await buildBundle(root, pki, { version: '1.0.0' })).path);
    const good = await buildBundle(root, pki, {
      version: '2.0.0',
      artifacts: [
        { name: 'kernel.img', role: 'kernel', data: payload(100_000, 1) },
        { name: 'rootfs.img', role: 'rootfs', data: payload(300_000, 2) },
      ],
    });
    // Flip one byte inside the second artifact's data.
    const bytes = await readFile(good.path);
    const at = bytes.indexOf(payload(300_000, 2).subarray(1000, 1064));
    expect(at).toBeGreaterThan(0);
    bytes[at + 10] = bytes[at + 10]! ^ 0xff;
    const bad = join(root, 'tampered-digest.tar');
    await writeFile(bad, bytes);

    const before = await deviceStateSnapshot(dir);
    const r = await install(dir, bad);
    expect(r.ok).toBe(false);
    expect(r.code).toBe('ARTIFACT_DIGEST');
    expect(r.bytesWritten).toBeGreaterThan(100_000); // the first artifact was written, then thrown away
    expect(await deviceStateSnapshot(dir)).toEqual(before);
    const journal = await readJournal(dir);
    expect(journal.at(-1)).toMatchObject({ command: 'install', outcome: 'rejected', code: 'ARTIFACT_DIGEST' });
  });

  it('a source that fails mid-read is BUNDLE_UNREADABLE and changes nothing', async () => {
    const dir = await freshDevice();
    await installAndCommit(dir, (await buildBundle(root, pki, { version: '1.0.0' })).path);
    const b = await buildBundle(root, pki, { version: '2.0.0', artifacts: [{ name: 'rootfs.img', role: 'rootfs', data: payload(400_000, 3) }] });
    const before = await deviceStateSnapshot(dir);
    async function* vanishing(): AsyncGenerator<Buffer> {
      const fh = await open(b.path, 'r');
      try {
        const buf = Buffer.alloc(64 * 1024);
        let total = 0;
        for (;;) {
          const { bytesRead } = await fh.read(buf, 0, buf.length, null);
          if (bytesRead === 0) return;
          total += bytesRead;
          yield Buffer.from(buf.subarray(0, bytesRead));
          if (total > 200_000) throw Object.assign(new Error('EIO: i/o error, read'), { code: 'EIO' });
        }
      } finally {
        await fh.close();
      }
    }
    await expect(installBundle({ stateDir: dir, source: vanishing(), sourceName: 'usb', clock: new Date() })).rejects.toMatchObject({ code: 'BUNDLE_UNREADABLE' });
    expect(await deviceStateSnapshot(dir)).toEqual(before);
    expect((await readJournal(dir)).at(-1)).toMatchObject({ outcome: 'failed', code: 'BUNDLE_UNREADABLE' });
  });

  it('a truncated bundle is BUNDLE_FORMAT and changes nothing', async () => {
    const dir = await freshDevice();
    const b = await buildBundle(root, pki, { version: '2.0.0', artifacts: [{ name: 'rootfs.img', role: 'rootfs', data: payload(200_000, 4) }] });
    const cut = join(root, 'truncated.tar');
    await writeFile(cut, (await readFile(b.path)).subarray(0, 150_000));
    const before = await deviceStateSnapshot(dir);
    const r = await install(dir, cut);
    expect(r.code).toBe('BUNDLE_FORMAT');
    expect(await deviceStateSnapshot(dir)).toEqual(before);
  });
});

describe('rollback protection', () => {
  it('after committing securityVersion 12, 11 is refused with ROLLBACK; before the commit it is not yet', async () => {
    const dir = await freshDevice();
    const v11 = await buildBundle(root, pki, { version: '11.0.0', securityVersion: 11 });
    const v12 = await buildBundle(root, pki, { version: '12.0.0', securityVersion: 12 });
    await installAndCommit(dir, v11.path);
    // 12 installed but not confirmed: the floor is still 11, so 11 is still acceptable.
    expect((await install(dir, v12.path)).ok).toBe(true);
    const pendingOld = await install(dir, v11.path);
    expect(pendingOld.ok, pendingOld.reason).toBe(true);
    // Now commit 12.
    await installAndCommit(dir, v12.path);
    const s = await state(dir);
    expect(s.securityFloor).toBe(12);
    const before = await deviceStateSnapshot(dir);
    const refused = await install(dir, v11.path);
    expect(refused.ok).toBe(false);
    expect(refused.code).toBe('ROLLBACK');
    expect(refused.bytesWritten).toBe(0);
    expect(await deviceStateSnapshot(dir)).toEqual(before);
  });

  it('glassbox rollback to a slot below the floor is refused; to one at the floor it works', async () => {
    const dir = await freshDevice();
    await installAndCommit(dir, (await buildBundle(root, pki, { version: '11.0.0', securityVersion: 11 })).path);
    await installAndCommit(dir, (await buildBundle(root, pki, { version: '12.0.0', securityVersion: 12 })).path);
    const before = await deviceStateSnapshot(dir);
    await expect(rollback({ stateDir: dir, clock: new Date() })).rejects.toMatchObject({ code: 'ROLLBACK', exitCode: 1 });
    expect(await deviceStateSnapshot(dir)).toEqual(before);

    // Same securityVersion: rollback allowed, and back again.
    await installAndCommit(dir, (await buildBundle(root, pki, { version: '12.0.1', securityVersion: 12 })).path);
    const r = await rollback({ stateDir: dir, clock: new Date() });
    expect(r.to).toBe('b');
    expect((await state(dir)).active).toBe('b');
  });

  it('rollback with no committed slot to go to is NO_FALLBACK', async () => {
    const dir = await freshDevice();
    await installAndCommit(dir, (await buildBundle(root, pki, { version: '1.0.0' })).path);
    await expect(rollback({ stateDir: dir, clock: new Date() })).rejects.toMatchObject({ code: 'NO_FALLBACK' });
  });
});

describe('boot confirmation', () => {
  it('a slot whose health checks fail three times falls back to the previous one, and status says why', async () => {
    const dir = await freshDevice();
    await installAndCommit(dir, (await buildBundle(root, pki, { version: '1.0.0', securityVersion: 3 })).path);
    await install(dir, (await buildBundle(root, pki, { version: '2.0.0', securityVersion: 4 })).path);
    await writeHook(dir, '50-cameras', 'echo "camera 3 does not answer" >&2; exit 3');

    for (const attempt of [1, 2]) {
      const r = await bootCheck({ stateDir: dir, clock: new Date() });
      expect(r.outcome).toBe('retry');
      expect(r.attempt).toBe(attempt);
      expect((await state(dir)).active).toBe('b');
    }
    const third = await bootCheck({ stateDir: dir, clock: new Date() });
    expect(third.outcome).toBe('fell-back');
    const s = await state(dir);
    expect(s.active).toBe('a');
    expect(s.slots.b.state).toBe('failed');
    expect(s.slots.b.failure).toMatchObject({ code: 'HEALTH_CHECK_FAILED' });
    expect(s.slots.b.failure!.reason).toContain('camera 3 does not answer');
    expect(s.securityFloor).toBe(3); // never committed: floor unchanged

    const report = buildStatus(dir, s, await readJournal(dir), await lockInfo(dir));
    expect(report.lastBoot).toMatchObject({ outcome: 'fell-back' });
    expect(report.slots.find((x) => x.id === 'b')).toMatchObject({ state: 'failed' });
    const text = renderStatus(report);
    expect(text).toContain('camera 3 does not answer');
    expect(text).toMatch(/returned to slot a/);
  });

  it('a start that crashed mid-check counts: after N uncounted starts the device falls back without running checks', async () => {
    const dir = await freshDevice({ maxBootAttempts: 2 });
    await installAndCommit(dir, (await buildBundle(root, pki, { version: '1.0.0' })).path);
    await install(dir, (await buildBundle(root, pki, { version: '2.0.0' })).path);
    // Simulate two starts that died during their checks: the counter was written, the outcome never was.
    const sd = new StateDir(dir);
    const s0 = await state(dir);
    const crashed = { ...s0, generation: s0.generation + 1, slots: { ...s0.slots, b: { ...s0.slots.b, bootAttempts: 2 } } };
    await sd.write(crashed, async () => undefined);
    const r = await bootCheck({ stateDir: dir, clock: new Date() });
    expect(r.outcome).toBe('fell-back');
    expect(r.checks).toEqual([]);
    expect((await state(dir)).slots.b.failure?.code).toBe('BOOT_ATTEMPTS_EXHAUSTED');
  });

  it('a slot tampered with between install and boot is refused at once and the device falls back', async () => {
    const dir = await freshDevice();
    await installAndCommit(dir, (await buildBundle(root, pki, { version: '1.0.0' })).path);
    await install(dir, (await buildBundle(root, pki, { version: '2.0.0' })).path);
    const s = await state(dir);
    await appendFile(join(dir, 'slots', s.slots.b.ref!, 'artifacts', 'app.bin'), 'x');
    const r = await bootCheck({ stateDir: dir, clock: new Date() });
    expect(r.outcome).toBe('fell-back');
    expect(r.checks[0]).toMatchObject({ name: 'slot-verification', ok: false, code: 'ARTIFACT_SIZE' });
    expect((await state(dir)).active).toBe('a');
  });

  it('a slot whose manifest was swapped for another validly signed one is refused', async () => {
    const dir = await freshDevice();
    const old = await buildBundle(root, pki, { version: '1.0.0', securityVersion: 1 });
    await installAndCommit(dir, old.path);
    await install(dir, (await buildBundle(root, pki, { version: '2.0.0', securityVersion: 2 })).path);
    const s = await state(dir);
    const a = join(dir, 'slots', s.slots.a.ref!);
    const b = join(dir, 'slots', s.slots.b.ref!);
    await rm(b, { recursive: true });
    await import('node:fs/promises').then((fs) => fs.cp(a, b, { recursive: true }));
    const r = await bootCheck({ stateDir: dir, clock: new Date() });
    expect(r.outcome).toBe('fell-back');
    expect(r.checks[0]).toMatchObject({ ok: false, code: 'SLOT_REFUSED' });
  });

  it('an extra file dropped into a slot is refused', async () => {
    const dir = await freshDevice();
    await installAndCommit(dir, (await buildBundle(root, pki, { version: '1.0.0' })).path);
    await install(dir, (await buildBundle(root, pki, { version: '2.0.0' })).path);
    const s = await state(dir);
    await writeFile(join(dir, 'slots', s.slots.b.ref!, 'artifacts', 'backdoor.sh'), 'nc -l 4444');
    const r = await bootCheck({ stateDir: dir, clock: new Date() });
    expect(r.checks[0]).toMatchObject({ ok: false, code: 'ARTIFACT_UNEXPECTED' });
  });

  it('with no committed slot to return to, the failed slot stays active and status says to reinstall', async () => {
    const dir = await freshDevice({ maxBootAttempts: 1 });
    await install(dir, (await buildBundle(root, pki, { version: '1.0.0' })).path);
    await writeHook(dir, '10-fail', 'exit 1');
    const r = await bootCheck({ stateDir: dir, clock: new Date() });
    expect(r.outcome).toBe('no-fallback');
    const s = await state(dir);
    expect(s.active).toBe('a');
    expect(s.slots.a.state).toBe('failed');
    expect(buildStatus(dir, s, [], null).next).toMatch(/install a good bundle/);
    // A following install is possible (into the other slot).
    await rm(join(dir, 'health.d', '10-fail'));
    const again = await install(dir, (await buildBundle(root, pki, { version: '1.0.1' })).path);
    expect(again.slot).toBe('b');
    expect((await bootCheck({ stateDir: dir, clock: new Date() })).outcome).toBe('committed');
  });
});

describe('trust rotation through a trust artifact', () => {
  let next: TestPki;
  beforeAll(async () => {
    next = await installPki({ namespace: 'next' });
  });

  const oldPair = () => [
    { pki, signer: 0 },
    { pki, signer: 1 },
  ];
  const newPair = () => [
    { pki: next, signer: 0 },
    { pki: next, signer: 1 },
  ];

  it('a handover signed by both key sets is accepted and takes effect at commit', async () => {
    const dir = await freshDevice();
    await installAndCommit(dir, (await buildBundle(root, pki, { version: '1.0.0' })).path);
    const handover = await buildBundle(root, pki, { version: '2.0.0', trustPolicy: next.policyBytes, signWith: [...oldPair(), ...newPair()] });
    const r = await install(dir, handover.path);
    expect(r.ok, r.reason).toBe(true);
    expect(r.trustPolicyStaged).toBe(next.anchors.sha256);
    let s = await state(dir);
    expect(s.trustPolicy).toBe(pki.anchors.sha256); // not yet: pending
    // Before the commit, the old keys still rule: a bundle by new keys alone is refused.
    const newOnly = await buildBundle(root, pki, { version: '2.1.0', signWith: newPair() });
    expect((await install(dir, newOnly.path)).code).toBe('SIGNER_UNTRUSTED');

    expect((await bootCheck({ stateDir: dir, clock: new Date() })).outcome).toBe('committed');
    s = await state(dir);
    expect(s.trustPolicy).toBe(next.anchors.sha256);
    // After: new keys alone are accepted, old keys alone are not.
    expect((await install(dir, newOnly.path)).ok).toBe(true);
    const oldOnly = await buildBundle(root, pki, { version: '2.2.0', signWith: oldPair() });
    expect((await install(dir, oldOnly.path)).code).toBe('SIGNER_UNTRUSTED');
  });

  it('a handover signed by the new keys alone is refused and changes nothing', async () => {
    const dir = await freshDevice();
    await installAndCommit(dir, (await buildBundle(root, pki, { version: '1.0.0' })).path);
    const before = await deviceStateSnapshot(dir);
    const r = await install(dir, (await buildBundle(root, pki, { version: '2.0.0', trustPolicy: next.policyBytes, signWith: newPair() })).path);
    expect(r.ok).toBe(false);
    expect(r.code).toBe('SIGNER_UNTRUSTED');
    expect(await deviceStateSnapshot(dir)).toEqual(before);
  });

  it('a handover signed by the old keys alone is refused and changes nothing', async () => {
    const dir = await freshDevice();
    await installAndCommit(dir, (await buildBundle(root, pki, { version: '1.0.0' })).path);
    const before = await deviceStateSnapshot(dir);
    const r = await install(dir, (await buildBundle(root, pki, { version: '2.0.0', trustPolicy: next.policyBytes, signWith: oldPair() })).path);
    expect(r.ok).toBe(false);
    expect(r.code).toBe('SIGNER_UNTRUSTED');
    expect(await deviceStateSnapshot(dir)).toEqual(before);
    expect((await state(dir)).trustPolicy).toBe(pki.anchors.sha256);
  });

  it('a handover that fails its boot checks never takes effect', async () => {
    const dir = await freshDevice({ maxBootAttempts: 1 });
    await installAndCommit(dir, (await buildBundle(root, pki, { version: '1.0.0' })).path);
    await install(dir, (await buildBundle(root, pki, { version: '2.0.0', trustPolicy: next.policyBytes, signWith: [...oldPair(), ...newPair()] })).path);
    await writeHook(dir, '10-fail', 'exit 1');
    expect((await bootCheck({ stateDir: dir, clock: new Date() })).outcome).toBe('fell-back');
    expect((await state(dir)).trustPolicy).toBe(pki.anchors.sha256);
  });
});
