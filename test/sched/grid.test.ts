/**
 * The wake-up grid: where a timer lands, that timers due at the same point
 * share one wake-up, cancellation, ref/unref, and the lateness histogram.
 * A fake clock drives the logic; one test runs on real timers.
 */
import { describe, expect, it } from 'vitest';
import { deadlineOn, dueOn, Grid, stepFor, type GridClock } from '../../src/sched/grid.js';

class FakeClock implements GridClock {
  t = 0;
  timers: Array<{ at: number; fn: () => void; refd: boolean; live: boolean }> = [];
  /** Milliseconds the loop's clock lags when the next timer is set (Node counts from the cached loop time). */
  lag = 0;
  now(): number {
    return this.t;
  }
  setTimeout(fn: () => void, ms: number) {
    const rec = { at: this.t - this.lag + ms, fn, refd: true, live: true };
    this.lag = 0;
    this.timers.push(rec);
    return {
      ref: () => (rec.refd = true),
      unref: () => (rec.refd = false),
      rec,
    };
  }
  clearTimeout(t: unknown): void {
    if (t) (t as { rec: { live: boolean } }).rec.live = false;
  }
  get live() {
    return this.timers.filter((x) => x.live);
  }
  /** Advances to `to`, firing due timers in time order; returns how many wake-ups that took. */
  advance(to: number): number {
    let wakeups = 0;
    for (;;) {
      const next = this.live.filter((x) => x.at <= to).sort((a, b) => a.at - b.at)[0];
      if (next === undefined) break;
      this.t = Math.max(this.t, next.at);
      next.live = false;
      wakeups++;
      next.fn();
    }
    this.t = to;
    return wakeups;
  }
}

/** 2000 random (now, delay ≥ 1 s, its step) triples. */
function forRandomTimers(check: (now: number, delay: number, step: number) => void): void {
  for (let i = 0; i < 2000; i++) {
    const now = Math.random() * 1e7;
    const delay = 1000 + Math.random() * 200_000;
    check(now, delay, stepFor(delay)!);
  }
}

describe('where a timer lands', () => {
  it('takes the largest step not over the delay', () => {
    expect(stepFor(500)).toBeNull();
    expect(stepFor(1000)).toBe(1000);
    expect(stepFor(4999)).toBe(1000);
    expect(stepFor(10_000)).toBe(5000);
    expect(stepFor(15_000)).toBe(15_000);
    expect(stepFor(29_999)).toBe(15_000);
    expect(stepFor(30_000)).toBe(30_000);
    expect(stepFor(3_600_000)).toBe(60_000);
  });

  it('fires at the latest grid point within the delay: never later than asked, never sooner than delay − step', () => {
    expect(dueOn(0, 30_000)).toBe(30_000);
    expect(dueOn(1234, 30_000)).toBe(30_000);
    expect(dueOn(29_999, 30_000)).toBe(30_000);
    expect(dueOn(30_000, 30_000)).toBe(60_000);
    expect(dueOn(7_000, 15_000)).toBe(15_000);
    expect(dueOn(7_000, 10_000)).toBe(15_000);
    expect(dueOn(100, 500)).toBe(600);
    forRandomTimers((now, delay, step) => {
      const due = dueOn(now, delay);
      expect(due).toBeGreaterThan(now);
      expect(due).toBeLessThanOrEqual(now + delay);
      expect(due).toBeGreaterThan(now + delay - step);
      expect(due % step).toBe(0);
    });
  });
});

describe('where a deadline lands', () => {
  it('at the first grid point at least the delay away: never sooner than asked, less than a step later', () => {
    expect(deadlineOn(15_000.5, 10_000)).toBe(30_000); // a 10 s nft watchdog set just after a 15 s poll: the next poll's point
    expect(deadlineOn(0, 10_000)).toBe(10_000);
    expect(deadlineOn(100, 300)).toBe(400);
    forRandomTimers((now, delay, step) => {
      const due = deadlineOn(now, delay);
      expect(due).toBeGreaterThanOrEqual(now + delay);
      expect(due).toBeLessThan(now + delay + step);
      expect(due % step).toBe(0);
    });
  });

  it('shares the wake-up of the next 15 s poll when set for 10 s just after one, and cancelling it leaves the poll alone', () => {
    const clock = new FakeClock();
    const g = new Grid(clock);
    const pending: number[] = [];
    let polls = 0;
    g.interval(15_000, () => {
      polls++;
      clock.t += 3; // the poll's own work before it asks nft
      const watchdog = g.deadline(10_000, () => {
        throw new Error('watchdog fired');
      });
      pending.push(g.pendingWakeups); // the next poll's point and the watchdog's: one
      watchdog.cancel(); // nft answered
      pending.push(g.pendingWakeups);
    });
    expect(clock.advance(150_000)).toBe(10);
    expect(polls).toBe(10);
    expect(new Set(pending)).toEqual(new Set([1]));
  });
});

