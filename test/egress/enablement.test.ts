import { describe, expect, it } from 'vitest';
import { decideEgress, hasNetAdmin, type EgressPrerequisites } from '../../src/egress/enablement.js';
import { ConfigError, resolveConfig } from '../../src/config/resolve.js';
import { DEFAULTS } from '../../src/config/defaults.js';

const all: EgressPrerequisites = { netAdmin: true, nft: true, conntrack: true, nftNetAdmin: false, conntrackNetAdmin: false, releaseInstalled: true };
/** The container image: the daemon has no capabilities; nft and conntrack carry CAP_NET_ADMIN as file capabilities. */
const image: EgressPrerequisites = { ...all, netAdmin: false, nftNetAdmin: true, conntrackNetAdmin: true };

describe('whether the daemon runs the egress observer', () => {
  it('auto: on for a recorder with an installed release, whether or not it can run (then attestations say incomplete)', () => {
    expect(decideEgress('auto', false, all)).toMatchObject({ on: true, missing: [] });
    expect(decideEgress('auto', false, { ...all, nft: false, netAdmin: false })).toMatchObject({ on: true, missing: ['CAP_NET_ADMIN', 'nft'] });
    expect(decideEgress('auto', false, { ...all, nft: false }).why).toMatch(/attestations will say incomplete/);
  });

  it('auto: off without an installed release (no policy to judge against), saying how to force it', () => {
    const d = decideEgress('auto', false, { ...all, releaseInstalled: false });
    expect(d.on).toBe(false);
    expect(d.why).toMatch(/no firmware release installed.*egress.enabled true/);
  });

  it('auto in --dev: on only with CAP_NET_ADMIN, nft and conntrack', () => {
    expect(decideEgress('auto', true, { ...all, releaseInstalled: false }).on).toBe(true);
    const off = decideEgress('auto', true, { ...all, conntrack: false });
    expect(off.on).toBe(false);
    expect(off.why).toMatch(/--dev without conntrack/);
  });

  it('true and false are obeyed', () => {
    expect(decideEgress(true, true, { netAdmin: false, nft: false, conntrack: false, nftNetAdmin: false, conntrackNetAdmin: false, releaseInstalled: false })).toMatchObject({ on: true, missing: ['CAP_NET_ADMIN', 'nft', 'conntrack'] });
    expect(decideEgress(false, false, all).on).toBe(false);
  });

  describe('when the daemon has no CAP_NET_ADMIN but the tools do (the container image)', () => {
    it('the observer can run: nothing is missing, in service and in --dev', () => {
      expect(decideEgress('auto', false, image)).toMatchObject({ on: true, missing: [] });
      expect(decideEgress(true, false, image)).toMatchObject({ on: true, missing: [] });
      const dev = decideEgress('auto', true, { ...image, releaseInstalled: false });
      expect(dev.on).toBe(true);
      expect(dev.why).toMatch(/hold CAP_NET_ADMIN themselves/);
    });

    it('it cannot when only one of the two tools holds it', () => {
      expect(decideEgress('auto', false, { ...image, conntrackNetAdmin: false })).toMatchObject({ on: true, missing: ['CAP_NET_ADMIN'] });
      expect(decideEgress('auto', false, { ...image, nftNetAdmin: false })).toMatchObject({ on: true, missing: ['CAP_NET_ADMIN'] });
      expect(decideEgress('auto', true, { ...image, nftNetAdmin: false }).on).toBe(false);
    });

    it('it cannot when neither holds it, and an absent tool is named as well', () => {
      const none = { ...image, nftNetAdmin: false, conntrackNetAdmin: false };
      expect(decideEgress('auto', false, none)).toMatchObject({ on: true, missing: ['CAP_NET_ADMIN'] });
      expect(decideEgress('auto', false, { ...none, conntrack: false })).toMatchObject({ on: true, missing: ['CAP_NET_ADMIN', 'conntrack'] });
      expect(decideEgress('auto', true, none).why).toMatch(/--dev without CAP_NET_ADMIN/);
    });
  });

  it('the daemon\'s own CAP_NET_ADMIN is enough (its children inherit it), whatever the tool reads said', () => {
    expect(decideEgress('auto', true, { ...all, releaseInstalled: false })).toMatchObject({ on: true, missing: [] });
    expect(decideEgress('auto', true, { ...all, releaseInstalled: false }).why).toMatch(/the daemon has CAP_NET_ADMIN/);
  });

  it('reads CAP_NET_ADMIN (bit 12) from /proc/self/status', () => {
    expect(hasNetAdmin('Name:\tnode\nCapEff:\t000001ffffffffff\n')).toBe(true);
    expect(hasNetAdmin('CapEff:\t0000000000001000\n')).toBe(true);
    expect(hasNetAdmin('CapEff:\t0000000000000fff\n')).toBe(false);
    expect(hasNetAdmin('no such line')).toBe(false);
  });
});

