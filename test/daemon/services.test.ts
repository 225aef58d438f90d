/** Plug-in services whose config section is off are not even imported (their code would stay resident). */
import { describe, expect, it } from 'vitest';
import { DEFAULTS } from '../../src/config/defaults.js';
import type { DaemonConfig } from '../../src/config/types.js';
import { serviceModules } from '../../src/daemon/services.js';
import { DAEMON_NODE_OPTIONS, missingNodeOptions } from '../../src/daemon/runtime.js';

const egress = serviceModules.find((s) => s.name === 'egress')!;
const withSection = (section: unknown) => ({ ...DEFAULTS, egress: section }) as unknown as DaemonConfig;

describe('serviceModules', () => {
  it('has an egress entry that is off by default and on only for egress.enabled === true', () => {
    expect(egress).toBeDefined();
    expect(egress.enabled(DEFAULTS as unknown as DaemonConfig)).toBe(false);
    expect(egress.enabled(withSection({ enabled: false }))).toBe(false);
    expect(egress.enabled(withSection({ enabled: 'yes' }))).toBe(false);
    expect(egress.enabled(withSection(null))).toBe(false);
    expect(egress.enabled(withSection({ enabled: true }))).toBe(true);
  });

  it('names every entry once', () => {
    const names = serviceModules.map((s) => s.name);
    expect(new Set(names).size).toBe(names.length);
  });
});

describe('missingNodeOptions', () => {
  it('finds the shipped V8 option in execArgv or NODE_OPTIONS, in either spelling', () => {
    expect(DAEMON_NODE_OPTIONS).toBe('--max-semi-space-size=1');
    expect(missingNodeOptions([], undefined)).toEqual(['--max-semi-space-size']);
    expect(missingNodeOptions([], '--enable-source-maps')).toEqual(['--max-semi-space-size']);
    expect(missingNodeOptions(['--max-semi-space-size=1'], undefined)).toEqual([]);
    expect(missingNodeOptions([], ' --max_semi_space_size=2 ')).toEqual([]);
  });
});
