/**
 * The handover between two spool segments, exact. Pure: events in, a
 * decision per event out.
 *
 * The detail reader rotates its spool make-before-break: a new `conntrack
 * -E` (writing segment N+1) listens before the old one (segment N) is
 * stopped, so events of the overlap reach both. Matching them by content
 * does not work: the kernel reuses conntrack ids, and a refused connection's
 * port is reused at once, so the same id and tuple recur within
 * milliseconds (38 times in 4,000 refused connections here). Instead the
 * reader cuts both streams at one point every listener sees in the same
 * place: a marker entry it inserts itself (`conntrack -I`, a loopback
 * tuple no real flow can carry, never counted by the table because it
 * passes no hook). Netlink delivers the same sequence to every listener, so
 *
 *   segment N:    … a b M | c d        → keep up to M, drop after it (c, d are in N+1 too)
 *   segment N+1:  a b | M c d e …      → drop up to M (a, b are in N), keep after it
 *
 * The marker is never delivered as an event. If a listener lost the marker
 * (its socket overflowed, which conntrack reports as ENOBUFS), the cut is
 * unknown: the segment stops skipping once its events are stamped past the
 * deadline, and the fault is reported (the window cannot be clean).
 */
import type { ConntrackEvent } from './conntrack-parse.js';
import { MARK_COUNTED, hex32 } from './mark.js';

export const MARKER_SRC = '127.255.255.254';
export const MARKER_DST = '127.255.255.253';

export interface Marker {
  readonly sport: number;
  readonly dport: number;
}

/** argv inserting the marker entry (UDP, 1 s timeout, glassbox's mark so the reader's --mark filter passes it). */
export function markerArgv(command: readonly string[], m: Marker): string[] {
  return [
    ...command, '-I', '-p', 'udp', '-s', MARKER_SRC, '-d', MARKER_DST,
    '--sport', String(m.sport), '--dport', String(m.dport), '--reply-port-src', String(m.dport), '--reply-port-dst', String(m.sport),
    '-t', '1', '--mark', hex32(MARK_COUNTED),
  ];
}

/** The text of the marker's event as conntrack prints it (to find it in a segment's bytes). */
export function markerText(m: Marker): string {
  return `src=${MARKER_SRC} dst=${MARKER_DST} sport=${m.sport} dport=${m.dport} `;
}

/** The marker an event is, or null for a real flow. */
export function markerOf(ev: ConntrackEvent): Marker | null {
  if (ev.src !== MARKER_SRC || ev.dst !== MARKER_DST || ev.proto !== 'udp' || ev.sport === null || ev.dport === null) return null;
  return { sport: ev.sport, dport: ev.dport };
}

function same(a: Marker | null, b: Marker): boolean {
  return a !== null && a.sport === b.sport && a.dport === b.dport;
}

export type Decision = 'deliver' | 'duplicate' | 'marker';

/** What to do with each event of one segment. */
export class SegmentCut {
  /** Old side of a handover: events after this marker are in the next segment too. */
  private cutAfter: Marker | null = null;
  private cut = false;
  /** New side: events before this marker are in the previous segment. */
  private skipUntil: Marker | null = null;
  /** Stop skipping for events stamped after this (ms), when the marker never shows. */
  private skipDeadline: number | null = null;
  /** An aborted rotation's segment: everything in it is also in the writer that went on. */
  private discardAll = false;
  /** The cut was not where it should be (a listener lost the marker). */
  faults = 0;

  cutAfterMarker(m: Marker | null): void {
    this.cutAfter = m;
  }

  skipUntilMarker(m: Marker): void {
    this.skipUntil = m;
  }

  /** No cut on this side after all. */
  clearSkip(): void {
    this.skipUntil = null;
    this.skipDeadline = null;
  }

  /** The old writer has stopped at stoppedAtMs: a marker missing by then + slack never comes. */
  skipAtMostUntil(ms: number): void {
    if (this.skipUntil !== null) this.skipDeadline = ms;
  }

  discardEverything(): void {
    this.discardAll = true;
  }

  decide(ev: ConntrackEvent): Decision {
    const m = markerOf(ev);
    if (m !== null) {
      if (this.skipUntil !== null && same(this.skipUntil, m)) {
        this.skipUntil = null;
        this.skipDeadline = null;
      } else if (this.cutAfter !== null && same(this.cutAfter, m)) this.cut = true;
      return 'marker';
    }
    if (this.discardAll || this.cut) return 'duplicate';
    if (this.skipUntil !== null) {
      if (this.skipDeadline === null || ev.at <= this.skipDeadline) return 'duplicate';
      this.skipUntil = null;
      this.skipDeadline = null;
      this.faults++;
    }
    return 'deliver';
  }
}
