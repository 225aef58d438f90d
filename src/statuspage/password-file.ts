/**
 * The status-page password file (edge): <stateDir>/statuspage-password.json,
 * mode 0600, owned by the daemon's account (the owner of the identity
 * directory). Absent = the page is open on its (loopback by default) address.
 * A file that is present but unreadable or malformed fails closed: the page
 * is refused to TCP clients until it is set again.
 */
import { lstat, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { GlassboxError } from '../errors.js';
import { fsyncDir, readBounded, writeFileAtomic } from '../provision/files.js';
import { identityPaths } from '../provision/identity.js';
import { hashPassword, parsePasswordRecord, PASSWORD_FILE, PASSWORD_MAX_LENGTH, PASSWORD_MIN_LENGTH, type PasswordRecord } from './auth.js';

export function passwordPath(stateDir: string): string {
  return join(stateDir, PASSWORD_FILE);
}

export async function readPasswordRecord(stateDir: string): Promise<PasswordRecord | null> {
  const path = passwordPath(stateDir);
  const bytes = await readBounded(path, 4096, 'status page password', true);
  if (bytes === null) return null;
  const parsed = parsePasswordRecord(bytes);
  if ('error' in parsed) throw new GlassboxError('PASSWORD_FILE', `${path} is not a status page password record (${parsed.error}); the page stays closed until it is set again with \`glassbox provision password\``);
  return parsed.record;
}

export async function setPassword(stateDir: string, password: string, at: Date): Promise<{ path: string }> {
  if (password.length < PASSWORD_MIN_LENGTH || password.length > PASSWORD_MAX_LENGTH) {
    throw new GlassboxError('PASSWORD_WEAK', `the password must be ${PASSWORD_MIN_LENGTH} to ${PASSWORD_MAX_LENGTH} characters`, { exitCode: 1 });
  }
  const owner = await lstat(identityPaths(stateDir).dir).then(
    (st) => ({ uid: st.uid, gid: st.gid }),
    () => undefined,
  );
  const record = await hashPassword(password, at);
  const path = passwordPath(stateDir);
  await writeFileAtomic(path, JSON.stringify(record, null, 2) + '\n', { mode: 0o600, ...(owner ? { owner } : {}) });
  return { path };
}

export async function clearPassword(stateDir: string): Promise<{ path: string; removed: boolean }> {
  const path = passwordPath(stateDir);
  const removed = await lstat(path).then(
    () => true,
    () => false,
  );
  await rm(path, { force: true });
  if (removed) await fsyncDir(stateDir);
  return { path, removed };
}
