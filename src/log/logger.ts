/**
 * The one root pino logger of a glassbox process, and a child per module.
 *
 *   const root = createRootLogger({ level: 'info' });
 *   const log = moduleLogger(root, 'telemetry');
 *   log.info({ topic }, 'published');
 *
 * JSON lines go to stdout (journald adds the timestamp and unit). Secrets are
 * redacted by path wherever they appear in a logged object; untrusted data
 * (a command payload from the broker, a file's contents) goes under its own
 * key (`untrusted`) and is truncated by the caller, never spread into the
 * record.
 */
import { pino, type DestinationStream, type Logger, type LevelWithSilent } from 'pino';

export type { Logger } from 'pino';

/** Paths pino censors in every record, at the top level and one or two levels down. */
export const REDACT_PATHS: readonly string[] = [
  'password',
  'key',
  'privateKey',
  'passphrase',
  'authorization',
  '*.password',
  '*.key',
  '*.privateKey',
  '*.passphrase',
  '*.authorization',
  '*.*.password',
  '*.*.key',
  '*.*.privateKey',
];

export interface RootLoggerOptions {
  readonly level?: LevelWithSilent;
  /** Where JSON lines go; default stdout, written synchronously so nothing is lost on exit. */
  readonly destination?: DestinationStream;
  /** Extra fields on every record (e.g. deviceId). */
  readonly base?: Record<string, unknown>;
}

export function createRootLogger(opts: RootLoggerOptions = {}): Logger {
  const destination = opts.destination ?? pino.destination({ dest: 1, sync: true });
  return pino(
    {
      level: opts.level ?? 'info',
      base: { pid: process.pid, ...(opts.base ?? {}) },
      redact: { paths: [...REDACT_PATHS], censor: '[redacted]' },
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
    },
    destination,
  );
}

/** A child logger naming its module: one per module, created where the module is wired. */
export function moduleLogger(root: Logger, module: string): Logger {
  return root.child({ module });
}

/** Shortens untrusted text for a log line (bounded, printable). */
export function untrustedSnippet(data: Buffer | string, max = 200): string {
  const text = typeof data === 'string' ? data : data.subarray(0, max * 4).toString('utf8');
  // eslint-disable-next-line no-control-regex
  const clean = text.replace(/[\u0000-\u001f\u007f]/g, '?');
  return clean.length > max ? `${clean.slice(0, max)}…(${text.length} chars)` : clean;
}
