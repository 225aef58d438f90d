/**
 * `glassbox release …` as a release engineer runs it: spawns the built CLI
 * (`npm run build` first; `npm test` does that).
 */
import { afterAll, describe, expect, it, beforeAll } from 'vitest';
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { tempDir, removeTempDirs } from './fixtures.js';

afterAll(removeTempDirs);

const MAIN = resolve('dist/cli/main.js');

interface Run {
  status: number | null;
  stdout: string;
  stderr: string;
}

function glassbox(args: string[], cwd: string): Run {
  const r = spawnSync(process.execPath, [MAIN, ...args], { cwd, encoding: 'utf8', timeout: 60_000 });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

const TEMPLATE = {
  schema: 'glassbox.manifest/v1',
  product: 'hss-nvr',
  hardware: ['nvr-8p', 'nvr-16p'],
  version: '4.2.0',
  securityVersion: 3,
  released: '2025-03-01T12:00:00Z',
  expires: '2099-03-01T12:00:00Z',
  egress: [{ id: 'ntp', purpose: 'Time synchronisation', proto: 'udp', host: 'ntp.hss.example', port: 123 }],
  provenance: {
    sourceRepository: 'https://git.hss.example/nvr/firmware',
    sourceCommit: '0123456789abcdef0123456789abcdef01234567',
    builder: 'https://ci.hss.example/builders/release',
    buildFinished: '2025-03-01T11:00:00Z',
  },
};

let dir: string;
beforeAll(async () => {
  if (!existsSync(MAIN)) throw new Error(`${MAIN} is missing: run npm run build first`);
  dir = await tempDir('release-cli');
  await writeFile(join(dir, 'template.json'), JSON.stringify(TEMPLATE, null, 2));
  await writeFile(join(dir, 'rootfs.img'), Buffer.alloc(300_000, 7));
  await writeFile(join(dir, 'app.bin'), 'recorder app\n');
  const pki = glassbox(['release', 'pki', '--out', 'pki', '--signers', '3', '--threshold', '2'], dir);
  expect(pki.stderr).toBe('');
  expect(pki.status).toBe(0);
});

function build(out: string, extra: string[] = []): Run {
  return glassbox(
    ['release', 'build', '--template', 'template.json', '--artifact', 'rootfs.img=rootfs:rootfs.img', '--artifact', 'app.bin=app:app.bin', '--out', out, '--now', '2025-03-01T12:00:00Z', ...extra],
    dir,
  );
}

function sign(bundle: string, k: number, extra: string[] = []): Run {
  return glassbox(['release', 'sign', bundle, '--key', `pki/signer-${k}.key`, '--chain', `pki/signer-${k}.chain.pem`, ...extra], dir);
}

function verifyJson(bundle: string): { status: number | null; code: string | null; ok: boolean } {
  const r = glassbox(['verify', bundle, '--trust', 'pki/trust-policy.json', '--hardware', 'nvr-8p', '--json'], dir);
  const report = JSON.parse(r.stdout) as { ok: boolean; code: string | null };
  return { status: r.status, code: report.code, ok: report.ok };
}

describe('glassbox release: pki → build → sign ×2 → verify', () => {
  it('builds an unsigned bundle the verifier rejects with THRESHOLD_NOT_MET, and accepts once two signers signed', () => {
    const b = build('b.tar');
    expect(b.status).toBe(0);
    expect(b.stdout).toMatch(/^built UNSIGNED bundle b\.tar: hss-nvr 4\.2\.0 \(securityVersion 3\), 4 artifacts/);
    expect(verifyJson('b.tar')).toEqual({ status: 1, code: 'THRESHOLD_NOT_MET', ok: false });

    const s1 = sign('b.tar', 1);
    expect(s1.status).toBe(0);
    expect(s1.stdout).toContain('signatures/1.sig added (1 signature now)');
    expect(verifyJson('b.tar')).toEqual({ status: 1, code: 'THRESHOLD_NOT_MET', ok: false });

    const s3 = sign('b.tar', 3, ['--json']);
    expect(s3.status).toBe(0);
    const res = JSON.parse(s3.stdout) as { ok: boolean; index: number; algorithm: string; spkiSha256: string };
    expect(res).toMatchObject({ ok: true, index: 2, algorithm: 'ecdsa-p256-sha256' });
    expect(res.spkiSha256).toMatch(/^[0-9a-f]{64}$/);
    expect(verifyJson('b.tar')).toEqual({ status: 0, code: null, ok: true });
  });

  it('is reproducible: the same template, files and --now give the same unsigned bundle', async () => {
    expect(build('r1.tar').status).toBe(0);
    expect(build('r2.tar').status).toBe(0);
    expect((await readFile(join(dir, 'r1.tar'))).equals(await readFile(join(dir, 'r2.tar')))).toBe(true);
  });

  it('--keep leaves manifest.json, the SBOM and the provenance statement beside the bundle', async () => {
    expect(build('k.tar', ['--keep', 'kept']).status).toBe(0);
    const manifest = JSON.parse(await readFile(join(dir, 'kept', 'manifest.json'), 'utf8')) as { artifacts: { name: string; role: string }[] };
    expect(manifest.artifacts.map((a) => `${a.name}:${a.role}`)).toEqual(['rootfs.img:rootfs', 'app.bin:app', 'sbom.cdx.json:sbom', 'provenance.intoto.json:provenance']);
    const sbom = JSON.parse(await readFile(join(dir, 'kept', 'sbom.cdx.json'), 'utf8')) as { bomFormat: string };
    expect(sbom.bomFormat).toBe('CycloneDX');
    const prov = JSON.parse(await readFile(join(dir, 'kept', 'provenance.intoto.json'), 'utf8')) as { _type: string };
    expect(prov._type).toBe('https://in-toto.io/Statement/v1');
  });

  it('sign --out leaves the input untouched', async () => {
    expect(build('in.tar').status).toBe(0);
    const before = await readFile(join(dir, 'in.tar'));
    expect(sign('in.tar', 2, ['--out', 'out.tar']).status).toBe(0);
    expect((await readFile(join(dir, 'in.tar'))).equals(before)).toBe(true);
    expect(glassbox(['release', 'inspect', 'out.tar'], dir).stdout).toContain('signer 1: CN=glassbox development release signer 2');
  });
});

describe('glassbox release sign --signature: a signature made outside glassbox', () => {
  it('attaches an openssl dgst -sign signature over manifest.json taken out with tar, and refuses a wrong one', async () => {
    expect(build('d.tar').status).toBe(0);
    execFileSync('sh', ['-c', 'tar -xOf d.tar manifest.json > d-manifest.json && openssl dgst -sha256 -sign pki/signer-1.key -out d.sig d-manifest.json'], { cwd: dir });
    const attached = glassbox(['release', 'sign', 'd.tar', '--signature', 'd.sig', '--chain', 'pki/signer-1.chain.pem', '--json'], dir);
    expect(attached.status).toBe(0);
    expect(JSON.parse(attached.stdout)).toMatchObject({ index: 1, algorithm: 'ecdsa-p256-sha256' });

    execFileSync('openssl', ['dgst', '-sha256', '-sign', 'pki/signer-3.key', '-out', 'wrong.sig', 'template.json'], { cwd: dir });
    const before = await readFile(join(dir, 'd.tar'));
    const wrong = glassbox(['release', 'sign', 'd.tar', '--signature', 'wrong.sig', '--chain', 'pki/signer-3.chain.pem', '--json'], dir);
    expect(wrong.status).toBe(1);
    expect(JSON.parse(wrong.stdout)).toMatchObject({ code: 'SIGNATURE_INVALID' });
    expect((await readFile(join(dir, 'd.tar'))).equals(before)).toBe(true);

    expect(sign('d.tar', 2).status).toBe(0);
    expect(verifyJson('d.tar')).toEqual({ status: 0, code: null, ok: true });
    const both = glassbox(['release', 'sign', 'd.tar', '--key', 'pki/signer-3.key', '--signature', 'd.sig', '--chain', 'pki/signer-3.chain.pem'], dir);
    expect(both.status).toBe(2);
    expect(both.stderr).toContain('exactly one of --key KEY.pem or --signature SIG');
  });
});

describe('glassbox release: refusals (exit 1) and usage errors (exit 2)', () => {
  it('refuses a second signature by the same key: exit 1, ALREADY_SIGNED, bundle unchanged', async () => {
    expect(build('twice.tar').status).toBe(0);
    expect(sign('twice.tar', 1).status).toBe(0);
    const before = await readFile(join(dir, 'twice.tar'));
    const again = sign('twice.tar', 1, ['--json']);
    expect(again.status).toBe(1);
    expect(JSON.parse(again.stdout)).toMatchObject({ ok: false, code: 'ALREADY_SIGNED' });
    expect(again.stderr).toContain('already signed the bundle as signer 1');
    expect((await readFile(join(dir, 'twice.tar'))).equals(before)).toBe(true);
  });

  it('refuses to sign a bundle whose artifact was changed: exit 1, ARTIFACT_DIGEST', async () => {
    expect(build('t.tar').status).toBe(0);
    const bytes = await readFile(join(dir, 't.tar'));
    const at = bytes.indexOf(Buffer.from('recorder app'));
    bytes[at] = 0x52; // 'r' -> 'R'
    await writeFile(join(dir, 't.tar'), bytes);
    const r = sign('t.tar', 1, ['--json']);
    expect(r.status).toBe(1);
    expect(JSON.parse(r.stdout)).toMatchObject({ code: 'ARTIFACT_DIGEST' });
  });

  it('names a malformed NAME=ROLE:PATH and a missing file (exit 2); parseArtifactSpec has the other cases', () => {
    const malformed = glassbox(['release', 'build', '--template', 'template.json', '--artifact', 'rootfs.img:rootfs.img', '--out', 'x.tar'], dir);
    expect(malformed.status).toBe(2);
    expect(malformed.stderr).toMatch(/--artifact "rootfs\.img:rootfs\.img": expected NAME=ROLE:PATH/);
    const missingArtifact = glassbox(['release', 'build', '--template', 'template.json', '--artifact', 'a=rootfs:no-such.img', '--out', 'x.tar'], dir);
    expect(missingArtifact.status).toBe(2);
    expect(missingArtifact.stderr).toContain('no-such.img');
    expect(existsSync(join(dir, 'x.tar'))).toBe(false);
    const missingKey = glassbox(['release', 'sign', 'b.tar', '--key', 'pki/nokey.key', '--chain', 'pki/signer-1.chain.pem'], dir);
    expect(missingKey.status).toBe(2);
    expect(missingKey.stderr).toContain('nokey.key');
  });

  it('refuses a template the schema rejects (exit 1, RELEASE_INPUT_INVALID naming the field)', async () => {
    await writeFile(join(dir, 'bad-template.json'), JSON.stringify({ ...TEMPLATE, securityVersion: -1 }));
    const r = glassbox(['release', 'build', '--template', 'bad-template.json', '--artifact', 'a=rootfs:rootfs.img', '--out', 'x.tar', '--json'], dir);
    expect(r.status).toBe(1);
    expect(JSON.parse(r.stdout)).toMatchObject({ code: 'RELEASE_INPUT_INVALID' });
    expect(r.stderr).toContain('/securityVersion');
  });

  it('rejects a bad flag value and a missing required option (exit 2), and never overwrites a PKI', () => {
    const alg = glassbox(['release', 'pki', '--out', 'p2', '--algorithm', 'ed25519'], dir);
    expect(alg.status).toBe(2);
    expect(alg.stderr).toContain('--algorithm must be p256, p384 or rsa3072');
    expect(glassbox(['release', 'sign', 'b.tar', '--key', 'pki/signer-1.key'], dir).status).toBe(2);
    const again = glassbox(['release', 'pki', '--out', 'pki'], dir);
    expect(again.status).toBe(2);
    expect(again.stderr).toContain('never overwritten');
  });

  it('inspect: exit 1 with BUNDLE_FORMAT for a file that is not a bundle', async () => {
    await writeFile(join(dir, 'junk.tar'), Buffer.alloc(2048, 0x41));
    const r = glassbox(['release', 'inspect', 'junk.tar', '--json'], dir);
    expect(r.status).toBe(1);
    expect(JSON.parse(r.stdout)).toMatchObject({ wellFormed: false, code: 'BUNDLE_FORMAT' });
  });
});
