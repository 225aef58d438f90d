/**
 * `glassbox verify BUNDLE --trust POLICY.json [--hardware MODEL]
 *  [--security-floor N] [--at RFC3339] [--json]`
 *
 * Verifies a firmware bundle (bundle-v1) without installing anything:
 * exit 0 authentic and fitting, 1 rejected with exactly one code, 2 usage
 * or I/O error (unreadable bundle or policy, invalid policy, bad flags).
 * BUNDLE may be `-` for standard input. Without --at the clock is used.
 */
import { open, type FileHandle } from 'node:fs/promises';
import type { Command } from 'commander';
import type { JudgedVerifyContext, VerifyReport } from '../bundle/types.js';
import { IoError, UsageError, describeError } from '../errors.js';
import { runCommand, type CliIO } from './run.js';

/** Largest trust policy file read (the same bound loadTrustAnchors applies). */
const POLICY_FILE_MAX_BYTES = 1024 * 1024;

interface VerifyFlags {
  trust: string;
  hardware?: string;
  securityFloor?: string;
  at?: string;
  json?: boolean;
}

const RFC3339 = /^(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(\.\d{1,9})?([Zz]|[+-]\d{2}:\d{2})$/;
const SECURITY_VERSION_MAX = 2 ** 31 - 1;

/** An RFC 3339 date-time with a zone, or a UsageError. */
export function parseAt(text: string): Date {
  const bad = (): UsageError => new UsageError(`--at ${JSON.stringify(text)} is not an RFC 3339 date-time with a zone (e.g. 2026-06-01T12:00:00Z)`);
  const m = RFC3339.exec(text);
  if (!m) throw bad();
  const [y, mo, d, h, mi, s] = m.slice(1, 7).map(Number) as [number, number, number, number, number, number];
  const fields = new Date(Date.UTC(y, mo - 1, d, h, mi, s));
  // Date.UTC rolls 2026-02-30 over to March 2; a real date reads back the same.
  if (fields.getUTCFullYear() !== y || fields.getUTCMonth() !== mo - 1 || fields.getUTCDate() !== d || fields.getUTCHours() !== h || fields.getUTCMinutes() !== mi || fields.getUTCSeconds() !== s) {
    throw bad();
  }
  const ms = Date.parse(text.toUpperCase());
  if (Number.isNaN(ms)) throw bad();
  return new Date(ms);
}

export function parseSecurityFloor(text: string): number {
  if (!/^(0|[1-9][0-9]{0,9})$/.test(text) || Number(text) > SECURITY_VERSION_MAX) {
    throw new UsageError(`--security-floor ${JSON.stringify(text)} is not an integer between 0 and ${SECURITY_VERSION_MAX}`);
  }
  return Number(text);
}

/** Reads the policy file, never more than the limit + 1 bytes (so `--trust /dev/zero` ends). */
async function readPolicy(path: string): Promise<Buffer> {
  let fh: FileHandle | undefined;
  try {
    fh = await open(path, 'r');
    const buf = Buffer.alloc(POLICY_FILE_MAX_BYTES + 1);
    let filled = 0;
    for (;;) {
      const { bytesRead } = await fh.read(buf, filled, buf.length - filled, null);
      if (bytesRead === 0 || filled + bytesRead === buf.length) {
        filled += bytesRead;
        break;
      }
      filled += bytesRead;
    }
    if (filled > POLICY_FILE_MAX_BYTES) throw new IoError(`trust policy ${path} is over ${POLICY_FILE_MAX_BYTES} bytes`);
    return buf.subarray(0, filled);
  } catch (err) {
    if (err instanceof IoError) throw err;
    throw new IoError(`cannot read trust policy ${path}: ${describeError(err)}`, { cause: err });
  } finally {
    await fh?.close();
  }
}

export function register(program: Command, io: CliIO): void {
  program
    .command('verify')
    .description('verify a firmware bundle offline: signatures, trust policy, expiry, hardware, rollback, every artifact digest')
    .argument('<bundle>', 'bundle file, or - to read it from standard input')
    .requiredOption('--trust <policy.json>', 'trust policy file (canonical JSON: roots, threshold, revocations)')
    .option('--hardware <model>', 'device hardware model to check against the manifest (skipped when absent)')
    .option('--security-floor <n>', 'anti-rollback floor: refuse a securityVersion below it', '0')
    .option('--at <rfc3339>', 'verification time (default: now)')
    .option('--json', 'print the whole report as JSON')
    .action(async (bundle: string, flags: VerifyFlags) => {
      await runCommand(io, flags.json === true, async () => {
        const at = flags.at === undefined ? new Date() : parseAt(flags.at);
        const securityFloor = parseSecurityFloor(flags.securityFloor ?? '0');
        if (flags.hardware !== undefined && flags.hardware.trim() === '') throw new UsageError('--hardware must not be empty');
        const policy = await readPolicy(flags.trust);
        // The signers are judged in a worker thread, started first: it loads
        // the X.509 library and the policy while this thread loads the
        // verifier and hashes (src/trust/judge-thread.ts). The verifier is
        // loaded here, not at the top: registering the command must not cost
        // every other command its imports.
        const { startJudgeThread } = await import('../trust/judge-thread.js');
        const judge = startJudgeThread(policy);
        try {
          const [{ verifyBundle, verifyBundleFile }, { describeVerifyReport, verifyReportJson }] = await Promise.all([
            import('../bundle/verify.js'),
            import('../bundle/report.js'),
          ]);
          const ctx: JudgedVerifyContext = { judge, at, hardware: flags.hardware, securityFloor };
          let report: VerifyReport;
          try {
            report = bundle === '-' ? await verifyBundle(process.stdin, ctx) : await verifyBundleFile(bundle, ctx);
          } finally {
            // The policy is read before the bundle: its fault (a rejected `ready`) comes first.
            await judge.ready;
          }
          io.out(flags.json ? JSON.stringify(verifyReportJson(report), null, 2) : describeVerifyReport(report, flags.hardware));
          return report.ok ? 0 : 1;
        } finally {
          await judge.close();
        }
      });
    });
}
