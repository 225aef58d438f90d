/**
 * `glassbox release …`: the release engineer's tools.
 *
 *   release pki     --out DIR [--signers N] [--threshold T] [--algorithm p256|p384|rsa3072]
 *   release build   --template T.json --artifact NAME=ROLE:PATH … --out BUNDLE [--now RFC3339]
 *   release sign    BUNDLE --key KEY.pem --chain CHAIN.pem [--pss] [--out OUT]
 *   release inspect BUNDLE
 *
 * Parse → call → print; the work is in src/release and src/bundle/writer.ts.
 * Exit 0 done, 1 input judged and refused (bad bundle, key already signed),
 * 2 usage or I/O error.
 */
import type { Command } from 'commander';
import { UsageError } from '../errors.js';
import { createDevPki } from '../pki/devpki.js';
import type { AcceptedKeyAlgorithm } from '../pki/keys.js';
import { signBundleWithKeyFile, signBundleWithSignatureFile } from '../release/sign.js';
import { inspectBundle, type InspectReport } from '../release/inspect.js';
import { buildRelease, parseNow } from '../release/index.js';
import { readFileSync } from 'node:fs';
import { runCommand, type CliIO } from './run.js';

const ALGORITHMS: Record<string, AcceptedKeyAlgorithm> = {
  p256: 'ecdsa-p256',
  p384: 'ecdsa-p384',
  rsa3072: 'rsa-3072',
  'ecdsa-p256': 'ecdsa-p256',
  'ecdsa-p384': 'ecdsa-p384',
  'rsa-3072': 'rsa-3072',
};

function integer(name: string, value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  if (!/^[0-9]{1,3}$/.test(value)) throw new UsageError(`${name} must be a whole number, got ${JSON.stringify(value)}`);
  return Number(value);
}

function glassboxVersion(): string {
  const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string };
  return pkg.version;
}

function collect(value: string, previous: string[]): string[] {
  return [...previous, value];
}

function printJson(io: CliIO, value: unknown): void {
  io.out(JSON.stringify(value, null, 2));
}

