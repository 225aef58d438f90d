/**
 * The daemon's own health: RSS, heap, event-loop utilisation (free: read
 * from libuv's counters) and event-loop delay: how late timers ran.
 *
 * At a resolution of 1 s or more (the default is 15 s) the delay is read
 * from the wake-up grid (src/sched/grid.ts): every grid wake-up records
 * how late it ran, and a probe every `resolutionMs` makes sure there is
 * one at least that often. The probe lands on grid points the daemon wakes
 * for anyway, so measuring costs no wake-up of its own. Under 1 s, a
 * perf_hooks monitorEventLoopDelay timer does it, at one wake-up per
 * resolution. Either way a stall is seen when a timer falls due during it:
 * always for stalls of `resolutionMs` or more, with probability about
 * length/resolutionMs for shorter ones.
 */
import { monitorEventLoopDelay, performance, type EventLoopUtilization, type IntervalHistogram, type RecordableHistogram } from 'node:perf_hooks';
import { grid as processGrid, type Grid, type GridTimer } from '../sched/grid.js';
import { round2 } from './parse.js';

export interface SelfSample {
  readonly rssBytes: number;
  readonly heapUsedBytes: number;
  readonly uptimeSeconds: number;
  readonly eventLoop: { readonly utilization: number; readonly delayP50Ms: number | null; readonly delayP99Ms: number | null; readonly delayMaxMs: number | null };
}

export class SelfMonitor {
  private timerHistogram: IntervalHistogram | null = null;
  private probe: GridTimer | null = null;
  private lastElu: EventLoopUtilization | null = null;

  constructor(
    private readonly resolutionMs: number,
    private readonly grid: Grid = processGrid,
  ) {}

  private get onGrid(): boolean {
    return this.resolutionMs >= 1000;
  }

  start(): void {
    if (this.timerHistogram !== null || this.probe !== null) return;
    if (this.onGrid) {
      this.grid.lateness.reset();
      this.probe = this.grid.interval(this.resolutionMs, () => undefined, { unref: true });
    } else {
      this.timerHistogram = monitorEventLoopDelay({ resolution: this.resolutionMs });
      this.timerHistogram.enable();
    }
    this.lastElu = performance.eventLoopUtilization();
  }

  stop(): void {
    this.timerHistogram?.disable();
    this.timerHistogram = null;
    this.probe?.cancel();
    this.probe = null;
  }

  /** Figures since the previous sample (the histogram is reset each time). */
  sample(): SelfSample {
    const mem = process.memoryUsage();
    const elu = performance.eventLoopUtilization(this.lastElu ?? undefined);
    this.lastElu = performance.eventLoopUtilization();
    const ms = (ns: number) => round2(ns / 1e6);
    // monitorEventLoopDelay records each tick's interval, the resolution included; the grid records lateness alone.
    const h: IntervalHistogram | RecordableHistogram | null = this.onGrid ? (this.probe !== null ? this.grid.lateness : null) : this.timerHistogram;
    const offset = this.onGrid ? 0 : this.resolutionMs * 1e6;
    const delay = (v: number) => ms(Math.max(0, v - offset));
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
