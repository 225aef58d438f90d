/**
 * `glassbox attest --nonce N [--out FILE] [--socket PATH | --api URL] [--json]`
 *
 * Asks the running daemon's local API for a signed egress attestation bound
 * to the nonce and prints the envelope (or writes it to FILE). Exit 0 when
 * an envelope was received, 2 for usage or I/O errors (bad nonce, daemon
 * not reachable, the API refusing). Verify it with `verify-attestation`.
 */
import { writeFile } from 'node:fs/promises';
import type { Command } from 'commander';
import { apiGet } from '../api/client.js';
import { ENVELOPE_MAX_BYTES } from '../attestation/dsse.js';
import { isValidNonce } from '../attestation/statement.js';
import { GlassboxError, IoError, UsageError, describeError } from '../errors.js';
import { runCommand, type CliIO } from './run.js';

interface AttestFlags {
  nonce: string;
  out?: string;
  socket?: string;
  api?: string;
  json?: boolean;
}

export const DEFAULT_API_URL = 'http://127.0.0.1:8780';

export function register(program: Command, io: CliIO): void {
  program
    .command('attest')
    .description('get a signed "no hidden egress" attestation from the running daemon, bound to a nonce')
    .requiredOption('--nonce <nonce>', 'your nonce: 16–128 characters of [A-Za-z0-9_-]')
    .option('--out <file>', 'write the envelope to this file instead of standard output')
    .option('--socket <path>', 'the daemon API Unix socket')
    .option('--api <url>', `the daemon API over loopback TCP (default ${DEFAULT_API_URL})`)
    .option('--json', 'print a JSON summary (with --out) or errors as JSON')
    .action(async (flags: AttestFlags) => {
      await runCommand(io, flags.json === true, async () => {
        if (!isValidNonce(flags.nonce)) throw new UsageError('--nonce must be 16–128 characters of [A-Za-z0-9_-]');
        if (flags.socket !== undefined && flags.api !== undefined) throw new UsageError('give --socket or --api, not both');
        const target = flags.socket !== undefined ? { socketPath: flags.socket } : { url: flags.api ?? DEFAULT_API_URL };
        const reply = await apiGet(target, `/v1/attestation?nonce=${encodeURIComponent(flags.nonce)}`, { maxBytes: ENVELOPE_MAX_BYTES });
        if (reply.status !== 200) {
          let reason = reply.body.toString('utf8').slice(0, 500);
          try {
            const j = JSON.parse(reason) as { error?: string; reason?: string };
            reason = `${j.error ?? 'error'}: ${j.reason ?? ''}`;
          } catch { /* raw text */ }
          throw new GlassboxError('API_REFUSED', `the daemon refused the attestation (HTTP ${reply.status}): ${reason}`, { exitCode: 2 });
        }
        if (flags.out !== undefined) {
          try {
            await writeFile(flags.out, reply.body, { mode: 0o644 });
          } catch (e) {
            throw new IoError(`cannot write ${flags.out}: ${describeError(e)}`, { cause: e });
          }
          if (flags.json) io.out(JSON.stringify({ ok: true, out: flags.out, bytes: reply.body.length }, null, 2));
          else io.out(`attestation envelope (${reply.body.length} bytes) written to ${flags.out}; check it with: glassbox verify-attestation ${flags.out} --trust POLICY.json --nonce ${flags.nonce}`);
        } else {
          io.out(reply.body.toString('utf8'));
        }
        return 0;
      });
    });
}