export function register(program: Command, io: CliIO): void {
  const release = program.command('release').description('release engineering: development PKI, build, sign and inspect firmware bundles');

  release
    .command('pki')
    .description('create a development PKI (root CA, release CA, release signers, device CA, trust policy) in an empty directory')
    .requiredOption('--out <dir>', 'directory to create it in (must not already hold a PKI)')
    .option('--signers <n>', 'number of release signers (1-16)', '3')
    .option('--threshold <t>', 'signatures a recorder requires (default 2, or 1 with one signer)')
    .option('--algorithm <alg>', 'signer key algorithm: p256, p384 or rsa3072', 'p256')
    .option('--json', 'print the whole result as JSON')
    .action(async (opts: { out: string; signers: string; threshold?: string; algorithm: string; json?: boolean }) => {
      await runCommand(io, !!opts.json, async () => {
        const algorithm = ALGORITHMS[opts.algorithm];
        if (!algorithm) throw new UsageError(`--algorithm must be p256, p384 or rsa3072, got ${JSON.stringify(opts.algorithm)}`);
        const signers = integer('--signers', opts.signers);
        const threshold = integer('--threshold', opts.threshold);
        const pki = await createDevPki(opts.out, {
          ...(signers === undefined ? {} : { signers }),
          ...(threshold === undefined ? {} : { threshold }),
          signerAlgorithms: [algorithm],
        });
        if (opts.json) printJson(io, { ok: true, ...pki });
        else {
          io.out(
            `development PKI in ${pki.dir}: ${pki.signers.length} release signers (${algorithm}), threshold ${pki.threshold}, ` +
              `trust policy ${pki.trustPolicy} (sha256 ${pki.trustPolicySha256.slice(0, 16)}…)`,
          );
          io.out(`sign with: glassbox release sign BUNDLE --key ${pki.signers[0]?.key} --chain ${pki.signers[0]?.chain}`);
          io.out('private keys are unencrypted (mode 0600): development only, never for a production release');
        }
        return 0;
      });
    });

  release
    .command('build')
    .description('build an UNSIGNED bundle: manifest from a template, SBOM and provenance generated, artifacts streamed in')
    .requiredOption('--template <file>', 'manifest template (JSON): every manifest field except the computed ones')
    .option('--artifact <NAME=ROLE:PATH>', 'an artifact, in bundle order (repeat); ROLE is rootfs, kernel, app, config, trust or other', collect, [])
    .requiredOption('--out <bundle>', 'bundle file to write')
    .option('--now <rfc3339>', 'build time, the SBOM timestamp (default: now); fix it for a reproducible build')
    .option('--keep <dir>', 'also leave manifest.json, the SBOM and the provenance statement in DIR')
    .option('--json', 'print the whole result as JSON')
    .action(async (opts: { template: string; artifact: string[]; out: string; now?: string; keep?: string; json?: boolean }) => {
      await runCommand(io, !!opts.json, async () => {
        const res = await buildRelease({
          template: opts.template,
          artifacts: opts.artifact,
          out: opts.out,
          now: opts.now === undefined ? new Date() : parseNow(opts.now),
          tool: { name: 'glassbox', version: glassboxVersion() },
          ...(opts.keep === undefined ? {} : { keepDir: opts.keep }),
        });
        if (opts.json) printJson(io, { ok: true, ...res });
        else {
          io.out(
            `built UNSIGNED bundle ${res.bundle.path}: ${res.manifest.product} ${res.manifest.version} (securityVersion ${res.manifest.securityVersion}), ` +
              `${res.manifest.artifacts.length} artifacts, ${res.bundle.bytes} bytes, manifest sha256 ${res.manifestSha256}`,
          );
          io.out(`recorders reject it (THRESHOLD_NOT_MET) until enough signers ran: glassbox release sign ${res.bundle.path} --key KEY.pem --chain CHAIN.pem`);
        }
        return 0;
      });
    });

  release
    .command('sign')
    .description('add one signature (signatures/<k>.sig + .pem) to a bundle; each signer runs this with their own key')
    .argument('<bundle>', 'bundle to sign (in place unless --out)')
    .option('--key <key.pem>', "signer's private key (PEM)")
    .option('--signature <file>', 'instead of --key: a signature of the bundle\'s manifest.json made elsewhere (e.g. by an HSM), checked before it is added')
    .requiredOption('--chain <chain.pem>', "signer's certificate chain: leaf first, then intermediates, never the root")
    .option('--pss', 'RSA keys: sign with RSA-PSS (salt 32) instead of PKCS #1 v1.5')
    .option('--out <file>', 'write the signed bundle here and leave the input untouched')
    .option('--json', 'print the whole result as JSON')
    .action(async (bundle: string, opts: { key?: string; signature?: string; chain: string; pss?: boolean; out?: string; json?: boolean }) => {
      await runCommand(io, !!opts.json, async () => {
        if ((opts.key === undefined) === (opts.signature === undefined)) throw new UsageError('give exactly one of --key KEY.pem or --signature SIG');
        if (opts.signature !== undefined && opts.pss) throw new UsageError('--pss applies to --key only (a detached signature is checked as PKCS #1 v1.5 and as PSS)');
        const out = opts.out === undefined ? {} : { out: opts.out };
        const res =
          opts.key !== undefined
            ? await signBundleWithKeyFile(bundle, { key: opts.key, chain: opts.chain, pss: !!opts.pss, ...out })
            : await signBundleWithSignatureFile(bundle, { signature: opts.signature!, chain: opts.chain, ...out });
        if (opts.json) printJson(io, { ok: true, ...res });
        else {
          io.out(
            `signed ${res.path}: signatures/${res.index}.sig added (${res.index} signature${res.index === 1 ? '' : 's'} now) by ${res.subject}, ` +
              `${res.algorithm}, key sha256 ${res.spkiSha256.slice(0, 16)}…; manifest sha256 ${res.manifestSha256}`,
          );
        }
        return 0;
      });
    });

  release
    .command('inspect')
    .description('list what a bundle holds (layout and manifest are checked; signatures and digests are NOT: use glassbox verify)')
    .argument('<bundle>', 'bundle file')
    .option('--json', 'print the whole result as JSON')
    .action(async (bundle: string, opts: { json?: boolean }) => {
      await runCommand(io, !!opts.json, async () => {
        const report = await inspectBundle(bundle);
        if (opts.json) printJson(io, { ok: report.wellFormed, ...report });
        else printInspect(io, report);
        return report.wellFormed ? 0 : 1;
      });
    });
}

function printInspect(io: CliIO, r: InspectReport): void {
  const m = r.manifest;
  if (m) {
    io.out(`${r.path}: ${m.product} ${m.version} (securityVersion ${m.securityVersion}) for ${m.hardware.join(', ')}; released ${m.released}, expires ${m.expires}`);
    io.out(`manifest sha256 ${r.manifestSha256}`);
  } else {
    io.out(`${r.path}: ${r.bytes} bytes`);
  }
  for (const e of r.entries) io.out(`  ${String(e.size).padStart(12)}  ${e.path}`);
  if (r.signers.length === 0) io.out('signers: none (unsigned)');
  for (const s of r.signers) {
    io.out(`signer ${s.index}: ${s.subject ?? '(unreadable certificate)'}${s.issuer ? ` issued by ${s.issuer}` : ''}${s.spkiSha256 ? `, key sha256 ${s.spkiSha256}` : ''}`);
  }
  if (r.wellFormed) io.out('layout well formed; signatures, chains and digests NOT checked (glassbox verify does that)');
  else io.err(`glassbox: ${r.code}: ${r.reason}`);
}
