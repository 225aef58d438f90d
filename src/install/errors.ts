import { GlassboxError } from '../errors.js';

/**
 * Failure classes of the install / boot / rollback machinery. Bundle
 * rejections keep the bundle-v1 codes (BundleRejected, exit 1); these are the
 * device-side failures around them.
 *
 * Exit 1 (judged and refused): SLOT_REFUSED, NO_FALLBACK.
 * Exit 2 (usage, I/O, device state): everything else.
 */
export const INSTALL_ERROR_CODES = {
  /** The state directory has no state.json (device never initialised). */
  NOT_INITIALISED: 2,
  /** `device init` on a directory that already holds a device state. */
  ALREADY_INITIALISED: 2,
  /** state.json (or a file it points to) is unreadable, malformed, or does not match its digest. */
  STATE_CORRUPT: 2,
  /** Another install, boot-check or rollback holds the lock (and is alive). */
  LOCKED: 2,
  /** The state changed under us (generation moved): another writer ran. Nothing was switched. */
  STATE_CONFLICT: 2,
  /** ENOSPC / EDQUOT while writing the slot or the state. */
  DISK_FULL: 2,
  /** EROFS / EACCES / EPERM: the state directory cannot be written. */
  READ_ONLY: 2,
  /** The bundle could not be read to its end (vanished, truncated by I/O, unreadable). */
  BUNDLE_UNREADABLE: 2,
  /** Any other file-system failure. */
  STATE_IO: 2,
  /** A slot's files no longer verify against its manifest (tampered or damaged). */
  SLOT_REFUSED: 1,
  /** Rollback / fallback asked for, but there is no committed slot to go to. */
  NO_FALLBACK: 1,
} as const;

export type InstallErrorCode = keyof typeof INSTALL_ERROR_CODES;

export class InstallError extends GlassboxError {
  declare readonly code: InstallErrorCode;
  constructor(code: InstallErrorCode, message: string, options: { cause?: unknown } = {}) {
    super(code, message, { ...options, exitCode: INSTALL_ERROR_CODES[code] as 1 | 2 });
  }
}

/**
 * Turns a Node file-system error into an InstallError with a code a
 * technician can act on; `what` names the thing being done ("writing slot b").
 */
export function fsFailure(err: unknown, what: string): InstallError {
  if (err instanceof InstallError) return err;
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  const detail = err instanceof Error ? err.message : String(err);
  switch (code) {
    case 'ENOSPC':
    case 'EDQUOT':
      return new InstallError('DISK_FULL', `no space left on the device while ${what} (${detail})`, { cause: err });
    case 'EROFS':
    case 'EACCES':
    case 'EPERM':
      return new InstallError('READ_ONLY', `state directory is not writable while ${what} (${detail})`, { cause: err });
    default:
      return new InstallError('STATE_IO', `file-system error while ${what}: ${detail}`, { cause: err });
  }
}
