/**
 * Typed errors with stable string codes. The code is the contract (tests and
 * scripts match on it); the message is for people and may change.
 *
 * Exit codes used by every command (see docs/cli.md):
 *   0 success, 1 input judged and rejected, 2 usage or I/O error.
 */
export class GlassboxError extends Error {
  readonly code: string;
  /** Process exit status a command should end with when this error escapes. */
  readonly exitCode: 1 | 2;

  constructor(code: string, message: string, options: { cause?: unknown; exitCode?: 1 | 2 } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = new.target.name;
    this.code = code;
    this.exitCode = options.exitCode ?? 2;
  }
}

/** Bad command line: unknown flag, missing argument, malformed value. Exit 2. */
export class UsageError extends GlassboxError {
  constructor(message: string, options: { cause?: unknown } = {}) {
    super('USAGE', message, { ...options, exitCode: 2 });
  }
}

/** A file or socket could not be read or written. Exit 2. */
export class IoError extends GlassboxError {
  constructor(message: string, options: { cause?: unknown } = {}) {
    super('IO', message, { ...options, exitCode: 2 });
  }
}

/** Human-readable one-liner for any thrown value, without a stack. */
export function describeError(err: unknown): string {
  if (err instanceof Error) return err.message;
  return String(err);
}
