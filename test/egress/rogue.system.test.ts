/**
 * The rogue process: 500 short TCP connections and 200 UDP datagrams to an
 * undeclared host, from the recorder namespace, as uid 65534. Every flow is
 * counted, the verdict is undeclared-egress, the flows carry the uid, and
 * the MQTT alert reaches a subscriber on the broker within one second.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ChildProcess } from 'node:child_process';
import { requireSystem } from '../helpers/system.js';
import { ADDR, UNDECLARED_TCP_PORT, UNDECLARED_UDP_PORT, createLab, startBroker, waitFor, type Lab } from '../helpers/netns.js';
import { BROKER_NAME, builtObserverMissing, runRogue, startObserver, type RunningObserver } from './lab-observer.js';

const missing = requireSystem(['ip', 'nft', 'conntrack', 'dnsmasq', 'mosquitto', 'mosquitto_sub', 'setpriv'], { root: true }) ?? builtObserverMissing();

describe.skipIf(missing)(`a rogue process in the recorder namespace${missing ? ` (skipped: ${missing})` : ''}`, () => {
  let lab: Lab;
  let obs: RunningObserver;
  let sub: ChildProcess;
  const received: Array<{ at: number; payload: Record<string, unknown> }> = [];

  beforeAll(async () => {
    lab = await createLab({ hosts: { [BROKER_NAME]: ADDR.broker } });
    await startBroker(lab);
    // A subscriber next to the broker stamps each alert when it arrives.
    sub = lab.spawn(lab.wan, ['mosquitto_sub', '-h', ADDR.broker, '-q', '1', '-t', 'glassbox/v1/+/events']);
    let buf = '';
    sub.stdout!.on('data', (c: Buffer) => {
      buf += c.toString('utf8');
      let i: number;
      while ((i = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, i);
        buf = buf.slice(i + 1);
        try {
          received.push({ at: Date.now(), payload: JSON.parse(line) as Record<string, unknown> });
        } catch { /* not ours */ }
      }
    });
    obs = await startObserver(lab, { mqtt: true });
    await waitFor(async () => (await lab.run(lab.wan, ['sh', '-c', 'true'])).code === 0, 1000, 'lab');
    await new Promise((r) => setTimeout(r, 1500)); // MQTT client connected
  }, 60_000);

  afterAll(async () => {
    await obs?.stop();
    await lab?.teardown();
  });

  it('counts all 700 flows, attributes them to uid 65534, says undeclared-egress, and alerts within a second', async () => {
    const before = await obs.egress();
    const rogue = await runRogue(lab, lab.rec, { host: ADDR.undeclared, tcpPort: UNDECLARED_TCP_PORT, udpPort: UNDECLARED_UDP_PORT, tcp: 500, udp: 200 });
    expect(rogue.tcpOk).toBe(500);
    expect(rogue.udpSent).toBe(200);

    const snap = await obs.egress();
    const counted = snap.observation.flowsCounted - before.observation.flowsCounted;
    const undeclared = snap.undeclared - before.undeclared;
    expect(counted).toBeGreaterThanOrEqual(700);
    expect(undeclared).toBe(700);
    expect(snap.verdict).toBe('undeclared-egress');
    // Every detail event arrives: conntrack writes to a tmpfs spool that never blocks it (docs/egress.md).
    expect(snap.observation.eventsLost).toBe(0);
    // Every flow is attributed to its uid by the kernel itself as well.
    expect(snap.observation.undeclaredByUid['65534']).toBe(700);

    const rogueFlows = snap.flows.filter((f) => f.dst === ADDR.undeclared);
    const tcp = rogueFlows.find((f) => f.proto === 'tcp' && f.dport === UNDECLARED_TCP_PORT);
    const udp = rogueFlows.find((f) => f.proto === 'udp' && f.dport === UNDECLARED_UDP_PORT);
    expect(tcp?.count).toBe(500);
    expect(udp?.count).toBe(200);
    for (const f of [tcp, udp]) {
      expect(f?.rule).toBeNull();
      expect(f?.direction).toBe('local');
      expect(f?.uids).toEqual([65534]);
      expect(f?.src).toBe(ADDR.recWan);
    }

    await waitFor(() => received.some((r) => (r.payload['data'] as { dst?: string } | undefined)?.dst === ADDR.undeclared), 3000, 'MQTT alert');
    const first = received.find((r) => (r.payload['data'] as { dst?: string } | undefined)?.dst === ADDR.undeclared)!;
    expect(first.payload['type']).toBe('egress.alert');
    expect((first.payload['data'] as { uid: number }).uid).toBe(65534);
    const latency = first.at - rogue.firstFlowAt;
    expect(latency).toBeLessThan(1000);
    console.log(`alert latency ${latency} ms; flows counted ${counted}, recorded ${snap.observation.flowsRecorded - before.observation.flowsRecorded}`);
  }, 120_000);
});
