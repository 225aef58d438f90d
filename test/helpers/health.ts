/** A HealthCollector for tests: no SMART, a fixed clock, a silent log, fixed daemon figures. */
import { pino } from 'pino';
import { HealthCollector } from '../../src/health/collector.js';

export function testCollector(o: { recordingPaths: string[]; at: Date; root?: string }): HealthCollector {
  return new HealthCollector({
    deviceId: 'nvr-1',
    recordingPaths: o.recordingPaths,
    interfaces: null,
    smart: false,
    smartIntervalSeconds: 3600,
    daemon: () => ({ rssBytes: 1, heapUsedBytes: 1, uptimeSeconds: 1, eventLoop: { utilization: 0, delayP50Ms: null, delayP99Ms: null, delayMaxMs: null }, queue: { depth: 0, bytes: 0, maxBytes: 1, droppedEvents: 0, droppedHealth: 0 } }),
    log: pino({ level: 'silent' }),
    now: () => o.at,
    ...(o.root !== undefined ? { root: o.root } : {}),
  });
}
