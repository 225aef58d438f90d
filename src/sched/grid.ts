/**
 * Wake-ups on a shared grid, so that the idle daemon's periodic work comes
 * due together instead of each timer waking the process on its own.
 *
 * Why: on the recorder-class VMs measured here, each wake-up of an idle
 * Node process costs about 1–6 ms of CPU however little it does (an empty Node
 * process with one 1 s timer: 0.09–0.57 % of a core), so at idle the
 * number of wake-ups, not the work in them, is most of the daemon's CPU
 * (docs/daemon.md, "Idle cost"). The kernel does the same for its own
 * timers (round_jiffies, timer slack); systemd has AccuracySec=.
 *
 * How: a timer of delay d ≥ 1 s fires at the latest multiple of its step
 * that is at most d away, never later than asked and never sooner than
 * d − step. The step is the largest of 1, 5, 15, 30 and 60 s that is ≤ d,
 * counted on one monotonic clock, so a 15 s timer fires on the 15 s grid,
 * a 30 s timer on the 30 s grid (every other 15 s point), and so on. All
 * timers due at the same grid point share one Node timer and run in one
 * wake-up, in the order they were set. A timer under 1 s is a plain one.
 *
 * Each grid wake-up also records how late it ran (performance.now() minus
 * its grid point) in a histogram: the event-loop delay of the health
 * sample, measured on wake-ups that happen anyway (health/self.ts).
 */
import { createHistogram, performance, type RecordableHistogram } from 'node:perf_hooks';

export interface GridTimer {
  cancel(): void;
}

export interface GridClock {
  now(): number;
  setTimeout(fn: () => void, ms: number): { ref(): unknown; unref(): unknown };
  clearTimeout(t: unknown): void;
}

const REAL_CLOCK: GridClock = {
  now: () => performance.now(),
  setTimeout: (fn, ms) => setTimeout(fn, ms),
  clearTimeout: (t) => clearTimeout(t as NodeJS.Timeout),
};

export const GRID_STEPS_MS: readonly number[] = [1_000, 5_000, 15_000, 30_000, 60_000];

interface Job {
  readonly fn: () => void;
  readonly ref: boolean;
  cancelled: boolean;
}

interface Slot {
  readonly due: number;
  /** Jobs in the order they were set; cancelled ones are compacted away when they are the majority. */
  jobs: Job[];
  handle: { ref(): unknown; unref(): unknown } | null;
  /** Jobs not cancelled, and how many of them hold the process open. */
  live: number;
  refs: number;
}

/** The largest step ≤ delay (null: under the smallest step, not aligned). */
export function stepFor(delayMs: number, steps: readonly number[] = GRID_STEPS_MS): number | null {
  let best: number | null = null;
  for (const s of steps) if (s <= delayMs) best = s;
  return best;
}

/** When a deadline set at `now` for `delayMs` fires: the first multiple of its step ≥ now + delay. */
export function deadlineOn(now: number, delayMs: number, steps: readonly number[] = GRID_STEPS_MS): number {
  const step = stepFor(delayMs, steps);
  if (step === null) return now + delayMs;
  return Math.ceil((now + delayMs) / step) * step;
}

/** When a timer set at `now` for `delayMs` fires: the latest multiple of its step ≤ now + delay, if after now. */
export function dueOn(now: number, delayMs: number, steps: readonly number[] = GRID_STEPS_MS): number {
  const step = stepFor(delayMs, steps);
  if (step === null) return now + delayMs;
  const due = Math.floor((now + delayMs) / step) * step;
  return due > now ? due : now + delayMs;
}

export class Grid {
  private readonly slots = new Map<number, Slot>();
  /** How late grid wake-ups ran, in ns (1 ns … 1 h); read and reset by the health sample. */
  readonly lateness: RecordableHistogram = createHistogram({ lowest: 1, highest: 3_600_000_000_000, figures: 2 });

  constructor(
    private readonly clock: GridClock = REAL_CLOCK,
    private readonly steps: readonly number[] = GRID_STEPS_MS,
  ) {}

  /** Number of distinct pending grid points (tests, diagnostics). */
  get pendingWakeups(): number {
    return this.slots.size;
  }

  /** Runs `fn` once, at the grid point for `delayMs` (see the module comment). */
  timeout(delayMs: number, fn: () => void, opts: { unref?: boolean } = {}): GridTimer {
    return this.once(dueOn, delayMs, fn, opts);
  }

