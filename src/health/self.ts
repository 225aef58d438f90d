/**
 * The daemon's own health: RSS, heap, event-loop utilisation (free: read
 * from libuv's counters) and event-loop delay (perf_hooks histogram: one
 * libuv timer every `resolutionMs`, and how late it fired). A stall is seen
 * when a tick falls due during it: always for stalls of `resolutionMs` or
 * more, with probability length/resolutionMs for shorter ones. The default,
 * 10 s, is one wake-up per 10 s instead of one per second: at idle, the
 * number of wake-ups is most of what the daemon costs (docs/daemon.md,
 * "Idle cost").
 */
import { monitorEventLoopDelay, performance, type EventLoopUtilization, type IntervalHistogram } from 'node:perf_hooks';
import { round2 } from './parse.js';

export interface SelfSample {
  readonly rssBytes: number;
  readonly heapUsedBytes: number;
  readonly uptimeSeconds: number;
  readonly eventLoop: { readonly utilization: number; readonly delayP50Ms: number | null; readonly delayP99Ms: number | null; readonly delayMaxMs: number | null };
}

export class SelfMonitor {
  private histogram: IntervalHistogram | null = null;
  private lastElu: EventLoopUtilization | null = null;

  constructor(private readonly resolutionMs: number) {}

  start(): void {
    if (this.histogram) return;
    this.histogram = monitorEventLoopDelay({ resolution: this.resolutionMs });
    this.histogram.enable();
    this.lastElu = performance.eventLoopUtilization();
  }

  stop(): void {
    this.histogram?.disable();
    this.histogram = null;
  }

  /** Figures since the previous sample (the histogram is reset each time). */
  sample(): SelfSample {
    const mem = process.memoryUsage();
    const elu = performance.eventLoopUtilization(this.lastElu ?? undefined);
    this.lastElu = performance.eventLoopUtilization();
    const h = this.histogram;
    const ms = (ns: number) => round2(ns / 1e6);
    // The histogram measures how late each tick fired, including the tick interval itself.
    const delay = (v: number) => ms(Math.max(0, v - this.resolutionMs * 1e6));
    const has = h !== null && h.count > 0;
    const out: SelfSample = {
      rssBytes: mem.rss,
      heapUsedBytes: mem.heapUsed,
      uptimeSeconds: Math.round(process.uptime()),
      eventLoop: {
        utilization: round2(elu.utilization),
        delayP50Ms: has ? delay(h.percentile(50)) : null,
        delayP99Ms: has ? delay(h.percentile(99)) : null,
        delayMaxMs: has ? delay(h.max) : null,
      },
    };
    h?.reset();
    return out;
  }
}
