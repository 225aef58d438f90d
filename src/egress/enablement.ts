/**
 * Whether `glassbox daemon` runs the egress observer (and the local API it
 * serves), decided once at start. Small on purpose: the CLI imports it
 * before deciding whether to load the plug-in at all.
 *
 * egress.enabled:
 *   false   never loaded.
 *   true    loaded; if the observer cannot run (no nft or conntrack, or
 *           neither the daemon nor those tools hold CAP_NET_ADMIN), the
 *           API still serves signed attestations, whose verdict is
 *           `incomplete` with the reason.
 *   "auto"  (default) on a recorder in service — a firmware release is
 *           installed in the state directory — like true: the product's
 *           promise is that a recorder can always be asked. With no release
 *           installed there is no policy to judge flows against (and the
 *           daemon is a test rig or a bench setup): off. In --dev mode: on
 *           only when nft and conntrack are present and may administer the
 *           network (a developer's laptop keeps its ruleset).
 *
 * Who holds CAP_NET_ADMIN. The observer's netfilter work is done by the
 * tools it runs (nft, `nft monitor`, `conntrack -E`), never by the daemon
 * itself. Under systemd the daemon holds the capability and its children
 * inherit it (root, or AmbientCapabilities). In the container image the
 * daemon runs as an unprivileged user with no capabilities at all, and only
 * nft and conntrack carry CAP_NET_ADMIN as file capabilities (Dockerfile).
 * So the observer can run when the daemon has CAP_NET_ADMIN, or, without
 * it, when nft and conntrack each complete a read that needs it
 * (`nft list tables`, `conntrack -C`: both fail with EPERM without it).
 * Those reads are tried only when the daemon lacks the capability, each
 * bounded by PROBE_TIMEOUT_MS.
 *
 * decideEgress is pure; probeEgress reads the process's capabilities, PATH
 * and the install state, and runs the two reads (edge).
 */
import { spawn } from 'node:child_process';
import { constants } from 'node:fs';
import { access, readFile } from 'node:fs/promises';
import { delimiter, join } from 'node:path';

export interface EgressPrerequisites {
  /** The daemon's own effective CAP_NET_ADMIN (the tools it runs inherit it). */
  readonly netAdmin: boolean;
  /** nft is on PATH and executable by the daemon. */
  readonly nft: boolean;
  /** conntrack is on PATH and executable by the daemon. */
  readonly conntrack: boolean;
  /**
   * The tools, run by the daemon, completed a read that needs CAP_NET_ADMIN
   * (`nft list tables`, `conntrack -C`), i.e. they hold it themselves (file
   * capabilities). False when not tried: the tool is absent, or the daemon
   * has CAP_NET_ADMIN itself.
   */
  readonly nftNetAdmin: boolean;
  readonly conntrackNetAdmin: boolean;
  /** The state directory has an active slot with an installed release. */
  readonly releaseInstalled: boolean;
}

/** How long each tool read of the probe may take before it counts as failed. */
const PROBE_TIMEOUT_MS = 3_000;

/** The reads that need CAP_NET_ADMIN and change nothing. */
const NET_ADMIN_READS = {
  nft: ['list', 'tables'],
  conntrack: ['-C'],
} as const satisfies Record<'nft' | 'conntrack', readonly string[]>;

export interface EgressDecision {
  readonly on: boolean;
  /** When on but the observer cannot run: what is missing (attestations will say incomplete). */
  readonly missing: readonly string[];
  /** One line for the log. */
  readonly why: string;
}

/** CAP_NET_ADMIN is where it matters: with the daemon (its children inherit it), or with both tools. */
function netAdminAvailable(p: EgressPrerequisites): boolean {
  return p.netAdmin || (p.nftNetAdmin && p.conntrackNetAdmin);
}

export function missingPrerequisites(p: EgressPrerequisites): string[] {
  const out: string[] = [];
  if (!netAdminAvailable(p)) out.push('CAP_NET_ADMIN');
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
      ? { on: true, missing, why: `egress observer on (auto, --dev: nft and conntrack are present and ${p.netAdmin ? 'the daemon has CAP_NET_ADMIN' : 'hold CAP_NET_ADMIN themselves'})` }
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

/** The first executable `tool` on PATH, or null. */
async function onPath(tool: string, path: string | undefined): Promise<string | null> {
  for (const dir of (path ?? '/usr/sbin:/usr/bin:/sbin:/bin').split(delimiter)) {
    if (dir === '') continue;
    const file = join(dir, tool);
    try {
      await access(file, constants.X_OK);
      return file;
    } catch {
      /* next */
    }
  }
  return null;
}

/**
 * Runs `file args…` with no input and output discarded; true when it exits
 * 0 within timeoutMs (it is killed otherwise). Never throws.
 */
export function exitsZero(file: string, args: readonly string[], timeoutMs: number, env: Readonly<Record<string, string | undefined>>): Promise<boolean> {
  return new Promise((resolve) => {
    let child: ReturnType<typeof spawn>;
    try {
      child = spawn(file, args, { stdio: 'ignore', timeout: timeoutMs, killSignal: 'SIGKILL', env: { ...env } });
    } catch {
      resolve(false);
      return;
    }
    child.once('error', () => resolve(false));
    child.once('exit', (code) => resolve(code === 0));
  });
}

/** Reads what decideEgress needs. Never throws: what cannot be read counts as absent. */
export async function probeEgress(stateDir: string, env: Readonly<Record<string, string | undefined>>): Promise<EgressPrerequisites> {
  const [status, nft, conntrack, state] = await Promise.all([
    readFile('/proc/self/status', 'utf8').catch(() => ''),
    onPath('nft', env['PATH']),
    onPath('conntrack', env['PATH']),
    readFile(join(stateDir, 'state.json'), 'utf8').catch(() => null),
  ]);
  const netAdmin = hasNetAdmin(status);
  const acts = (file: string | null, args: readonly string[]) => (netAdmin || file === null ? Promise.resolve(false) : exitsZero(file, args, PROBE_TIMEOUT_MS, env));
  const [nftNetAdmin, conntrackNetAdmin] = await Promise.all([acts(nft, NET_ADMIN_READS.nft), acts(conntrack, NET_ADMIN_READS.conntrack)]);
  let releaseInstalled = false;
  if (state !== null && state.length < 1024 * 1024) {
    try {
      const s = JSON.parse(state) as { active?: unknown; slots?: Record<string, { ref?: unknown } | undefined> };
      releaseInstalled = typeof s.active === 'string' && typeof s.slots?.[s.active]?.ref === 'string';
    } catch {
      releaseInstalled = false;
    }
  }
  return { netAdmin, nft: nft !== null, conntrack: conntrack !== null, nftNetAdmin, conntrackNetAdmin, releaseInstalled };
}
