/**
 * The detail reader's spool: conntrack writes to a file on tmpfs, the
 * observer tails it. Rotation (make-before-break) loses and doubles
 * nothing, and the observer itself being stopped loses nothing either:
 * only the kernel-side consumer (conntrack) can lose events
 * (integrity.system.test.ts stops that one).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ConntrackReader } from '../../src/egress/conntrack-reader.js';
import type { ConntrackEvent } from '../../src/egress/conntrack-parse.js';
import { requireSystem } from '../helpers/system.js';
import { ADDR, createLab, waitFor, type Lab } from '../helpers/netns.js';
import { BROKER_NAME, builtObserverMissing, runRogue, startObserver, type RunningObserver } from './lab-observer.js';

const missing = requireSystem(['ip', 'nft', 'conntrack', 'dnsmasq', 'setpriv'], { root: true }) ?? builtObserverMissing();

/** Declared flows: TCP 554 to the camera LAN (rule "cameras"); refused, but flows. */
async function declaredFlows(lab: Lab, n: number, concurrency = 32): Promise<void> {
  await runRogue(lab, lab.rec, { host: ADDR.cam, tcpPort: 554, udpPort: 9, tcp: n, udp: 0, concurrency });
}

describe.skipIf(missing)(`the detail reader's spool${missing ? ` (skipped: ${missing})` : ''}`, () => {
  let lab: Lab;
  let obs: RunningObserver;

  beforeAll(async () => {
    lab = await createLab();
    // 64 KiB segments: a rotation every ~300 events.
    obs = await startObserver(lab, { name: 'spool', spoolSegmentBytes: 64 * 1024 });
  }, 60_000);
  afterAll(async () => {
    await obs?.stop();
    await lab?.teardown();
  });

  it('rotates its segments under load without losing or doubling an event', async () => {
    // In waves, so that segments fill and rotate while flows go on (a burst faster than a rotation
    // simply makes one segment longer).
    for (let i = 0; i < 8; i++) {
      await declaredFlows(lab, 500, 16);
      await new Promise((r) => setTimeout(r, 150));
    }
    const snap = await obs.egress();
    console.log(`rotations ${snap.observer.rotations}, duplicates dropped ${snap.observer.duplicatesDropped}, counted ${snap.observation.flowsCounted}, recorded ${snap.observation.flowsRecorded}, overruns ${snap.observation.readerOverruns} ${JSON.stringify(snap.reasons)}`);
    expect(snap.observation.flowsCounted).toBeGreaterThanOrEqual(4000);
    expect(snap.observer.rotations).toBeGreaterThanOrEqual(4);
    expect(snap.observation.flowsRecorded).toBe(snap.observation.flowsCounted);
    expect(snap.observation.eventsLost).toBe(0);
    expect(snap.reasons).toEqual([]);
    expect(snap.verdict).toBe('clean');
    // Read segments are deleted: what is left is the one being written.
    const segments = (await readdir(join(obs.runtimeDir, 'conntrack'))).filter((n) => n.endsWith('.events'));
    expect(segments.length).toBeLessThanOrEqual(2);
  }, 60_000);

  it('loses nothing while the observer itself is stopped (conntrack keeps writing to the spool)', async () => {
    const before = await obs.egress();
    const pid = obs.proc.pid as number;
    process.kill(pid, 'SIGSTOP');
    try {
      await declaredFlows(lab, 3000);
    } finally {
      process.kill(pid, 'SIGCONT');
    }
    const snap = await obs.egress();
    console.log(`observer stopped during 3000 flows: counted +${snap.observation.flowsCounted - before.observation.flowsCounted}, recorded +${snap.observation.flowsRecorded - before.observation.flowsRecorded}, lost ${snap.observation.eventsLost}; reader ${JSON.stringify(snap.observer)}`);
    expect(snap.observation.flowsCounted - before.observation.flowsCounted).toBeGreaterThanOrEqual(3000);
    expect(snap.observation.eventsLost).toBe(0);
    expect(snap.verdict).toBe('clean');
  }, 60_000);
});

describe.skipIf(missing)(`an idle detail reader${missing ? ` (skipped: ${missing})` : ''}`, () => {
  let lab: Lab;
  let obs: RunningObserver;
  let reader: ConntrackReader;
  let spool: string;
  const arrivals: Array<{ at: number; event: ConntrackEvent }> = [];
  const errors: string[] = [];

  beforeAll(async () => {
    // The broker's name answered with a long TTL: the observer's refreshes (or retries) of it would be flows, not quiet.
    lab = await createLab({ dnsTtl: 300, hosts: { [BROKER_NAME]: ADDR.broker } });
    // The observer loads the glassbox table (it marks the flows the reader listens for).
    obs = await startObserver(lab, { name: 'idle' });
    spool = await mkdtemp(join(tmpdir(), 'gb-reader-idle-'));
    reader = new ConntrackReader({
      command: ['ip', 'netns', 'exec', lab.rec, 'conntrack'],
      spoolDir: spool,
      onEvent: (event) => arrivals.push({ at: Date.now(), event }),
      onOverrun: () => errors.push('overrun'),
      onMalformed: (r) => errors.push(r),
      onDropped: () => errors.push('dropped'),
      onHandoverFault: (r) => errors.push(r),
      onGap: () => errors.push('gap'),
      onError: (m) => errors.push(m),
      now: () => new Date(),
    });
    await reader.start();
  }, 60_000);
  afterAll(async () => {
    await reader?.stop();
    await obs?.stop();
    await lab?.teardown();
    if (spool) await rm(spool, { recursive: true, force: true });
  });

  it('stops polling the spool when nothing comes, and still reads the next flow at once', async () => {
    // 20 ms doubling to 250 ms, then a pass at 250 ms that finds nothing: the watch takes over.
    await waitFor(() => reader.watching, 3000, 'the reader watching the spool');
    const passes = reader.passes;
    const quietFrom = arrivals.length;
    await new Promise((r) => setTimeout(r, 2000));
    expect(arrivals.slice(quietFrom).map((a) => `${a.event.proto} ${a.event.src} -> ${a.event.dst}:${a.event.dport}`)).toEqual([]);
    // Polling at 250 ms would have made 8 passes; watching makes none (the safety poll is every 30 s).
    expect(reader.passes - passes).toBeLessThanOrEqual(1);
    expect(reader.watching).toBe(true);

    const before = arrivals.length;
    const flow = await runRogue(lab, lab.rec, { host: ADDR.cam, tcpPort: 554, udpPort: 9, tcp: 1, udp: 0 });
    await waitFor(() => arrivals.length > before, 3000, 'the flow read from the spool');
    const first = arrivals[before]!;
    expect(first.event.dst).toBe(ADDR.cam);
    // Only the watch can have woken the reader this soon (no poll was pending for 30 s).
    const latency = first.at - flow.firstFlowAt;
    console.log(`idle reader: ${reader.passes - passes} passes in 2 s of quiet; first flow read ${latency} ms after it began`);
    expect(latency).toBeLessThan(1000);
    // No overrun, malformed record, drop, gap or watch failure on the way.
    expect(errors).toEqual([]);
  }, 60_000);
});
