/**
 * Incremental parser of `conntrack -E -e NEW -o timestamp,extended,id`
 * output. Pure: chunks of bytes in, events out; never throws on bad input
 * (a line it cannot read is counted as malformed, never guessed at).
 *
 *   [1700000000.123456]\t    [NEW] ipv4     2 tcp      6 120 SYN_SENT src=192.0.2.1 dst=203.0.113.66
 *     sport=52758 dport=7000 [UNREPLIED] src=203.0.113.66 dst=192.0.2.1 sport=7000 dport=52758
 *     mark=2147483650 id=889105574
 *
 * The first src/dst/sport/dport are the original direction (who opened the
 * flow); `mark` is glassbox's mark (mark.ts); the last `id=` is conntrack's
 * entry id (from `-o id`).
 */
export interface ConntrackEvent {
  /** Milliseconds since the epoch, as conntrack stamped the event on receipt. */
  readonly at: number;
  readonly family: 4 | 6;
  /** Protocol name as conntrack prints it (tcp, udp, icmp, …), or its number as text. */
  readonly proto: string;
  readonly src: string;
  readonly dst: string;
  readonly sport: number | null;
  readonly dport: number | null;
  readonly mark: number;
  readonly id: number | null;
}

export type ParsedLine = { kind: 'event'; event: ConntrackEvent } | { kind: 'other' } | { kind: 'malformed'; reason: string };

const PORT = /^(0|[1-9][0-9]{0,4})$/;

export function parseConntrackLine(line: string): ParsedLine {
  const m = /^\[(\d{1,12})\.(\d{1,9})\]\s+\[NEW\]\s+(.*)$/.exec(line);
  if (!m) {
    if (line.trim() === '') return { kind: 'other' };
    return { kind: 'malformed', reason: 'not a timestamped [NEW] event' };
  }
  const frac = (m[2] as string).padEnd(6, '0').slice(0, 6);
  const at = Number(m[1]) * 1000 + Math.floor(Number(frac) / 1000);
  const tokens = (m[3] as string).split(/\s+/).filter((t) => t !== '');
  const l3 = tokens[0];
  const family = l3 === 'ipv4' ? 4 : l3 === 'ipv6' ? 6 : null;
  if (family === null) return { kind: 'malformed', reason: `unknown layer 3 ${JSON.stringify(l3)}` };
  const proto = tokens[2];
  if (proto === undefined || !/^[a-z0-9-]{1,16}$/.test(proto)) return { kind: 'malformed', reason: 'no protocol name' };
  const protoName = proto === 'unknown' && tokens[3] !== undefined ? tokens[3] : proto;
  const first = new Map<string, string>();
  let mark = 0;
  let id: number | null = null;
  for (const t of tokens.slice(3)) {
    const eq = t.indexOf('=');
    if (eq <= 0) continue;
    const k = t.slice(0, eq);
    const v = t.slice(eq + 1);
    if (k === 'mark') mark = Number(v);
    else if (k === 'id') id = /^\d{1,10}$/.test(v) ? Number(v) : null;
    if (!first.has(k)) first.set(k, v);
  }
  const src = first.get('src');
  const dst = first.get('dst');
  if (src === undefined || dst === undefined) return { kind: 'malformed', reason: 'no src= or dst=' };
  if (!Number.isInteger(mark) || mark < 0 || mark > 0xffffffff) return { kind: 'malformed', reason: 'bad mark' };
  const port = (v: string | undefined): number | null => (v !== undefined && PORT.test(v) && Number(v) <= 65535 ? Number(v) : null);
  return {
    kind: 'event',
    event: { at, family, proto: protoName, src, dst, sport: port(first.get('sport')), dport: port(first.get('dport')), mark, id },
  };
}

/**
 * Splits a byte stream into lines, bounded: a line longer than maxLine is
 * dropped whole (and counted) instead of growing a buffer without end.
 */
export class LineSplitter {
  private partial = '';
  private discarding = false;
  overlong = 0;

  constructor(private readonly maxLine = 4096) {}

  push(chunk: string): string[] {
    const parts = (this.partial + chunk).split('\n');
    this.partial = parts.pop() ?? '';
    const out: string[] = [];
    for (const p of parts) {
      if (this.discarding) {
        this.discarding = false;
        continue;
      }
      if (p.length > this.maxLine) {
        this.overlong++;
        continue;
      }
      out.push(p);
    }
    if (this.partial.length > this.maxLine) {
      this.partial = '';
      if (!this.discarding) this.overlong++;
      this.discarding = true;
    }
    return out;
  }
}

/** conntrack's stderr: how many times it said the kernel dropped events for want of buffer (ENOBUFS). */
export function isOverrunMessage(line: string): boolean {
  return /ENOBUFS|No buffer space available/i.test(line);
}
