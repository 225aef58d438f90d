/**
 * `glassbox verify-attestation FILE --trust POLICY.json --nonce N [--max-age SECONDS] [--json]`
 *
 * Verifies an attestation envelope offline (attestation-v1 §3): exit 0 when
 * it is authentic and fresh (printing the verdict and any undeclared
 * flows), 1 when it is not (saying why, every fault), 2 for usage or I/O
 * errors. Authentic and fresh does not mean clean: read the verdict.
 */
import { open } from 'node:fs/promises';
import type { Command } from 'commander';
import { ENVELOPE_MAX_BYTES } from '../attestation/dsse.js';
import { isValidNonce } from '../attestation/statement.js';
import { verifyAttestation, type AttestationReport } from '../attestation/verify.js';
import { IoError, UsageError, describeError } from '../errors.js';
import { TRUST_POLICY_MAX_BYTES, loadTrustAnchors } from '../trust/policy.js';
import { runCommand, type CliIO } from './run.js';

interface Flags {
  trust: string;
  nonce: string;
  maxAge: string;
  json?: boolean;
}

export const DEFAULT_MAX_AGE_SECONDS = 300;

async function readBounded(path: string, max: number, what: string): Promise<Buffer> {
  let fh;
  try {
    fh = await open(path, 'r');
  } catch (e) {
    throw new IoError(`cannot read ${what} ${path}: ${describeError(e)}`, { cause: e });
  }
  try {
    const buf = Buffer.alloc(max + 1);
    let n = 0;
    for (;;) {
      const { bytesRead } = await fh.read(buf, n, buf.length - n, null);
      if (bytesRead === 0) break;
      n += bytesRead;
      if (n > max) throw new IoError(`${what} ${path} is over ${max} bytes`);
    }
    return buf.subarray(0, n);
  } finally {
    await fh.close();
  }
}

export function describeReport(r: AttestationReport): string[] {
  const lines: string[] = [];
  if (!r.ok) {
    lines.push(`REJECTED (${r.code}): the envelope is not an authentic, fresh attestation`);
    for (const f of r.failures) lines.push(`  ${f.code}: ${f.reason}`);
    return lines;
  }
  const o = r.observation!;
  lines.push(`authentic and fresh: device ${r.deviceId}, issued ${r.issuedAt}`);
  lines.push(`verdict: ${r.verdict}  (flows counted ${o.flowsCounted}, recorded ${o.flowsRecorded}, events lost ${o.eventsLost}, ruleset intact ${o.rulesetIntact}, gaps ${o.gaps.length})`);
  for (const reason of r.statement?.predicate.reasons ?? []) lines.push(`  - ${reason}`);
  if (r.undeclaredFlows.length > 0) {
    lines.push(`undeclared flows (${r.undeclared} in all):`);
    for (const f of r.undeclaredFlows.slice(0, 50)) {
      const who = f.direction === 'forwarded' ? `from ${f.src}${f.srcMac ? ` (${f.srcMac})` : ''}` : `uid ${f.uids.join(',') || '?'}${f.process ? ` pid ${f.process.pid} ${f.process.exe ?? ''}` : ''}`;
      lines.push(`  ${f.direction} ${f.proto} ${f.src} -> ${f.dst}:${f.dport ?? '-'}  x${f.count}  ${who}  ${f.firstSeen} .. ${f.lastSeen}`);
    }
    if (r.undeclaredFlows.length > 50) lines.push(`  … and ${r.undeclaredFlows.length - 50} more (see --json)`);
  }
  return lines;
}

export function register(program: Command, io: CliIO): void {
  program
    .command('verify-attestation')
    .description('verify a "no hidden egress" attestation envelope offline: chain, device, signature, nonce, freshness')
    .argument('<file>', 'the envelope (from glassbox attest or GET /v1/attestation)')
    .requiredOption('--trust <policy.json>', 'trust policy with the root the device certificate chains to')
    .requiredOption('--nonce <nonce>', 'the nonce you sent')
    .option('--max-age <seconds>', 'largest accepted age of issuedAt', String(DEFAULT_MAX_AGE_SECONDS))
    .option('--json', 'print the whole report as JSON')
    .action(async (file: string, flags: Flags) => {
      await runCommand(io, flags.json === true, async () => {
        if (!isValidNonce(flags.nonce)) throw new UsageError('--nonce must be 16–128 characters of [A-Za-z0-9_-]');
        if (!/^[1-9][0-9]{0,8}$/.test(flags.maxAge)) throw new UsageError(`--max-age ${JSON.stringify(flags.maxAge)} is not a positive number of seconds`);
        const anchors = loadTrustAnchors(await readBounded(flags.trust, TRUST_POLICY_MAX_BYTES, 'trust policy'));
        const bytes = await readBounded(file, ENVELOPE_MAX_BYTES, 'envelope');
        const report = verifyAttestation(bytes, anchors, { nonce: flags.nonce, now: new Date(), maxAgeSeconds: Number(flags.maxAge) });
        if (flags.json) io.out(JSON.stringify(report, null, 2));
        else for (const l of describeReport(report)) (report.ok ? io.out : io.err)(l);
        return report.ok ? 0 : 1;
      });
    });
}
