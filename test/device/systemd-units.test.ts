/**
 * device/systemd/: what the units promise, checked against the code they
 * start. The flags in each ExecStart must exist in that command's --help
 * (built CLI), the daemon's Node options must be the ones the code and the
 * Dockerfile use, and the hardening the issue asks for must be there.
 * `systemd-analyze verify`: systemd-verify.system.test.ts.
 */
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { DAEMON_NODE_OPTIONS, unitLaunch } from '../../src/daemon/runtime.js';
import { MAIN, requireBuilt } from '../helpers/daemon-process.js';

const root = join(import.meta.dirname, '..', '..');
const unitPath = (name: string) => join(root, 'device', 'systemd', name);
const read = (name: string) => readFileSync(unitPath(name), 'utf8');

/** Values of `Key=` in the unit (comments and section headers skipped). */
function values(text: string, key: string): string[] {
  return text
    .split('\n')
    .filter((l) => l.startsWith(`${key}=`))
    .map((l) => l.slice(key.length + 1).trim());
}

function helpOf(command: string): string {
  requireBuilt();
  const r = spawnSync(process.execPath, [MAIN, command, '--help'], { encoding: 'utf8', timeout: 30_000 });
  expect(r.status, r.stderr).toBe(0);
  return r.stdout;
}

describe.each([
  ['glassbox.service', 'daemon'],
  ['glassbox-boot-check.service', 'boot-check'],
])('%s ExecStart', (unit, command) => {
  it(`runs /usr/local/bin/glassbox ${command} with flags that \`glassbox ${command} --help\` lists`, () => {
    const [exec] = values(read(unit), 'ExecStart');
    const argv = exec!.split(/\s+/);
    expect(argv[0]).toBe('/usr/local/bin/glassbox');
    expect(argv[1]).toBe(command);
    const flags = argv.slice(2).filter((a) => a.startsWith('--'));
    expect(flags.length).toBeGreaterThan(0);
    const help = helpOf(command);
    for (const f of flags) expect(help, `${f} in glassbox ${command} --help`).toMatch(new RegExp(`(^|[\\s,])${f}[\\s<]`, 'm'));
    // The check can fail: a flag the command does not have is not listed.
    expect(help).not.toMatch(/(^|[\s,])--no-such-flag[\s<]/m);
  });
});

describe('glassbox.service', () => {
  const text = read('glassbox.service');
  const one = (key: string) => {
    const v = values(text, key);
    expect(v, key).toHaveLength(1);
    return v[0]!;
  };

  it('is a notify service with a watchdog, notifications accepted from the spawned systemd-notify', () => {
    expect(one('Type')).toBe('notify');
    expect(one('NotifyAccess')).toBe('all');
    expect(Number(one('WatchdogSec'))).toBeGreaterThanOrEqual(10);
    expect(one('Restart')).toBe('on-failure');
  });

  it('keeps its state in /var/lib/glassbox and is hardened', () => {
    expect(one('StateDirectory')).toBe('glassbox');
    expect(one('ReadWritePaths')).toBe('/var/lib/glassbox');
    expect(one('ProtectSystem')).toBe('strict');
    expect(one('ProtectHome')).toBe('yes');
    expect(one('PrivateTmp')).toBe('yes');
    expect(one('NoNewPrivileges')).toBe('yes');
    // nftables and conntrack; SCHED_FIFO for the conntrack event reader.
    expect(one('CapabilityBoundingSet').split(/\s+/).sort()).toEqual(['CAP_NET_ADMIN', 'CAP_SYS_NICE']);
    expect(one('AmbientCapabilities').split(/\s+/).sort()).toEqual(['CAP_NET_ADMIN', 'CAP_SYS_NICE']);
    expect(values(text, 'RestrictRealtime')).toEqual([]);
    expect(one('RestrictAddressFamilies').split(/\s+/).sort()).toEqual(['AF_INET', 'AF_INET6', 'AF_NETLINK', 'AF_UNIX']);
    // V8's JIT cannot run under it.
    expect(values(text, 'MemoryDenyWriteExecute')).toEqual([]);
  });

  it('starts node with the daemon options of src/daemon/runtime.ts, and the Dockerfile uses the same', async () => {
    const launch = await unitLaunch(unitPath('glassbox.service'));
    expect(launch.env['NODE_OPTIONS']).toBe(DAEMON_NODE_OPTIONS);
    expect(launch.args).toEqual(['daemon', '--config', '/etc/glassbox/config.json']);
    const docker = readFileSync(join(root, 'Dockerfile'), 'utf8');
    expect(docker.split('\n').filter((l) => /^ENV\s+NODE_OPTIONS=/.test(l))).toEqual([`ENV NODE_OPTIONS=${DAEMON_NODE_OPTIONS}`]);
  });

  it('does not set GLASSBOX_ variables (environment beats the config file: they would override it)', () => {
    expect(values(text, 'Environment').filter((e) => e.includes('GLASSBOX_'))).toEqual([]);
  });
});

describe('glassbox-boot-check.service', () => {
  const text = read('glassbox-boot-check.service');
  it('runs once before the daemon, reboots on a failed start, and treats I/O trouble (exit 2) as done', () => {
    expect(values(text, 'Type')).toEqual(['oneshot']);
    expect(values(text, 'Before')).toEqual(['glassbox.service']);
    expect(values(text, 'FailureAction')).toEqual(['reboot']);
    expect(values(text, 'SuccessExitStatus')).toEqual(['2']);
    expect(values(read('glassbox.service'), 'After').join(' ')).toContain('glassbox-boot-check.service');
  });
});