  /**
   * A watchdog: runs `fn` at the first grid point at least `delayMs` away (never sooner than asked,
   * up to a step later). Meant to be cancelled: Node does not move its wake-up when a timer is
   * cleared, so a cleared plain timer still wakes the process at its time; a cleared deadline
   * leaves that wake-up on a grid point, where other work is usually due anyway.
   */
  deadline(delayMs: number, fn: () => void, opts: { unref?: boolean } = {}): GridTimer {
    return this.once(deadlineOn, delayMs, fn, opts);
  }

  private once(place: typeof dueOn, delayMs: number, fn: () => void, opts: { unref?: boolean }): GridTimer {
    const ms = Math.max(0, delayMs);
    if (stepFor(ms, this.steps) === null) {
      const t = this.clock.setTimeout(fn, ms);
      if (opts.unref) t.unref();
      return { cancel: () => this.clock.clearTimeout(t) };
    }
    return this.at(place(this.clock.now(), ms, this.steps), fn, opts.unref !== true);
  }

  /**
   * Runs `fn` every `periodMs`: first at the grid point for the period, then exactly one period
   * apart (so a period that is a multiple of its step, as the daemon's are, stays on the grid).
   */
  interval(periodMs: number, fn: () => void, opts: { unref?: boolean } = {}): GridTimer {
    if (stepFor(periodMs, this.steps) === null) {
      const t = setInterval(fn, periodMs);
      if (opts.unref) t.unref();
      return { cancel: () => clearInterval(t) };
    }
    let current: GridTimer | null = null;
    let stopped = false;
    let due = dueOn(this.clock.now(), periodMs, this.steps);
    const arm = () => {
      current = this.at(due, () => {
        if (stopped) return;
        // Exactly one period after this point (on the grid when the period is a multiple of its
        // step, as the defaults are); after a stall longer than the period, the next point from now.
        const now = this.clock.now();
        due += periodMs;
        if (due <= now) due = dueOn(now, periodMs, this.steps);
        arm();
        fn();
      }, opts.unref !== true);
    };
    arm();
    return {
      cancel: () => {
        stopped = true;
        current?.cancel();
      },
    };
  }

  private at(due: number, fn: () => void, ref: boolean): GridTimer {
    const job: Job = { fn, ref, cancelled: false };
    let slot = this.slots.get(due);
    if (slot === undefined) {
      slot = { due, jobs: [], handle: null, live: 0, refs: 0 };
      this.slots.set(due, slot);
      this.arm(slot);
    }
    slot.jobs.push(job);
    slot.live++;
    if (job.ref) slot.refs++;
    this.applyRef(slot);
    const s = slot;
    return {
      cancel: () => {
        if (job.cancelled) return;
        job.cancelled = true;
        s.live--;
        if (job.ref) s.refs--;
        if (s.live === 0) {
          this.clock.clearTimeout(s.handle);
          s.handle = null;
          if (this.slots.get(s.due) === s) this.slots.delete(s.due);
        } else {
          // mqtt.js re-sets its keepalive timer on every packet it sends: keep a burst's cancelled jobs bounded.
          if (s.jobs.length >= 64 && s.live * 2 < s.jobs.length) s.jobs = s.jobs.filter((j) => !j.cancelled);
          this.applyRef(s);
        }
      },
    };
  }

  private arm(slot: Slot): void {
    // Rounded up: Node's timers count from the loop's cached time, which can lag the clock.
    slot.handle = this.clock.setTimeout(() => this.run(slot), Math.max(1, Math.ceil(slot.due - this.clock.now())));
  }

  private applyRef(slot: Slot): void {
    if (slot.refs > 0) slot.handle?.ref();
    else slot.handle?.unref();
  }

  private run(slot: Slot): void {
    const now = this.clock.now();
    if (now < slot.due - 1) {
      // Woken over a millisecond before the grid point (the loop's clock lagged): wait out the rest.
      this.arm(slot);
      this.applyRef(slot);
      return;
    }
    if (this.slots.get(slot.due) === slot) this.slots.delete(slot.due);
    slot.handle = null;
    this.lateness.record(Math.max(1, Math.round((now - slot.due) * 1e6)));
    for (const job of slot.jobs) {
      if (job.cancelled) continue;
      job.cancelled = true;
      try {
        job.fn();
      } catch (err) {
        // Thrown as from a plain timer, but after the other jobs of this grid point have run.
        queueMicrotask(() => {
          throw err;
        });
      }
    }
  }
}

/** The process's grid: every periodic timer of the daemon that may wait 1 s or more. */
export const grid = new Grid();

/** setInterval/clearInterval shaped for mqtt.js's `timerVariant` (its keepalive ticks). */
export const gridIntervalTimer = {
  set: (fn: () => void, ms: number): GridTimer => grid.interval(ms, fn, { unref: true }),
  clear: (t: GridTimer): void => t.cancel(),
};
