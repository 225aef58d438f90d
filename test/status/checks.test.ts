import { describe, expect, it } from 'vitest';
import { composeStatus } from '../../src/status/checks.js';
import type { StatusFacts, StatusView } from '../../src/status/types.js';
import { greenFacts, HEALTH } from './facts.js';

function states(v: StatusView): Record<string, string> {
  return Object.fromEntries(v.checks.map((c) => [c.id, c.state]));
}

function withFacts(f: (x: StatusFacts) => StatusFacts): StatusView {
  return composeStatus(f(greenFacts()));
}

describe('the technician checks', () => {
  it('are all ok for a provisioned, connected recorder with verified firmware and a clean verdict', () => {
    const v = composeStatus(greenFacts());
    expect(v.checks.map((c) => c.id)).toEqual(['identity', 'trust', 'firmware', 'egress-policy', 'broker', 'clock', 'health', 'egress']);
    expect(states(v)).toEqual({ identity: 'ok', trust: 'ok', firmware: 'ok', 'egress-policy': 'ok', broker: 'ok', clock: 'ok', health: 'ok', egress: 'ok' });
    expect(v.overall).toBe('ok');
    expect(v.checks.every((c) => c.fix === null)).toBe(true);
  });

  describe('identity', () => {
    it('fails when the key is readable by others, or owned by another account', () => {
      const open = withFacts((f) => ({ ...f, identity: { ...f.identity!, keyFile: { ...f.identity!.keyFile!, mode: 0o644 } } }));
      expect(states(open).identity).toBe('fail');
      expect(open.checks[0]?.fix).toBe('chmod 0600 /var/lib/glassbox/identity/device.key');
      const owned = withFacts((f) => ({ ...f, identity: { ...f.identity!, keyFile: { ...f.identity!.keyFile!, uid: 0, gid: 0 } } }));
      expect(states(owned).identity).toBe('fail');
      expect(owned.overall).toBe('fail');
    });

    it('warns 30 days before the certificate ends, fails after', () => {
      const soon = withFacts((f) => ({ ...f, identity: { ...f.identity!, certificate: { ...f.identity!.certificate!, notAfter: '2026-06-20T00:00:00.000Z' } } }));
      expect(states(soon).identity).toBe('warn');
      const gone = withFacts((f) => ({ ...f, identity: { ...f.identity!, certificate: { ...f.identity!.certificate!, notAfter: '2026-05-20T00:00:00.000Z' } } }));
      expect(states(gone).identity).toBe('fail');
    });

    it('fails when not provisioned, naming the command', () => {
      const v = withFacts((f) => ({ ...f, identity: null }));
      expect(v.checks[0]).toMatchObject({ state: 'fail', fix: expect.stringContaining('provision init') });
    });
  });

  it('broker: fails when disconnected with the last error, warns when the daemon is not running or dropped messages', () => {
    const down = withFacts((f) => ({ ...f, broker: { ...f.broker!, connected: false, lastError: 'ECONNREFUSED' } }));
    expect(states(down).broker).toBe('fail');
    expect(down.checks.find((c) => c.id === 'broker')?.detail).toContain('ECONNREFUSED');
    expect(states(withFacts((f) => ({ ...f, broker: { ...f.broker!, connected: null } }))).broker).toBe('warn');
    expect(states(withFacts((f) => ({ ...f, broker: { ...f.broker!, queue: { ...f.broker!.queue!, droppedEvents: 4 } } }))).broker).toBe('warn');
  });

  it('clock: fails before the latest trustworthy time, warns when not synchronised', () => {
    expect(states(withFacts((f) => ({ ...f, clock: { ...f.clock, now: '2026-05-01T00:00:00.000Z' } }))).clock).toBe('fail');
    expect(states(withFacts((f) => ({ ...f, clock: { ...f.clock, sync: 'unsynchronized' } }))).clock).toBe('warn');
  });

  it('firmware: fails when the slot does not verify; egress policy warns when nothing is installed', () => {
    const bad = withFacts((f) => ({ ...f, firmware: { ...f.firmware!, verification: { ok: false, code: 'ARTIFACT_DIGEST', reason: 'rootfs differs', at: f.generatedAt, deep: true } } }));
    expect(states(bad).firmware).toBe('fail');
    const none = withFacts((f) => ({ ...f, firmware: { ...f.firmware!, installed: null, egressRules: null, activeSlot: null } }));
    expect(states(none)).toMatchObject({ firmware: 'warn', 'egress-policy': 'warn' });
  });

  it('health: stale samples warn, a failing disk fails', () => {
    expect(states(withFacts((f) => ({ ...f, health: { ...HEALTH, at: '2026-06-01T11:00:00.000Z' } }))).health).toBe('warn');
    const disk = HEALTH.disks[0]!;
    const failing = withFacts((f) => ({ ...f, health: { ...HEALTH, disks: [{ ...disk, smart: { health: 'failed', checkedAt: HEALTH.at } }] } }));
    expect(states(failing).health).toBe('fail');
  });

  it('egress: undeclared flows fail and name one; incomplete observation warns with its reasons', () => {
    const flow = { direction: 'forwarded' as const, proto: 'tcp', src: '10.0.0.21', dst: '203.0.113.9', dport: 443, count: 3, firstSeen: '2026-06-01T10:00:00Z', lastSeen: '2026-06-01T11:00:00Z', rule: null, process: null };
    const leak = withFacts((f) => ({ ...f, egress: { ...f.egress!, verdict: 'undeclared-egress', undeclared: 1, undeclaredFlows: [flow] } }));
    expect(states(leak).egress).toBe('fail');
    expect(leak.checks.find((c) => c.id === 'egress')?.detail).toContain('203.0.113.9:443');
    const gap = withFacts((f) => ({ ...f, egress: { ...f.egress!, verdict: 'incomplete', reasons: ['observer gap 10:00-10:05'] } }));
    expect(states(gap).egress).toBe('warn');
    expect(gap.overall).toBe('warn');
  });
});
