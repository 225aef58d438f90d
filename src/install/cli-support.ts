/**
 * Small helpers shared by the install-side commands (edge): where the
 * state directory is, and how a bundle source is opened.
 */
import { stat } from 'node:fs/promises';
import { resolve } from 'node:path';
import { IoError, UsageError } from '../errors.js';
/** Same as state-store's DEFAULT_STATE_DIR; kept here so registering a command loads nothing heavy. */
export const DEFAULT_STATE_DIR = '/var/lib/glassbox';

export const STATE_DIR_ENV = 'GLASSBOX_STATE_DIR';
export const STATE_DIR_HELP = `device state directory (default: $${STATE_DIR_ENV} or ${DEFAULT_STATE_DIR})`;

/** --state-dir beats GLASSBOX_STATE_DIR beats the default. */
export function resolveStateDir(flag: string | undefined, env: Readonly<Record<string, string | undefined>> = process.env): string {
  const chosen = flag ?? env[STATE_DIR_ENV] ?? DEFAULT_STATE_DIR;
  if (chosen.trim() === '') throw new UsageError('the state directory must not be empty');
  return resolve(chosen);
}

/** A bundle as a byte source: '-' is standard input, anything else a regular file. */
export async function openBundleSource(path: string): Promise<{ source: AsyncIterable<Buffer | Uint8Array>; name: string; size: number | null }> {
  if (path === '-') return { source: process.stdin, name: '-', size: null };
  let st;
  try {
    st = await stat(path);
  } catch (err) {
    throw new IoError(`cannot read bundle ${path}: ${(err as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : (err as Error).message}`, { cause: err });
  }
  if (st.isDirectory()) throw new UsageError(`${path} is a directory, not a bundle file`);
  const { readFileChunks } = await import('../bundle/reader.js');
  return { source: readFileChunks(path), name: resolve(path), size: st.isFile() ? st.size : null };
}

/** A VerifyReport without its raw buffers, for --json output. */
export function reportForJson<T extends object>(report: T): Omit<T, 'manifestBytes' | 'manifestObject' | 'newTrustPolicy'> {
  const { manifestBytes: _b, manifestObject: _m, newTrustPolicy: _t, ...rest } = report as T & { manifestBytes?: unknown; manifestObject?: unknown; newTrustPolicy?: unknown };
  return rest;
}
