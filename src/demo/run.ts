/**
 * `glassbox demo`: the whole firmware trust chain on one machine, with no
 * outside setup. Each step calls the same functions as the real commands
 * and prints the command a person would type:
 *
 *   1. development PKI (root, release CA, 3 release signers, threshold 2)
 *   2. sample firmware: generated rootfs + config, embedded template
 *   3. build an UNSIGNED bundle (manifest, SBOM, provenance) → verify: THRESHOLD_NOT_MET
 *   4. two signers sign, one at a time                        → verify after each
 *   5. verify the signed bundle: ACCEPTED, with its provenance
 *   6. flip one byte of rootfs.img in a copy                  → verify: ARTIFACT_DIGEST
 *
 * The clock comes in as `now`; output goes through `say`.
 */
import { copyFile, open, readFile, writeFile } from 'node:fs/promises';
import { join, relative } from 'node:path';
import type { VerifyContext, VerifyReport } from '../bundle/types.js';
import { verifyBundleFile } from '../bundle/verify.js';
import { describeVerifyReport, verifyReportJson, type VerifyReportJson } from '../bundle/report.js';
import { loadTrustAnchors } from '../trust/policy.js';
import { buildRelease } from '../release/index.js';
import { signBundleWithKeyFile } from '../release/sign.js';
import { DEMO_HARDWARE, demoArtifacts, demoTemplate } from './sample.js';
import { prepareDir, preparePki, prepareReleaseDir, type DemoPki } from './workspace.js';

export interface DemoOptions {
  /** The demo folder (created if missing). */
  readonly dir: string;
  readonly now: Date;
  /** glassbox version, named in the SBOM. */
  readonly version: string;
  /** One line of guided output. */
  readonly say: (line: string) => void;
  /** Paths in the output are shown relative to this (the cwd). */
  readonly relativeTo?: string;
}

export interface DemoResult {
  /** true when the signed bundle was accepted and every wrong one rejected with the expected code. */
  readonly ok: boolean;
  readonly dir: string;
  readonly pki: DemoPki;
  readonly bundle: string;
  readonly tamperedBundle: string;
  readonly tamperedOffset: number;
  readonly unsigned: VerifyReportJson;
  readonly oneSignature: VerifyReportJson;
  readonly signed: VerifyReportJson;
  readonly tampered: VerifyReportJson;
}

