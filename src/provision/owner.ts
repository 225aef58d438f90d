/**
 * Who owns the identity: the daemon's user and group. `--owner user[:group]`
 * takes names or numbers; names are looked up in /etc/passwd and /etc/group
 * (the only account databases on the recorder image; no NSS modules).
 */
import { ProvisionError } from './errors.js';
import { readBounded, type Owner } from './files.js';

/** The daemon's account on a recorder image (see docs/provisioning.md). */
export const DEFAULT_OWNER_SPEC = 'glassbox:glassbox';

const NAME = /^[a-z_][a-z0-9_.-]{0,31}\$?$/i;
const NUMBER = /^[0-9]{1,10}$/;

export interface OwnerSpec {
  readonly user: string;
  readonly group: string | null;
}

export function parseOwnerSpec(spec: string): OwnerSpec {
  const [user, group, extra] = spec.split(':');
  const ok = (s: string | undefined): s is string => s !== undefined && (NAME.test(s) || NUMBER.test(s));
  if (extra !== undefined || !ok(user) || (group !== undefined && !ok(group))) {
    throw new ProvisionError('OWNER_UNKNOWN', `--owner ${JSON.stringify(spec)} is not USER or USER:GROUP`, 'pass the daemon account, e.g. --owner glassbox:glassbox (names or numeric ids)');
  }
  return { user, group: group ?? null };
}

interface PasswdEntry {
  readonly name: string;
  readonly uid: number;
  readonly gid: number;
}

/** Parses passwd(5) text: name:pw:uid:gid:… per line. Malformed lines are skipped. */
export function parsePasswd(text: string): PasswdEntry[] {
  const out: PasswdEntry[] = [];
  for (const line of text.split('\n')) {
    const f = line.split(':');
    if (f.length < 4 || !NUMBER.test(f[2] ?? '') || !NUMBER.test(f[3] ?? '')) continue;
    out.push({ name: f[0]!, uid: Number(f[2]), gid: Number(f[3]) });
  }
  return out;
}

/** Parses group(5) text: name:pw:gid:members per line. */
export function parseGroup(text: string): Array<{ name: string; gid: number }> {
  const out: Array<{ name: string; gid: number }> = [];
  for (const line of text.split('\n')) {
    const f = line.split(':');
    if (f.length < 3 || !NUMBER.test(f[2] ?? '')) continue;
    out.push({ name: f[0]!, gid: Number(f[2]) });
  }
  return out;
}

/** Resolves a spec against account database texts (pure). */
export function resolveOwner(spec: OwnerSpec, passwd: string, group: string): Owner {
  const users = parsePasswd(passwd);
  const groups = parseGroup(group);
  const user = NUMBER.test(spec.user) ? { uid: Number(spec.user), gid: users.find((u) => u.uid === Number(spec.user))?.gid } : users.find((u) => u.name === spec.user);
  if (!user) {
    throw new ProvisionError(
      'OWNER_UNKNOWN',
      `user ${JSON.stringify(spec.user)} does not exist on this recorder`,
      `create the daemon account first (useradd --system ${spec.user}) or name the existing one with --owner USER:GROUP`,
    );
  }
  let gid: number | undefined;
  if (spec.group === null) gid = user.gid;
  else if (NUMBER.test(spec.group)) gid = Number(spec.group);
  else gid = groups.find((g) => g.name === spec.group)?.gid;
  if (gid === undefined) {
    throw new ProvisionError('OWNER_UNKNOWN', `group ${JSON.stringify(spec.group ?? '(primary)')} does not exist on this recorder`, 'name an existing group with --owner USER:GROUP');
  }
  return { uid: user.uid, gid };
}

/** Edge: reads /etc/passwd and /etc/group (bounded) and resolves the spec. */
export async function lookupOwner(spec: string, files: { passwd?: string; group?: string } = {}): Promise<Owner> {
  const parsed = parseOwnerSpec(spec);
  const passwd = (await readBounded(files.passwd ?? '/etc/passwd', 4 * 1024 * 1024, 'account database', true))?.toString('utf8') ?? '';
  const group = (await readBounded(files.group ?? '/etc/group', 4 * 1024 * 1024, 'group database', true))?.toString('utf8') ?? '';
  return resolveOwner(parsed, passwd, group);
}
