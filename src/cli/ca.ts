/**
 * `glassbox ca issue-device CSR --ca-cert FILE --ca-key FILE --out CERT`:
 * the ops side of enrollment, run offline next to the device CA.
 */
import { dirname, join, resolve } from 'node:path';
import type { Command } from 'commander';
import { UsageError } from '../errors.js';
import { DEFAULT_DEVICE_CERT_DAYS, MAX_DEVICE_CERT_DAYS, issueDevice } from '../ca/issue.js';
import { readBounded } from '../provision/files.js';
import { runCommand, type CliIO } from './run.js';

interface IssueOptions {
  caCert: string;
  caKey: string;
  days: string;
  log?: string;
  allowReissue?: boolean;
  out: string;
  json?: boolean;
}

export function register(program: Command, io: CliIO): void {
  const ca = program.command('ca').description('ops side: issue device identity certificates from the device CA (offline)');
  ca.command('issue-device')
    .description("check a recorder's CSR and issue its client certificate; every certificate is recorded in the issuance log")
    .argument('<csr>', 'device.csr from `glassbox provision init` (PEM or DER)')
    .requiredOption('--ca-cert <file>', 'device CA certificate (PEM)')
    .requiredOption('--ca-key <file>', 'device CA private key (PEM)')
    .option('--days <n>', `validity in days (1-${MAX_DEVICE_CERT_DAYS})`, String(DEFAULT_DEVICE_CERT_DAYS))
    .option('--log <file>', 'issuance log (JSON lines; default: device-issuance.jsonl beside the CA certificate)')
    .option('--allow-reissue', 'issue even though the log already holds a certificate for this device id')
    .requiredOption('--out <file>', 'where to write the certificate (PEM), e.g. on the USB stick')
    .option('--json', 'print the whole result as JSON')
    .action(async (csrPath: string, opts: IssueOptions) => {
      await runCommand(io, opts.json === true, async () => {
        const days = Number(opts.days);
        if (!/^[0-9]+$/.test(opts.days) || days < 1 || days > MAX_DEVICE_CERT_DAYS) {
          throw new UsageError(`--days must be a whole number from 1 to ${MAX_DEVICE_CERT_DAYS}, got ${JSON.stringify(opts.days)}`);
        }
        const logPath = resolve(opts.log ?? join(dirname(opts.caCert), 'device-issuance.jsonl'));
        const result = await issueDevice({
          csr: await readBounded(csrPath, 64 * 1024, 'CSR'),
          caCert: await readBounded(opts.caCert, 64 * 1024, 'CA certificate'),
          caKey: await readBounded(opts.caKey, 64 * 1024, 'CA key'),
          days,
          now: new Date(),
          logPath,
          allowReissue: opts.allowReissue === true,
          outPath: resolve(opts.out),
        });
        if (opts.json) {
          io.out(JSON.stringify({ ok: true, ...result, previous: result.previous.map((e) => ({ serial: e.serial, issuedAt: e.issuedAt })) }, null, 2));
        } else {
          io.out(`issued ${result.reissue ? 're-issued ' : ''}device certificate for ${result.deviceId} (${result.hardware}), ${result.key} key ${result.spkiSha256.slice(0, 16)}…`);
          io.out(`  serial  ${result.serial}`);
          io.out(`  valid   ${result.notBefore} to ${result.notAfter}`);
          io.out(`  issuer  ${result.issuer}`);
          io.out(`  wrote   ${result.out} (sha256 ${result.certSha256})`);
          io.out(`  logged  ${result.log}`);
        }
        return 0;
      });
    });
}