export async function runDemo(opts: DemoOptions): Promise<DemoResult> {
  const { dir, now, say } = opts;
  const show = (p: string): string => (opts.relativeTo ? relative(opts.relativeTo, p) || '.' : p);
  const expect = (report: VerifyReport, code: string | null): boolean => report.code === code;
  let ok = true;

  say('glassbox demo: build, sign and verify a firmware bundle on this machine, then show a tampered copy being refused.');
  say(`Everything goes into ${show(dir)}/ (git-ignored; delete it any time). Development keys only: never for real recorders.`);
  say('');

  await prepareDir(dir);
  const pki = await preparePki(dir, now);
  say('1. Development PKI');
  if (pki.reused) say(`   reusing ${show(pki.dir)} from an earlier run (root CA, release CA, 3 release signers)`);
  else {
    if (pki.replaced) say(`   the old ${show(pki.dir)} was not reusable (${pki.replaced}); made a new one`);
    say(`   created ${show(pki.dir)}: root CA, release CA, 3 release signers (ECDSA P-256, codeSigning), device CA`);
  }
  say(`   trust policy ${show(pki.trustPolicy)}: a recorder needs ${pki.threshold} distinct signer keys`);
  say(`   = glassbox release pki --out ${show(pki.dir)}`);
  say('');

  const releaseDir = await prepareReleaseDir(dir);
  const templatePath = join(releaseDir, 'template.json');
  await writeFile(templatePath, JSON.stringify(demoTemplate(now), null, 2) + '\n');
  const artifacts = demoArtifacts();
  for (const a of artifacts) await writeFile(join(releaseDir, a.name), a.bytes);
  const template = demoTemplate(now);
  say('2. Sample firmware');
  say(`   ${template.product} ${template.version} for ${template.hardware.join(', ')}: ${artifacts.map((a) => `${a.name} (${a.role}, ${a.bytes.length} bytes)`).join(', ')}`);
  say(`   template ${show(templatePath)}: hardware, version, anti-rollback counter, expiry, ${template.egress.length} allowed egress destinations, source commit`);
  say('');

  const bundle = join(releaseDir, 'firmware.bundle');
  const built = await buildRelease({
    template: templatePath,
    artifacts: artifacts.map((a) => ({ name: a.name, role: a.role, path: join(releaseDir, a.name) })),
    out: bundle,
    now,
    keepDir: join(releaseDir, 'generated'),
    tool: { name: 'glassbox', version: opts.version },
  });
  const ctx: VerifyContext = { trust: loadTrustAnchors(await readFile(pki.trustPolicy)), at: now, hardware: DEMO_HARDWARE, securityFloor: 0 };
  const verify = (path: string): Promise<VerifyReport> => verifyBundleFile(path, ctx);
  say('3. Build (unsigned)');
  say(`   ${show(bundle)}: ${built.bundle.bytes} bytes; manifest sha256 ${built.manifestSha256}`);
  say(`   generated sbom.cdx.json (CycloneDX 1.5) and provenance.intoto.json (in-toto, SLSA v1); copies in ${show(join(releaseDir, 'generated'))}`);
  say(`   = glassbox release build --template ${show(templatePath)} ${artifacts.map((a) => `--artifact ${a.name}=${a.role}:${show(join(releaseDir, a.name))}`).join(' ')} --out ${show(bundle)}`);
  const unsigned = await verify(bundle);
  ok &&= expect(unsigned, 'THRESHOLD_NOT_MET');
  say(`   verify: ${describeVerifyReport(unsigned, DEMO_HARDWARE)}   (expected: nobody has signed yet)`);
  say('');

  say(`4. Sign, one signer at a time (each with their own key; ${pki.threshold} of ${pki.signers.length} needed)`);
  let oneSignature: VerifyReport | undefined;
  for (const s of pki.signers.slice(0, 2)) {
    const res = await signBundleWithKeyFile(bundle, { key: s.key, chain: s.chain });
    say(`   signer ${s.index}: signatures/${res.index}.sig by ${res.subject} (${res.algorithm})`);
    say(`   = glassbox release sign ${show(bundle)} --key ${show(s.key)} --chain ${show(s.chain)}`);
    if (res.index === 1) {
      oneSignature = await verify(bundle);
      ok &&= expect(oneSignature, 'THRESHOLD_NOT_MET');
      say(`   verify: ${describeVerifyReport(oneSignature, DEMO_HARDWARE)}   (expected: 1 of 2)`);
    }
  }
  say('');

  const signed = await verify(bundle);
  ok &&= expect(signed, null);
  say('5. Verify');
  say(`   ${describeVerifyReport(signed, DEMO_HARDWARE)}`);
  if (signed.provenance) {
    say(`   provenance: built by ${signed.provenance.builder} from ${signed.provenance.sourceRepository} at commit ${signed.provenance.sourceCommit}`);
  }
  say(`   artifacts: ${signed.artifacts.map((a) => `${a.name} ${a.outcome}`).join(', ')}`);
  say(`   = glassbox verify ${show(bundle)} --trust ${show(pki.trustPolicy)} --hardware ${DEMO_HARDWARE}`);
  say(`   by hand, with tar, openssl and sha256sum only: scripts/buyer-check.sh ${show(bundle)} ${show(pki.trustPolicy)}`);
  say('');

  const tamperedBundle = join(releaseDir, 'firmware-tampered.bundle');
  const tamperedOffset = await tamperCopy(bundle, tamperedBundle, artifacts[0]!.bytes);
  const tampered = await verify(tamperedBundle);
  ok &&= expect(tampered, 'ARTIFACT_DIGEST');
  say('6. Tamper');
  say(`   ${show(tamperedBundle)}: a copy with one bit flipped at byte ${tamperedOffset} (inside artifacts/rootfs.img)`);
  say(`   verify: ${describeVerifyReport(tampered, DEMO_HARDWARE)}`);
  say('');
  say(ok ? 'Done: the signed bundle was accepted and every unsigned or altered one refused.' : 'UNEXPECTED: a verification above did not give the expected result.');

  return {
    ok,
    dir,
    pki,
    bundle,
    tamperedBundle,
    tamperedOffset,
    unsigned: verifyReportJson(unsigned),
    oneSignature: verifyReportJson(oneSignature ?? unsigned),
    signed: verifyReportJson(signed),
    tampered: verifyReportJson(tampered),
  };
}

/**
 * Copies `from` to `to` and flips the lowest bit of one byte in the middle
 * of the artifact whose content starts with `artifact` (found by its first
 * 64 bytes, which are unique in the bundle). Returns the byte offset.
 */
async function tamperCopy(from: string, to: string, artifact: Buffer): Promise<number> {
  await copyFile(from, to);
  const bytes = await readFile(to);
  const start = bytes.indexOf(artifact.subarray(0, 64));
  if (start < 0) throw new Error('demo: the sample rootfs was not found in the bundle');
  const offset = start + Math.floor(artifact.length / 2);
  const fh = await open(to, 'r+');
  try {
    const one = Buffer.from([bytes[offset]! ^ 0x01]);
    await fh.write(one, 0, 1, offset);
  } finally {
    await fh.close();
  }
  return offset;
}
