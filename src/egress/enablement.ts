/**
 * Whether `glassbox daemon` runs the egress observer (and the local API it
 * serves), decided once at start. Small on purpose: the CLI imports it
 * before deciding whether to load the plug-in at all.
 *
 * egress.enabled:
 *   false   never loaded.
 *   true    loaded; if the observer cannot run (no CAP_NET_ADMIN, no nft or
 *           conntrack), the API still serves signed attestations, whose
 *           verdict is `incomplete` with the reason.
 *   "auto"  (default) on a recorder in service — a firmware release is
 *           installed in the state directory — like true: the product's
 *           promise is that a recorder can always be asked. With no release
 *           installed there is no policy to judge flows against (and the
 *           daemon is a test rig or a bench setup): off. In --dev mode: on
 *           only when the daemon may administer the network and nft and
 *           conntrack are present (a developer's laptop keeps its ruleset).
 *
 * decideEgress is pure; probeEgress reads the process's capabilities, PATH
 * and the install state (edge).
 */
import { constants } from 'node:fs';
import { access, readFile } from 'node:fs/promises';
import { delimiter, join } from 'node:path';

export interface EgressPrerequisites {
  /** Effective CAP_NET_ADMIN (nftables, conntrack events). */
  readonly netAdmin: boolean;
  readonly nft: boolean;
  readonly conntrack: boolean;
  /** The state directory has an active slot with an installed release. */
  readonly releaseInstalled: boolean;
}

export interface EgressDecision {
  readonly on: boolean;
  /** When on but the observer cannot run: what is missing (attestations will say incomplete). */
  readonly missing: readonly string[];
  /** One line for the log. */
  readonly why: string;
}

export function missingPrerequisites(p: EgressPrerequisites): string[] {
  const out: string[] = [];
  if (!p.netAdmin) out.push('CAP_NET_ADMIN');
  if (!p.nft) out.push('nft');
  if (!p.conntrack) out.push('conntrack');
  return out;
}

export function decideEgress(setting: boolean | 'auto', dev: boolean, p: EgressPrerequisites): EgressDecision {
  const missing = missingPrerequisites(p);
  const can = missing.length === 0 ? 'it can run' : `it cannot run (missing ${missing.join(', ')}): attestations will say incomplete`;
  if (setting === false) return { on: false, missing: [], why: 'egress observer off (egress.enabled is false): no local API, no attestation' };
  if (setting === true) return { on: true, missing, why: `egress observer on (egress.enabled is true); ${can}` };
  if (dev) {
    return missing.length === 0
      ? { on: true, missing, why: 'egress observer on (auto, --dev: the daemon may administer the network and has nft and conntrack)' }
      : { on: false, missing: [], why: `egress observer off (auto, --dev without ${missing.join(', ')}): no local API, no attestation` };
  }
  return p.releaseInstalled
    ? { on: true, missing, why: `egress observer on (auto: a release is installed); ${can}` }
    : { on: false, missing: [], why: 'egress observer off (auto: no firmware release installed, so no egress policy to judge flows against; set egress.enabled true to run it anyway)' };
}

/** CAP_NET_ADMIN is capability 12. */
export function hasNetAdmin(procStatus: string): boolean {
  const m = /^CapEff:\s*([0-9a-fA-F]{1,16})\s*$/m.exec(procStatus);
  if (!m) return false;
  return (BigInt(`0x${m[1]}`) & (1n << 12n)) !== 0n;
}

async function onPath(tool: string, path: string | undefined): Promise<boolean> {
  for (const dir of (path ?? '/usr/sbin:/usr/bin:/sbin:/bin').split(delimiter)) {
    if (dir === '') continue;
    try {
      await access(join(dir, tool), constants.X_OK);
      return true;
    } catch {
      /* next */
    }
  }
  return false;
}

/** Reads what decideEgress needs. Never throws: what cannot be read counts as absent. */
export async function probeEgress(stateDir: string, env: Readonly<Record<string, string | undefined>>): Promise<EgressPrerequisites> {
  const [status, nft, conntrack, state] = await Promise.all([
    readFile('/proc/self/status', 'utf8').catch(() => ''),
    onPath('nft', env['PATH']),
    onPath('conntrack', env['PATH']),
    readFile(join(stateDir, 'state.json'), 'utf8').catch(() => null),
  ]);
  let releaseInstalled = false;
  if (state !== null && state.length < 1024 * 1024) {
    try {
      const s = JSON.parse(state) as { active?: unknown; slots?: Record<string, { ref?: unknown } | undefined> };
      releaseInstalled = typeof s.active === 'string' && typeof s.slots?.[s.active]?.ref === 'string';
    } catch {
      releaseInstalled = false;
    }
  }
  return { netAdmin: hasNetAdmin(status), nft, conntrack, releaseInstalled };
}
