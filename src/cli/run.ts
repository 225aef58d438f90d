import { GlassboxError, describeError } from '../errors.js';

/** Where a command's output goes; tests pass their own. */
export interface CliIO {
  out(line: string): void;
  err(line: string): void;
}

export const processIO: CliIO = {
  out: (line) => process.stdout.write(line + '\n'),
  err: (line) => process.stderr.write(line + '\n'),
};

/**
 * Runs one command body and turns its result into an exit status:
 * the body returns 0 or 1; a GlassboxError escaping it prints its message
 * (and, with --json, a JSON error object) and exits with its exitCode;
 * anything else is an internal error, exit 2.
 */
export async function runCommand(io: CliIO, json: boolean, body: () => Promise<number>): Promise<void> {
  let status: number;
  try {
    status = await body();
  } catch (err) {
    if (err instanceof GlassboxError) {
      if (json) io.out(JSON.stringify({ ok: false, code: err.code, reason: err.message }, null, 2));
      io.err(`glassbox: ${err.message}`);
      status = err.exitCode;
    } else {
      io.err(`glassbox: internal error: ${describeError(err)}`);
      if (err instanceof Error && err.stack && process.env['GLASSBOX_DEBUG']) io.err(err.stack);
      status = 2;
    }
  }
  process.exitCode = status;
}
