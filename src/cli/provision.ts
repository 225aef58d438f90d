/**
 * `glassbox provision init|import`: turns a new recorder into a trusted,
 * reporting member of the fleet. Parse → call → print; the work is in
 * src/provision/.
 */
import type { Command } from 'commander';
import { UsageError } from '../errors.js';
import { ACCEPTED_KEY_ALGORITHMS, type AcceptedKeyAlgorithm } from '../pki/keys.js';
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { DEFAULT_CONFIG_PATH } from '../config/defaults.js';
import { readConfigFile } from '../config/load.js';
import { STATE_DIR_HELP, resolveStateDir } from '../install/cli-support.js';
import { currentBootId } from '../install/lock.js';
import { importChecklist, renderChecks } from '../provision/checklist.js';
import { readBounded } from '../provision/files.js';
import { BROKER_CA_MAX_BYTES, provisionImport } from '../provision/import.js';
import { provisionInit } from '../provision/init.js';
import { CERT_MAX_BYTES } from '../status/device.js';
import { TRUST_POLICY_MAX_BYTES } from '../trust/policy.js';
import { clearPassword, setPassword } from '../statuspage/password-file.js';
import { DEFAULT_OWNER_SPEC, lookupOwner } from '../provision/owner.js';
import { runCommand, type CliIO } from './run.js';

interface ImportOptions {
  chain: string;
  trust: string;
  broker: string;
  brokerCa: string;
  config: string;
  stateDir?: string;
  force?: boolean;
  skipBrokerCheck?: boolean;
  brokerTimeout: string;
  json?: boolean;
}

function daemonVersion(): string {
  try {
    return (JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }).version;
  } catch {
    return 'unknown';
  }
}

interface InitOptions {
  deviceId: string;
  hardware: string;
  stateDir?: string;
  outCsr?: string;
  force?: boolean;
  owner: string;
  keyAlgorithm: string;
  json?: boolean;
}

