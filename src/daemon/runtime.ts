/**
 * The Node/V8 options the daemon ships with, and the check that it runs
 * with them.
 *
 * `--max-semi-space-size=1` (MiB): V8's young generation grows its two
 * semi-spaces to 8–16 MiB while the daemon's modules load and keeps those
 * pages until its memory reducer runs (≈25 s later) and again after every
 * burst; an idle daemon allocates a few KiB per second and needs none of it.
 * Measured with bench:idle: ≈10 MiB less RSS (docs/daemon.md, "Footprint").
 * Nothing is capped: the old generation keeps V8's default limit, so a
 * burst can never hit a heap limit because of this setting; it only means
 * more (short) scavenges while allocating.
 *
 * The flag must be given when the process starts: V8 sizes the young
 * generation when the isolate is created, and `v8.setFlagsFromString`
 * afterwards has no effect on it (measured: the new space still grew to
 * 32 MiB). Node 20 cannot replace its own process image (no execve), and a
 * re-exec would keep a second Node process resident. So the launchers set
 * it: `Environment=NODE_OPTIONS=` in device/systemd/glassbox.service and
 * `ENV NODE_OPTIONS` in the Dockerfile (test/device/systemd.test.ts keeps
 * both equal to DAEMON_NODE_OPTIONS), bench:idle takes it from the unit,
 * and the daemon logs a warning when started without it.
 */
import { readFile } from 'node:fs/promises';

export const DAEMON_NODE_OPTIONS = '--max-semi-space-size=1';

/** Option names (`--x`) of DAEMON_NODE_OPTIONS missing from this process's execArgv and NODE_OPTIONS. */
export function missingNodeOptions(execArgv: readonly string[], nodeOptions: string | undefined): string[] {
  const given = [...execArgv, ...(nodeOptions ?? '').split(/\s+/)].map((a) => a.split('=')[0]!.replace(/_/g, '-'));
  return DAEMON_NODE_OPTIONS.split(/\s+/)
    .map((o) => o.split('=')[0]!)
    .filter((name) => !given.includes(name));
}

/**
 * What a systemd unit runs: ExecStart's arguments after the binary, and the
 * `Environment=` it sets (bench:idle starts the daemon this way; the unit
 * tests read it too). Plain `KEY=value` or `"KEY=value"` lines only.
 */
export async function unitLaunch(path: string): Promise<{ args: string[]; env: Record<string, string> }> {
  const text = await readFile(path, 'utf8');
  const exec = /^ExecStart=(.+)$/m.exec(text);
  if (!exec) throw new Error(`${path}: no ExecStart=`);
  const args = exec[1]!.trim().split(/\s+/).slice(1);
  const env: Record<string, string> = {};
  for (const m of text.matchAll(/^Environment=(.+)$/gm)) {
    const assignment = m[1]!.trim().replace(/^"(.*)"$/, '$1');
    const eq = assignment.indexOf('=');
    if (eq > 0) env[assignment.slice(0, eq)] = assignment.slice(eq + 1);
  }
  return { args, env };
}
