/** The edge of config loading: reads the file (bounded) and hands the layers to resolveConfig. */
import { readFile, stat } from 'node:fs/promises';
import { IoError } from '../errors.js';
import { ConfigError, resolveConfig, type ResolvedConfig } from './resolve.js';

export const CONFIG_MAX_BYTES = 256 * 1024;

export interface LoadOptions {
  /** Config file path. */
  readonly path: string;
  /** true when the path was given explicitly (--config / GLASSBOX_CONFIG): a missing file is then an error. */
  readonly explicit: boolean;
  readonly env: Readonly<Record<string, string | undefined>>;
  readonly flags: Readonly<Record<string, unknown>>;
}

export async function readConfigFile(path: string, explicit: boolean): Promise<unknown | undefined> {
  let size: number;
  try {
    size = (await stat(path)).size;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT' && !explicit) return undefined;
    throw new IoError(`cannot read config file ${path}: ${(err as Error).message}`, { cause: err });
  }
  if (size > CONFIG_MAX_BYTES) throw new ConfigError([`${path}: file is ${size} bytes, over the ${CONFIG_MAX_BYTES}-byte limit`]);
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    throw new IoError(`cannot read config file ${path}: ${(err as Error).message}`, { cause: err });
  }
  try {
    return JSON.parse(text) as unknown;
  } catch (err) {
    throw new ConfigError([`${path}: not JSON: ${(err as Error).message}`]);
  }
}

export async function loadConfig(opts: LoadOptions): Promise<ResolvedConfig & { readonly file: string | null }> {
  const value = await readConfigFile(opts.path, opts.explicit);
  const resolved = resolveConfig({
    file: value === undefined ? undefined : { name: opts.path, value },
    env: opts.env,
    flags: opts.flags,
  });
  return { ...resolved, file: value === undefined ? null : opts.path };
}
