/**
 * The egress prerequisite probe against the real nft and conntrack, run by
 * an unprivileged process the way the container image runs the daemon: no
 * capabilities of its own, the tools holding CAP_NET_ADMIN as file
 * capabilities, executable by the daemon's group only (Dockerfile). The
 * probe runs in a child `node` under `setpriv --reuid … --clear-groups`
 * with PATH set to a temp dir holding copies of nft and conntrack.
 * Needs root, setcap (libcap2-bin), setpriv, nft and conntrack.
 */
import { chmod, chown, copyFile, mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { requireSystem } from '../helpers/system.js';
import { requireBuilt } from '../helpers/daemon-process.js';
import { exitsZero, probeEgress, type EgressPrerequisites } from '../../src/egress/enablement.js';
import { mustRun, run } from '../helpers/run.js';

const missing = requireSystem(['nft', 'conntrack', 'setcap', 'getcap', 'setpriv'], { root: true });
const which = (tool: string) => ['/usr/sbin', '/usr/bin', '/sbin', '/bin'].map((d) => join(d, tool));
/** The group allowed to run the capable tools (nogroup stands for the image's glassbox group). */
const TOOL_GROUP = 65534;
const NOBODY = 65534;
/** A uid/gid outside that group. */
const OTHER = 65533;


describe.skipIf(missing)('the egress probe, run by a process without capabilities', () => {
  let dir: string;
  let state: string;
  let plain: string;
  let capable: string;
  const src: Record<'nft' | 'conntrack', string> = { nft: '', conntrack: '' };

  /** probeEgress in a child node as uid:gid with no supplementary groups and PATH=pathDir. */
  async function probeAs(uid: number, gid: number, pathDir: string): Promise<EgressPrerequisites> {
    const url = new URL('../../dist/egress/enablement.js', import.meta.url).href;
    const code = `import(${JSON.stringify(url)}).then(async (m) => console.log(JSON.stringify(await m.probeEgress(${JSON.stringify(state)}, { PATH: ${JSON.stringify(pathDir)} }))))`;
    const out = await mustRun(['setpriv', `--reuid=${uid}`, `--regid=${gid}`, '--clear-groups', '--', process.execPath, '-e', code]);
    return JSON.parse(out) as EgressPrerequisites;
  }

  beforeAll(async () => {
    requireBuilt();
    for (const tool of ['nft', 'conntrack'] as const) {
      for (const p of which(tool)) {
        if ((await run(['test', '-x', p])).code === 0) {
          src[tool] = p;
          break;
        }
      }
      if (src[tool] === '') throw new Error(`${tool} not found in /usr/sbin, /usr/bin, /sbin, /bin`);
    }
    dir = await mkdtemp(join(tmpdir(), 'gb-egress-probe-'));
    await chmod(dir, 0o755);
    state = join(dir, 'state');
    plain = join(dir, 'plain');
    capable = join(dir, 'capable');
    await mkdir(state, { mode: 0o755 });
    await mkdir(plain, { mode: 0o755 });
    await mkdir(capable, { mode: 0o755 });
    for (const tool of ['nft', 'conntrack'] as const) {
      await copyFile(src[tool], join(plain, tool));
      await chmod(join(plain, tool), 0o755);
      // As the Dockerfile does it: group and mode first (a chown/chgrp clears file capabilities), then setcap.
      const c = join(capable, tool);
      await copyFile(src[tool], c);
      await chown(c, 0, TOOL_GROUP);
      await chmod(c, 0o750);
      await mustRun(['setcap', 'cap_net_admin+ep', c]);
    }
  });

  afterAll(async () => {
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('without file capabilities the tools are found but their reads are refused: CAP_NET_ADMIN is missing', async () => {
    const p = await probeAs(NOBODY, NOBODY, plain);
    expect(p).toEqual({ netAdmin: false, nft: true, conntrack: true, nftNetAdmin: false, conntrackNetAdmin: false, releaseInstalled: false });
  });

  it('with cap_net_admin+ep on both tools (the image) both reads succeed', async () => {
    const p = await probeAs(NOBODY, TOOL_GROUP, capable);
    // If this fails with nftNetAdmin false, the temp dir may be on a nosuid mount (file capabilities are ignored there).
    expect(p).toEqual({ netAdmin: false, nft: true, conntrack: true, nftNetAdmin: true, conntrackNetAdmin: true, releaseInstalled: false });
  });

  it('a process outside the tools\' group cannot run them at all', async () => {
    const p = await probeAs(OTHER, OTHER, capable);
    expect(p).toMatchObject({ netAdmin: false, nft: false, conntrack: false, nftNetAdmin: false, conntrackNetAdmin: false });
  });

  it('a chgrp after setcap clears the capabilities (why the Dockerfile sets group and mode first)', async () => {
    const c = join(dir, 'nft-late-chgrp');
    await copyFile(src.nft, c);
    await mustRun(['setcap', 'cap_net_admin+ep', c]);
    expect(await mustRun(['getcap', c])).toMatch(/cap_net_admin=ep/);
    await chown(c, 0, TOOL_GROUP);
    expect((await mustRun(['getcap', c])).trim()).toBe('');
  });

  it('as root (this process has CAP_NET_ADMIN) the tool reads are not tried', async () => {
    const p = await probeEgress(state, { PATH: plain });
    expect(p).toEqual({ netAdmin: true, nft: true, conntrack: true, nftNetAdmin: false, conntrackNetAdmin: false, releaseInstalled: false });
  });

  it('a tool read is bounded: one that hangs counts as failed when its time is up', async () => {
    const t0 = performance.now();
    expect(await exitsZero('sleep', ['30'], 200, { PATH: process.env['PATH'] })).toBe(false);
    expect(performance.now() - t0).toBeLessThan(5_000);
    expect(await exitsZero(join(dir, 'no-such-tool'), [], 200, {})).toBe(false);
    expect(await exitsZero(join(capable, 'nft'), ['list', 'tables'], 5_000, {})).toBe(true);
  });
});
