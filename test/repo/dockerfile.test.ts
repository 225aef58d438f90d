// No Docker engine runs here, so the Dockerfile is checked statically: the
// base image is Node 24 LTS, every build-context path it copies exists, its
// entry point is the same file package.json ships as the `glassbox` bin, and
// the runtime image runs as an unprivileged user whose tools, not the daemon,
// hold the capabilities. test/repo/dockerfile-cmd.system.test.ts runs the
// image's command itself.
import { describe, expect, it } from 'vitest';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { REPO_ROOT, finalStage, imageLaunch, parseDockerfile, readDockerfile, runCommands } from './dockerfile-parse.js';

const root = REPO_ROOT;
const dockerfile = readDockerfile();
const lines = dockerfile.split('\n').filter((l) => !l.trimStart().startsWith('#'));
const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { bin: Record<string, string>; engines: { node: string } };
const runtime = finalStage(parseDockerfile(dockerfile));
const commands = runCommands(dockerfile);
const launch = imageLaunch(dockerfile);

/** The option value of `--name VALUE` in a command's words. */
function option(words: readonly string[], name: string): string | undefined {
  const i = words.indexOf(name);
  return i < 0 ? undefined : words[i + 1];
}

const groupadd = commands.find((c) => c[0] === 'groupadd');
const useradd = commands.find((c) => c[0] === 'useradd');
const account = useradd?.at(-1);

describe('Dockerfile', () => {
  it('builds on the Node 24 LTS image', () => {
    const arg = lines.find((l) => l.startsWith('ARG NODE_IMAGE='));
    expect(arg).toMatch(/^ARG NODE_IMAGE=node:24-/);
  });

  it('copies only paths that exist in the build context', () => {
    const sources = lines
      .filter((l) => /^COPY\s/.test(l) && !l.includes('--from='))
      .flatMap((l) => l.replace(/^COPY\s+/, '').trim().split(/\s+/).slice(0, -1));
    expect(sources.length).toBeGreaterThan(3);
    for (const src of sources) expect(existsSync(join(root, src)), `COPY source ${src}`).toBe(true);
  });

  it('starts the same entry point that package.json ships as the glassbox bin, under tini', () => {
    const entry = lines.find((l) => l.startsWith('ENTRYPOINT'));
    expect(entry).toContain(`/opt/glassbox/${pkg.bin['glassbox']}`);
    expect(launch.argv.slice(0, 2)).toEqual(['/usr/bin/tini', '--']);
  });

  it('installs the kernel tools the egress observer runs, and tini', () => {
    expect(dockerfile).toMatch(/apt-get install[^\n]*nftables[^\n]*conntrack/);
    expect(dockerfile).toMatch(/apt-get install[^\n]*\btini\b/);
  });
});

describe('the runtime image runs as an unprivileged user', () => {
  it('creates the system group and user glassbox with a fixed id', () => {
    expect(groupadd, 'a groupadd command').toBeDefined();
    expect(useradd, 'a useradd command').toBeDefined();
    expect(groupadd).toContain('--system');
    expect(groupadd?.at(-1)).toBe('glassbox');
    expect(useradd).toContain('--system');
    expect(account).toBe('glassbox');
    const gid = option(groupadd!, '--gid');
    const uid = option(useradd!, '--uid');
    expect(gid).toMatch(/^[1-9][0-9]*$/);
    expect(uid).toMatch(/^[1-9][0-9]*$/);
    expect(option(useradd!, '--gid')).toBe('glassbox');
    expect(option(useradd!, '--shell')).toBe('/usr/sbin/nologin');
  });

  it('switches to that user (numerically, so a runtime can tell it is not root) before the entry point', () => {
    expect(launch.user).toBe(`${option(useradd!, '--uid')}:${option(groupadd!, '--gid')}`);
    expect(launch.user).not.toMatch(/^(root|0)(:|$)/);
    const at = (k: string) => runtime.findIndex((i) => i.keyword === k);
    expect(at('USER')).toBeLessThan(at('ENTRYPOINT'));
    expect(runtime.filter((i) => i.keyword === 'USER')).toHaveLength(1);
  });

  it('makes the state volume and the runtime dir owned by that user, before VOLUME', () => {
    const install = commands.filter((c) => c[0] === 'install' && c.includes('-d'));
    const owned = install.filter((c) => option(c, '-o') === 'glassbox' && option(c, '-g') === 'glassbox').flatMap((c) => c.filter((w) => w.startsWith('/')));
    expect(owned).toContain('/var/lib/glassbox');
    expect(owned).toContain('/run/glassbox');
    const volume = runtime.findIndex((i) => i.keyword === 'VOLUME');
    expect(JSON.parse(runtime[volume]!.args)).toEqual(['/var/lib/glassbox']);
    const made = runtime.findIndex((i) => i.keyword === 'RUN' && i.args.includes('/run/glassbox'));
    expect(made).toBeGreaterThanOrEqual(0);
    expect(made).toBeLessThan(volume);
  });

  it('gives file capabilities to nft, conntrack and chrt only, runnable by group glassbox alone, set after chgrp/chmod', () => {
    const setcap = commands.filter((c) => c[0] === 'setcap').map((c) => c.slice(1).join(' '));
    expect(setcap.sort()).toEqual(['cap_net_admin+ep /usr/sbin/conntrack', 'cap_net_admin+ep /usr/sbin/nft', 'cap_sys_nice+ep /usr/bin/chrt']);
    const tools = ['/usr/sbin/nft', '/usr/sbin/conntrack', '/usr/bin/chrt'];
    const index = (pred: (c: string[]) => boolean) => commands.findIndex(pred);
    const chgrp = index((c) => c[0] === 'chgrp' && c[1] === 'glassbox' && tools.every((t) => c.includes(t)));
    const chmod = index((c) => c[0] === 'chmod' && c[1] === '0750' && tools.every((t) => c.includes(t)));
    const firstSetcap = index((c) => c[0] === 'setcap');
    // chown/chgrp clear a file's capabilities: they must come first.
    expect(chgrp).toBeGreaterThanOrEqual(0);
    expect(chmod).toBeGreaterThanOrEqual(0);
    expect(chgrp).toBeLessThan(firstSetcap);
    expect(chmod).toBeLessThan(firstSetcap);
    expect(commands.slice(firstSetcap).some((c) => ['chown', 'chgrp'].includes(c[0]!) && tools.some((t) => c.includes(t)))).toBe(false);
  });

  it('installs setcap (libcap2-bin) and purges it in the same RUN', () => {
    const run = runtime.find((i) => i.keyword === 'RUN' && i.args.includes('setcap '));
    expect(run?.args).toMatch(/apt-get install[^&]*\blibcap2-bin\b/);
    expect(run?.args).toMatch(/apt-get purge[^&]*\blibcap2-bin\b/);
  });

  it('documents how to run it: the two capabilities, host network, and no no-new-privileges', () => {
    const header = dockerfile.split('\n').filter((l) => l.startsWith('#')).join('\n');
    expect(header).toMatch(/--cap-add NET_ADMIN/);
    expect(header).toMatch(/--cap-add SYS_NICE/);
    expect(header).toMatch(/--network host/);
    expect(header).toMatch(/no-new-privileges/);
  });
});
