/**
 * `glassbox device init`: what the factory does once. Creates the state
 * directory with the trust policy, the hardware model and two empty slots.
 * Refuses to touch a directory that already holds a device state.
 */
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { loadTrustAnchors } from '../trust/policy.js';
import { UsageError } from '../errors.js';
import { fsyncDir } from './durable.js';
import { fsFailure, InstallError } from './errors.js';
import { appendJournal } from './journal.js';
import { initialState, DEFAULT_MAX_BOOT_ATTEMPTS, type DeviceState } from './state.js';
import { HEALTH_DIR, SLOTS_DIR, StateDir, TRUST_DIR } from './state-store.js';

export interface InitOptions {
  readonly stateDir: string;
  readonly trustBytes: Buffer;
  readonly hardware: string;
  readonly clock: Date;
  readonly maxBootAttempts?: number;
}

export const HARDWARE_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;

export async function initDevice(opts: InitOptions): Promise<DeviceState> {
  if (!HARDWARE_PATTERN.test(opts.hardware)) throw new UsageError(`hardware model ${JSON.stringify(opts.hardware)} is not a valid model id ([A-Za-z0-9._-], up to 128 characters)`);
  const attempts = opts.maxBootAttempts ?? DEFAULT_MAX_BOOT_ATTEMPTS;
  if (!Number.isInteger(attempts) || attempts < 1 || attempts > 100) throw new UsageError(`--max-boot-attempts must be an integer from 1 to 100`);
  const anchors = loadTrustAnchors(opts.trustBytes); // fail closed: no usable policy, no device
  const dir = new StateDir(opts.stateDir);
  if (await dir.isInitialised()) throw new InstallError('ALREADY_INITIALISED', `${opts.stateDir} already holds a device state; refusing to overwrite it`);
  try {
    await mkdir(opts.stateDir, { recursive: true, mode: 0o755 });
    for (const sub of [TRUST_DIR, SLOTS_DIR, HEALTH_DIR]) await mkdir(join(opts.stateDir, sub), { recursive: true, mode: 0o755 });
    await fsyncDir(opts.stateDir);
  } catch (err) {
    throw fsFailure(err, `creating ${opts.stateDir}`);
  }
  const sha = await dir.storeTrust(opts.trustBytes);
  if (sha !== anchors.sha256) throw new InstallError('STATE_IO', `trust policy digest mismatch (${sha} vs ${anchors.sha256})`);
  const state = initialState({ hardware: opts.hardware, trustPolicy: sha, trustedTime: opts.clock, maxBootAttempts: attempts });
  await dir.create(state);
  await appendJournal(opts.stateDir, {
    at: opts.clock.toISOString(),
    command: 'init',
    outcome: 'ok',
    code: null,
    reason: `device initialised for hardware ${opts.hardware}`,
    slot: null,
    version: null,
    securityVersion: null,
    manifestSha256: null,
    generation: state.generation,
    source: null,
  }).catch(() => undefined);
  return state;
}