export function register(program: Command, io: CliIO): void {
  const provision = program.command('provision').description('make this recorder a trusted member of the fleet: identity key, CSR, certificate import, broker check');

  provision
    .command('init')
    .description('create the identity key on this recorder (it never leaves it) and write the CSR to carry to ops')
    .requiredOption('--device-id <id>', "this recorder's device id (goes into the certificate's CN)")
    .requiredOption('--hardware <model>', 'hardware model (goes into the certificate subject as OU)')
    .option('--state-dir <dir>', STATE_DIR_HELP)
    .option('--out-csr <file>', 'also write the CSR here (a file, or a directory such as a USB stick)')
    .option('--owner <user[:group]>', "the daemon's account, owner of the identity files", DEFAULT_OWNER_SPEC)
    .option('--key-algorithm <alg>', `identity key algorithm (${ACCEPTED_KEY_ALGORITHMS.join(', ')})`, 'ecdsa-p256')
    .option('--force', 'replace an existing identity (the old one is kept in identity.replaced-<time>)')
    .option('--json', 'print the whole result as JSON')
    .action(async (opts: InitOptions) => {
      await runCommand(io, opts.json === true, async () => {
        if (!(ACCEPTED_KEY_ALGORITHMS as readonly string[]).includes(opts.keyAlgorithm)) {
          throw new UsageError(`--key-algorithm must be one of ${ACCEPTED_KEY_ALGORITHMS.join(', ')}, got ${JSON.stringify(opts.keyAlgorithm)}`);
        }
        const owner = await lookupOwner(opts.owner);
        const result = await provisionInit({
          stateDir: resolveStateDir(opts.stateDir),
          deviceId: opts.deviceId,
          hardware: opts.hardware,
          keyAlgorithm: opts.keyAlgorithm as AcceptedKeyAlgorithm,
          owner,
          force: opts.force === true,
          outCsr: opts.outCsr ?? null,
          now: new Date(),
        });
        if (opts.json) {
          io.out(JSON.stringify({ ok: true, ...result, owner }, null, 2));
          return 0;
        }
        io.out(
          result.reusedKey
            ? `identity key for ${result.deviceId} already exists (no certificate yet): CSR written again from the same key`
            : `identity key created for ${result.deviceId} (${result.hardware}), ${result.keyAlgorithm}`,
        );
        io.out(`  key      ${result.keyPath} (mode 0600, uid ${owner.uid} gid ${owner.gid}; never leaves this recorder)`);
        io.out(`  key id   sha256 ${result.spkiSha256} (public key fingerprint)`);
        io.out(`  csr      ${result.csrPath}`);
        if (result.outCsr) io.out(`  copy     ${result.outCsr}`);
        if (result.replacedTo) io.out(`  old identity kept in ${result.replacedTo}`);
        io.out('next: take the CSR to ops (`glassbox ca issue-device`), then `glassbox provision import CERT …` here');
        return 0;
      });
    });

  provision
    .command('import')
    .description("import the certificate ops issued for this recorder's CSR, write the daemon configuration, check the broker, print the checklist")
    .argument('<cert>', 'device certificate from `glassbox ca issue-device --out` (PEM)')
    .requiredOption('--chain <file>', 'device CA chain (PEM, e.g. device-ca.pem; the root may be left out)')
    .requiredOption('--trust <policy.json>', 'trust policy (canonical JSON) holding the root the device CA chains to')
    .requiredOption('--broker <url>', 'MQTT broker, mqtts://HOST:PORT')
    .requiredOption('--broker-ca <file>', "CA certificate that signed the broker's certificate (PEM)")
    .option('--config <file>', 'daemon configuration file to write', DEFAULT_CONFIG_PATH)
    .option('--state-dir <dir>', STATE_DIR_HELP)
    .option('--force', 'replace an already imported certificate (the old one is kept in identity.replaced-<time>)')
    .option('--skip-broker-check', 'write the identity without the broker check (the checklist then shows it as failed)')
    .option('--broker-timeout <seconds>', 'time limit of the whole broker check', '10')
    .option('--json', 'print the whole result as JSON')
    .action(async (certPath: string, opts: ImportOptions) => {
      await runCommand(io, opts.json === true, async () => {
        const timeout = Number(opts.brokerTimeout);
        if (!/^[0-9]{1,3}$/.test(opts.brokerTimeout) || timeout < 1 || timeout > 300) throw new UsageError(`--broker-timeout must be 1-300 seconds, got ${JSON.stringify(opts.brokerTimeout)}`);
        const stateDir = resolveStateDir(opts.stateDir);
        const configPath = resolve(opts.config);
        const now = new Date();
        const result = await provisionImport({
          stateDir,
          certFile: certPath,
          certPem: await readBounded(certPath, CERT_MAX_BYTES, 'certificate'),
          chainFile: opts.chain,
          chainPem: await readBounded(opts.chain, CERT_MAX_BYTES, 'device CA chain'),
          trustFile: opts.trust,
          trustBytes: await readBounded(opts.trust, TRUST_POLICY_MAX_BYTES, 'trust policy'),
          brokerUrl: opts.broker,
          brokerCaFile: opts.brokerCa,
          brokerCaPem: await readBounded(opts.brokerCa, BROKER_CA_MAX_BYTES, 'broker CA'),
          configPath,
          existingConfig: await readConfigFile(configPath, false),
          force: opts.force === true,
          skipBrokerCheck: opts.skipBrokerCheck === true,
          brokerTimeoutMs: timeout * 1000,
          now,
          clock: () => new Date(),
          daemonVersion: daemonVersion(),
          bootId: currentBootId(),
        });
        const checks = await importChecklist(stateDir, result, now);
        const failed = checks.filter((c) => c.state === 'fail').length;
        if (opts.json) {
          io.out(JSON.stringify({ ok: true, ...result, checks }, null, 2));
          return 0;
        }
        io.out(
          result.unchanged
            ? `${result.deviceId}: this certificate was already imported; configuration rewritten and checks run again`
            : `${result.deviceId}: certificate imported (serial ${result.certificate.serial}, valid until ${result.certificate.notAfter}), configuration written to ${result.files.config}`,
        );
        if (result.deviceStateInitialised) io.out(`device state created in ${stateDir} with trust policy ${result.trustPolicySha256.slice(0, 16)}…`);
        if (result.replacedTo) io.out(`previous certificate kept in ${result.replacedTo}`);
        for (const line of renderChecks(checks)) io.out(line);
        io.out(failed === 0 ? 'next: start the daemon (systemctl restart glassbox) and check `glassbox status`' : `${failed} check(s) need attention (see fix lines above)`);
        return 0;
      });
    });

  provision
    .command('password')
    .description('set (from standard input) or clear the technician password of the status page; stored as an scrypt hash')
    .option('--state-dir <dir>', STATE_DIR_HELP)
    .option('--clear', 'remove the password: the page is then open on its address (loopback by default)')
    .option('--json', 'print the result as JSON')
    .action(async (opts: { stateDir?: string; clear?: boolean; json?: boolean }) => {
      await runCommand(io, opts.json === true, async () => {
        const stateDir = resolveStateDir(opts.stateDir);
        if (opts.clear) {
          const r = await clearPassword(stateDir);
          io.out(opts.json ? JSON.stringify({ ok: true, ...r }, null, 2) : r.removed ? `status page password removed (${r.path})` : 'no status page password was set');
          return 0;
        }
        const password = await readSecretLine(io);
        const r = await setPassword(stateDir, password, new Date());
        io.out(opts.json ? JSON.stringify({ ok: true, ...r }, null, 2) : `status page password set (scrypt hash in ${r.path}); the daemon asks for it from now on`);
        return 0;
      });
    });
}

/** One line from standard input, at most 1 KiB; on a terminal, read without echo. */
async function readSecretLine(io: CliIO): Promise<string> {
  const stdin = process.stdin;
  if (stdin.isTTY) {
    io.err('status page password (not shown): ');
    stdin.setRawMode(true);
  }
  const chunks: Buffer[] = [];
  let size = 0;
  try {
    for await (const chunk of stdin) {
      const b = Buffer.isBuffer(chunk) ? chunk : Buffer.from(String(chunk));
      if (stdin.isTTY && b.includes(3)) throw new UsageError('cancelled');
      chunks.push(b);
      size += b.length;
      if (size > 1024) throw new UsageError('password input over 1 KiB');
      const text = Buffer.concat(chunks).toString('utf8');
      if (/[\r\n]/.test(text)) break;
    }
  } finally {
    if (stdin.isTTY) stdin.setRawMode(false);
    stdin.pause();
  }
  const line = Buffer.concat(chunks).toString('utf8').split(/\r?\n|\r/)[0] ?? '';
  if (line === '') throw new UsageError('no password on standard input');
  return line;
}
