/** Periodic health samples into telemetry, and the `health` command. */
import type { Logger } from '../log/logger.js';
import type { HealthPayload } from '../telemetry/payloads.js';
import type { HealthCollector } from './collector.js';
import { grid, type GridTimer } from '../sched/grid.js';

export interface HealthServiceOptions {
  readonly intervalSeconds: number;
  readonly collector: HealthCollector;
  readonly publish: (sample: HealthPayload) => Promise<unknown>;
  readonly log: Logger;
}

export class HealthService {
  private timer: GridTimer | null = null;
  private last: HealthPayload | null = null;
  private running: Promise<void> | null = null;

  constructor(private readonly o: HealthServiceOptions) {}

  start(signal?: AbortSignal): void {
    signal?.addEventListener('abort', () => this.stop(), { once: true });
    void this.tick();
    // On the wake-up grid (src/sched/grid.ts): at the default 30 s, together with the daemon's other 30 s work.
    this.timer = grid.interval(this.o.intervalSeconds * 1000, () => void this.tick());
  }

  private tick(): Promise<void> {
    if (this.running) return this.running; // a slow sample never piles up
    this.running = (async () => {
      try {
        const sample = await this.o.collector.sample();
        this.last = sample;
        await this.o.publish(sample);
      } catch (err) {
        this.o.log.error({ err }, 'health sample failed');
      } finally {
        this.running = null;
      }
    })();
    return this.running;
  }

  /** A fresh sample (the `health` command): taken now, also queued like a periodic one. */
  async sampleNow(): Promise<HealthPayload> {
    const sample = await this.o.collector.sample();
    this.last = sample;
    await this.o.publish(sample).catch((err: unknown) => this.o.log.warn({ err }, 'health sample not queued'));
    return sample;
  }

  lastSample(): HealthPayload | null {
    return this.last;
  }

  stop(): void {
    this.timer?.cancel();
    this.timer = null;
  }
}
