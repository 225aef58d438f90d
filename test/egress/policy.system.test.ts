/**
 * Forwarded flows (a camera behind the recorder), enforce mode, and a
 * declared host name whose address changes.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { requireSystem } from '../helpers/system.js';
import { ADDR, BROKER_PORT, UNDECLARED_TCP_PORT, UNDECLARED_UDP_PORT, createLab, startBroker, waitFor, type Lab } from '../helpers/netns.js';
import { BROKER_NAME, builtObserverMissing, runRogue, startObserver, type RunningObserver } from './lab-observer.js';

const missing = requireSystem(['ip', 'nft', 'conntrack', 'dnsmasq', 'mosquitto', 'setpriv'], { root: true }) ?? builtObserverMissing();

/** One TCP connection attempt from `ns` to host:port; resolves to 'ok' or the error code. */
async function tryConnect(lab: Lab, ns: string, host: string, port: number): Promise<string> {
  const js = `const s=require('net').connect(${port},'${host}');s.setTimeout(2000);s.on('connect',()=>{console.log('ok');s.destroy()});s.on('timeout',()=>{console.log('ETIMEDOUT');s.destroy()});s.on('error',e=>console.log(e.code))`;
  return (await lab.run(ns, [process.execPath, '-e', js])).stdout.trim();
}

describe.skipIf(missing)(`egress policy in the lab${missing ? ` (skipped: ${missing})` : ''}`, () => {
  let lab: Lab;
  let obs: RunningObserver;

  beforeEach(async () => {
    lab = await createLab({ hosts: { [BROKER_NAME]: ADDR.broker }, dnsTtl: 2 });
  }, 30_000);
  afterEach(async () => {
    await obs?.stop();
    await lab?.teardown();
  });

  it('counts a camera\'s flow through the recorder as forwarded, with the camera\'s address and MAC', async () => {
    obs = await startObserver(lab);
    const camMac = (await lab.run(lab.cam, ['cat', `/sys/class/net/${(await lab.run(lab.cam, ['ls', '/sys/class/net'])).stdout.split('\n').find((n) => n.startsWith('g'))}/address`])).stdout.trim();
    const r = await runRogue(lab, lab.cam, { host: ADDR.undeclared, tcpPort: UNDECLARED_TCP_PORT, udpPort: UNDECLARED_UDP_PORT, tcp: 5, udp: 3, asRoot: true });
    expect(r.tcpOk).toBe(5);
    const snap = await obs.egress();
    const fwd = snap.flows.filter((f) => f.direction === 'forwarded');
    expect(fwd.length).toBe(2);
    for (const f of fwd) {
      expect(f.src).toBe(ADDR.cam);
      expect(f.dst).toBe(ADDR.undeclared);
      expect(f.rule).toBeNull();
      expect(f.uids).toEqual([]);
      expect(f.srcMac).toBe(camMac);
    }
    expect(snap.observation.counters.forwardNew).toBe(8);
    expect(snap.observation.counters.forwardUndeclared).toBe(8);
    expect(snap.verdict).toBe('undeclared-egress');
  }, 60_000);

  it('in enforce mode, undeclared connections fail and declared ones work; the refused flows are still counted', async () => {
    await startBroker(lab);
    obs = await startObserver(lab, { mode: 'enforce' });
    expect(await tryConnect(lab, lab.rec, ADDR.undeclared, UNDECLARED_TCP_PORT)).toBe('ECONNREFUSED');
    expect(await tryConnect(lab, lab.rec, ADDR.broker, BROKER_PORT)).toBe('ok');
    // A camera's undeclared flow is refused too; its RTSP-less LAN traffic is not our business here.
    expect(await tryConnect(lab, lab.cam, ADDR.undeclared, UNDECLARED_TCP_PORT)).toBe('ECONNREFUSED');
    // Without the table the same connection works: the refusal was ours.
    const snap = await obs.egress();
    expect(snap.undeclared).toBe(2);
    expect(snap.verdict).toBe('undeclared-egress');
    expect(snap.observation.eventsLost).toBe(0);
    const refused = snap.flows.filter((f) => f.rule === null);
    expect(refused.map((f) => `${f.direction} ${f.src}`).sort()).toEqual([`forwarded ${ADDR.cam}`, `local ${ADDR.recWan}`]);
    expect(refused.every((f) => f.source === 'denied-set')).toBe(true);
    expect(snap.flows.some((f) => f.rule === 'broker' && f.dst === ADDR.broker)).toBe(true);
    await obs.stop();
    await lab.run(lab.rec, ['nft', 'delete', 'table', 'inet', 'glassbox']);
    expect(await tryConnect(lab, lab.rec, ADDR.undeclared, UNDECLARED_TCP_PORT)).toBe('ok');
  }, 60_000);

  it('follows a declared name to its new address, and stops allowing the old one when its TTL runs out', async () => {
    await startBroker(lab);
    obs = await startObserver(lab, { mode: 'enforce' });
    expect(await tryConnect(lab, lab.rec, ADDR.broker, BROKER_PORT)).toBe('ok');
    expect(await tryConnect(lab, lab.rec, ADDR.broker2, BROKER_PORT)).toBe('ECONNREFUSED');

    const changedAt = Date.now();
    await lab.setHost(BROKER_NAME, ADDR.broker2);
    // The new address is allowed once resolved again (refresh at 80 % of the 2 s TTL).
    await waitFor(async () => (await tryConnect(lab, lab.rec, ADDR.broker2, BROKER_PORT)) === 'ok', 6000, 'new address allowed');
    const newAfter = Date.now() - changedAt;
    // The old one goes when its TTL (+1 s grace) has run out after the last answer that named it.
    await waitFor(async () => (await tryConnect(lab, lab.rec, ADDR.broker, BROKER_PORT)) === 'ECONNREFUSED', 8000, 'old address refused');
    const oldAfter = Date.now() - changedAt;
    console.log(`new address allowed after ${newAfter} ms, old refused after ${oldAfter} ms (TTL ${lab.dnsTtl} s)`);
    expect(oldAfter).toBeGreaterThanOrEqual((lab.dnsTtl - 1) * 1000);
    const sets = await lab.run(lab.rec, ['nft', 'list', 'set', 'inet', 'glassbox', 'rule_1_v4']);
    expect(sets.stdout).toContain(ADDR.broker2);
    expect(sets.stdout).not.toContain(`${ADDR.broker} `);
    // The daemon's own DNS refreshes never made the window incomplete.
    expect((await obs.egress()).observation.rulesetIntact).toBe(true);
  }, 60_000);
});
