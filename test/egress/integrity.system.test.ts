/**
 * What keeps a window from being clean without any undeclared flow: the
 * table flushed or deleted by hand, the detail reader stopped while flows
 * happen, the daemon restarted (a gap; the ledger survives the restart).
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { requireSystem } from '../helpers/system.js';
import { ADDR, createLab, waitFor, type Lab } from '../helpers/netns.js';
import { builtObserverMissing, runRogue, startObserver, type RunningObserver } from './lab-observer.js';

const missing = requireSystem(['ip', 'nft', 'conntrack', 'dnsmasq', 'setpriv'], { root: true }) ?? builtObserverMissing();

/** Declared traffic only: TCP 554 to the camera LAN (rule "cameras"). The camera ns has no listener: connections are refused, but they are flows. */
async function declaredFlows(lab: Lab, n: number): Promise<void> {
  await runRogue(lab, lab.rec, { host: ADDR.cam, tcpPort: 554, udpPort: 9, tcp: n, udp: 0, concurrency: 10 });
}

describe.skipIf(missing)(`integrity of the observation${missing ? ` (skipped: ${missing})` : ''}`, () => {
  let lab: Lab;
  let obs: RunningObserver;

  beforeEach(async () => {
    lab = await createLab();
  }, 30_000);
  afterEach(async () => {
    await obs?.stop();
    await lab?.teardown();
  });

  it('is clean with declared flows only, then incomplete once the table is flushed by hand', async () => {
    obs = await startObserver(lab);
    await declaredFlows(lab, 20);
    const clean = await obs.egress();
    expect(clean.reasons).toEqual([]);
    expect(clean.verdict).toBe('clean');
    expect(clean.observation.flowsCounted).toBeGreaterThanOrEqual(20);

    const flushedAt = Date.now();
    expect((await lab.run(lab.rec, ['nft', 'flush', 'table', 'inet', 'glassbox'])).code).toBe(0);
    // Detected promptly (nft monitor), without waiting for the next attestation.
    await waitFor(async () => !(await obs.egress()).observation.rulesetIntact, 2000, 'flush detected');
    const after = await obs.egress();
    console.log(`flush detected within ${Date.now() - flushedAt} ms`);
    expect(after.undeclared).toBe(0);
    expect(after.verdict).toBe('incomplete');
    expect(after.observation.integrityEvents.length).toBeGreaterThan(0);
    // The daemon put its table back: counting goes on.
    const listed = await lab.run(lab.rec, ['nft', 'list', 'table', 'inet', 'glassbox']);
    expect(listed.stdout).toContain('classify_local');
  }, 60_000);

  it('is incomplete after the table is deleted by hand', async () => {
    obs = await startObserver(lab);
    expect((await obs.egress()).verdict).toBe('clean');
    expect((await lab.run(lab.rec, ['nft', 'delete', 'table', 'inet', 'glassbox'])).code).toBe(0);
    const after = await obs.egress();
    expect(after.undeclared).toBe(0);
    expect(after.observation.rulesetIntact).toBe(false);
    expect(after.verdict).toBe('incomplete');
  }, 60_000);

  it('is incomplete after one rule of the table is edited', async () => {
    obs = await startObserver(lab);
    const rules = await lab.run(lab.rec, ['nft', '-a', 'list', 'chain', 'inet', 'glassbox', 'local_new']);
    const handle = /counter name "local_undeclared" # handle (\d+)/.exec(rules.stdout)?.[1];
    expect(handle).toBeDefined();
    expect((await lab.run(lab.rec, ['nft', 'delete', 'rule', 'inet', 'glassbox', 'local_new', 'handle', handle as string])).code).toBe(0);
    const after = await obs.egress();
    expect(after.verdict).toBe('incomplete');
  }, 60_000);

  it('reports lost events, never clean, when the detail reader (conntrack, the netlink consumer) is stopped while flows happen', async () => {
    // The detail reader that can lose events is conntrack itself: stopped, it stops draining its
    // netlink socket and the kernel drops what does not fit (ENOBUFS). Stopping the observer that
    // tails conntrack's spool loses nothing (reader.system.test.ts). A small netlink buffer makes
    // the loss certain with a few thousand flows.
    obs = await startObserver(lab, { conntrackBufferBytes: 64 * 1024 });
    const pid = (await obs.egress()).observer.readerPid;
    expect(pid).toBeGreaterThan(0);
    expect((await readFile(`/proc/${pid}/cmdline`, 'utf8')).split('\0')[0]).toMatch(/conntrack$/);
    process.kill(pid as number, 'SIGSTOP');
    try {
      await declaredFlows(lab, 3000);
    } finally {
      process.kill(pid as number, 'SIGCONT');
    }
    const snap = await obs.egress();
    console.log(`counted ${snap.observation.flowsCounted}, recorded ${snap.observation.flowsRecorded}, lost ${snap.observation.eventsLost}, overruns ${snap.observation.readerOverruns}`);
    expect(snap.observation.flowsCounted).toBeGreaterThanOrEqual(3000);
    expect(snap.observation.eventsLost).toBeGreaterThan(0);
    expect(snap.observation.eventsLost).toBe(snap.observation.flowsCounted - snap.observation.flowsRecorded);
    expect(snap.undeclared).toBe(0);
    expect(snap.verdict).toBe('incomplete');
  }, 90_000);

  it('keeps the window across a daemon restart in the same boot, with the downtime as a gap', async () => {
    obs = await startObserver(lab);
    await declaredFlows(lab, 10);
    const first = await obs.egress();
    await obs.stop();
    // Flows while the observer is down are still counted by the kernel (the table stays).
    await declaredFlows(lab, 5);
    const ledger = JSON.parse(await readFile(join(obs.stateDir, 'egress', 'ledger.json'), 'utf8')) as { bootId: string };
    expect(ledger.bootId).toBe((await readFile('/proc/sys/kernel/random/boot_id', 'utf8')).trim());
    obs = await startObserver(lab, { stateDir: obs.stateDir, name: 'obs2' });
    const second = await obs.egress();
    expect(second.windowStart).toBe(first.windowStart);
    expect(second.observation.flowsCounted).toBeGreaterThanOrEqual(first.observation.flowsCounted + 5);
    expect(second.observation.gaps.length).toBe(1);
    expect(second.observation.gaps[0]?.reason).toMatch(/not running/);
    expect(second.observation.rulesetIntact).toBe(true);
    expect(second.observation.eventsLost).toBeGreaterThanOrEqual(5);
    expect(second.verdict).toBe('incomplete');
  }, 90_000);
});