describe('the egress section of the daemon configuration', () => {
  it('defaults to auto, observe, the /run/glassbox socket and loopback only', () => {
    const { config } = resolveConfig({ env: {}, flags: {} });
    expect(config.egress).toEqual(DEFAULTS.egress);
    expect(config.egress).toMatchObject({ enabled: 'auto', mode: 'observe', socket: '/run/glassbox/api.sock', allowWildcard: false, runtimeDir: '/run/glassbox/egress', pollMs: 500, flowsCap: 1000, dnsServers: null, conntrackRealtimePriority: 10, keepTableOnStop: true });
  });

  it('layers flags over the environment over the file', () => {
    const file = { name: 'config.json', value: { egress: { enabled: true, mode: 'enforce', dnsServers: ['192.0.2.53'], pollMs: 250 } } };
    expect(resolveConfig({ file, env: {}, flags: {} }).config.egress).toMatchObject({ enabled: true, mode: 'enforce', dnsServers: ['192.0.2.53'], pollMs: 250, socket: '/run/glassbox/api.sock' });
    const env = { GLASSBOX_EGRESS: 'off', GLASSBOX_EGRESS_MODE: 'observe', GLASSBOX_API_SOCKET: '/tmp/x.sock' };
    expect(resolveConfig({ file, env, flags: {} }).config.egress).toMatchObject({ enabled: false, mode: 'observe', socket: '/tmp/x.sock' });
    expect(resolveConfig({ file, env, flags: { egress: 'auto', egressMode: 'enforce' } }).config.egress).toMatchObject({ enabled: 'auto', mode: 'enforce' });
  });

  it('names the source and path of every bad value', () => {
    const bad = () => resolveConfig({ file: { name: 'c.json', value: { egress: { mode: 'block', pollMs: 5, extra: 1, dnsServers: ['resolver.example'] } } }, env: { GLASSBOX_EGRESS: 'maybe' }, flags: { egressMode: 'loud' } });
    expect(bad).toThrow(ConfigError);
    try {
      bad();
    } catch (e) {
      const p = (e as ConfigError).problems.join('\n');
      expect(p).toContain('c.json: /egress/mode: must be one of "observe", "enforce"');
      expect(p).toContain('c.json: /egress/pollMs');
      expect(p).toContain('c.json: /egress/extra: unknown setting');
      expect(p).toContain('c.json: /egress/dnsServers/0');
      expect(p).toContain('environment GLASSBOX_EGRESS: expected auto, on or off, got "maybe"');
      expect(p).toContain('flags: /egress/mode: must be one of "observe", "enforce"');
    }
  });

  it('warns when enforce is asked for with the observer off', () => {
    const r = resolveConfig({ file: { name: 'c.json', value: { egress: { enabled: false, mode: 'enforce' } } }, env: {}, flags: {} });
    expect(r.warnings.join('\n')).toMatch(/enforce but egress.enabled is false/);
  });
});