describe('Grid', () => {
  it('runs timers due at the same grid point in one wake-up, in the order they were set', () => {
    const clock = new FakeClock();
    const g = new Grid(clock);
    const ran: string[] = [];
    clock.t = 1_000;
    g.timeout(30_000, () => ran.push('a'));
    clock.t = 4_321;
    g.timeout(30_000, () => ran.push('b'));
    g.timeout(15_000, () => ran.push('c')); // due 15 000: its own point
    clock.t = 16_000;
    g.timeout(15_000, () => ran.push('d')); // due 30 000: shares a and b's
    expect(g.pendingWakeups).toBe(2);
    expect(clock.advance(40_000)).toBe(2);
    expect(ran).toEqual(['c', 'a', 'b', 'd']);
    expect(g.pendingWakeups).toBe(0);
  });

  it('keeps intervals of 10, 15 and 30 s to the union of their grid points', () => {
    const clock = new FakeClock();
    const g = new Grid(clock);
    const counts = { ten: 0, fifteen: 0, thirty: 0 };
    clock.t = 333;
    g.interval(30_000, () => counts.thirty++);
    clock.t = 2_222;
    g.interval(15_000, () => counts.fifteen++);
    clock.t = 4_444;
    g.interval(10_000, () => counts.ten++);
    const wakeups = clock.advance(600_333);
    expect(counts).toEqual({ thirty: 20, fifteen: 40, ten: 60 });
    // Plain timers: 120 wake-ups. On the grid: points at 0, 10, 15, 20, 30, 40, 45, 50 s of each minute.
    expect(wakeups).toBe(80);
  });

  it('keeps an interval exactly one period apart, and picks up after a stall longer than the period', () => {
    const clock = new FakeClock();
    const g = new Grid(clock);
    const at: number[] = [];
    clock.t = 10_000;
    g.interval(45_000, () => at.push(clock.t));
    clock.advance(200_000);
    expect(at).toEqual([30_000, 75_000, 120_000, 165_000]);
    // A stall: the process did not run from 165 s to 400 s; one run, then the period again.
    clock.t = 400_000;
    clock.advance(480_000);
    expect(at.slice(4)).toEqual([400_000, 420_000, 465_000]);
  });

  it('cancels one job without disturbing the others of its point, and the point with its last job', () => {
    const clock = new FakeClock();
    const g = new Grid(clock);
    const ran: string[] = [];
    const a = g.timeout(30_000, () => ran.push('a'));
    g.timeout(30_000, () => ran.push('b'));
    const c = g.timeout(15_000, () => ran.push('c'));
    a.cancel();
    c.cancel();
    expect(g.pendingWakeups).toBe(1);
    expect(clock.live).toHaveLength(1);
    expect(clock.advance(60_000)).toBe(1);
    expect(ran).toEqual(['b']);
    const i = g.interval(5_000, () => ran.push('i'));
    clock.advance(71_000);
    i.cancel();
    clock.advance(100_000);
    expect(ran.filter((x) => x === 'i')).toHaveLength(2);
    expect(clock.live).toHaveLength(0);
  });

  it('stays bounded when a timer is set and cancelled for every packet of a burst (mqtt.js keepalive)', () => {
    const clock = new FakeClock();
    const g = new Grid(clock);
    let pings = 0;
    let t = g.interval(15_000, () => pings++, { unref: true });
    const started = performance.now();
    for (let i = 0; i < 200_000; i++) {
      t.cancel();
      t = g.interval(15_000, () => pings++, { unref: true });
      clock.t += 0.01;
    }
    expect(performance.now() - started).toBeLessThan(2000);
    expect(g.pendingWakeups).toBe(1);
    expect(clock.advance(clock.t + 15_000)).toBe(1);
    expect(pings).toBe(1);
  });

  it('holds the process open only while a job that wants it is pending', () => {
    const clock = new FakeClock();
    const g = new Grid(clock);
    g.timeout(30_000, () => undefined, { unref: true });
    const handle = clock.live[0]!;
    expect(handle.refd).toBe(false);
    const held = g.timeout(30_000, () => undefined);
    expect(handle.refd).toBe(true);
    held.cancel();
    expect(handle.refd).toBe(false);
  });

  it('never runs a job before its grid point, even when the loop clock lags', () => {
    const clock = new FakeClock();
    const g = new Grid(clock);
    let ranAt = -1;
    clock.t = 500;
    clock.lag = 3;
    g.timeout(30_000, () => (ranAt = clock.t));
    clock.advance(40_000);
    expect(ranAt).toBe(30_000);
  });

  it('records how late each grid point ran', () => {
    const clock = new FakeClock();
    const g = new Grid(clock);
    g.timeout(30_000, () => undefined);
    clock.live[0]!.at += 250; // the loop was busy: the wake-up comes 250 ms late
    clock.advance(31_000);
    expect(g.lateness.count).toBe(1);
    expect(g.lateness.max / 1e6).toBeGreaterThan(247); // the histogram keeps 2 significant figures
    expect(g.lateness.max / 1e6).toBeLessThan(253);
  });

  it('lets the other jobs of a point run when one throws, then throws that error', async () => {
    const clock = new FakeClock();
    const g = new Grid(clock);
    const ran: string[] = [];
    g.timeout(30_000, () => {
      throw new Error('job failed');
    });
    g.timeout(30_000, () => ran.push('second'));
    const thrown = new Promise<Error>((resolve) => process.once('uncaughtException', resolve));
    clock.advance(30_000);
    expect(ran).toEqual(['second']);
    expect((await thrown).message).toBe('job failed');
  });

  it('shares one real Node timer among jobs due at the same point', async () => {
    const g = new Grid(undefined, [100]);
    const t0 = performance.now();
    // Jobs that run in one synchronous turn see the same batch number.
    let batch = 0;
    let bump = false;
    const ran: Array<{ batch: number; at: number }> = [];
    for (let i = 0; i < 5; i++) {
      g.timeout(150, () => {
        ran.push({ batch, at: performance.now() });
        if (!bump) {
          bump = true;
          queueMicrotask(() => batch++);
        }
      });
    }
    expect(g.pendingWakeups).toBe(1);
    await new Promise((r) => setTimeout(r, 400));
    expect(ran).toHaveLength(5);
    expect(new Set(ran.map((r) => r.batch)).size).toBe(1);
    expect(ran[0]!.at - t0).toBeGreaterThanOrEqual(50);
    expect(ran[0]!.at - t0).toBeLessThanOrEqual(150 + 100);
  });
});
