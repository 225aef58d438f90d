/**
 * Resolution of host rules (bundle-v1 §4) with the records' TTLs, through
 * node:dns's Resolver (c-ares: /etc/resolv.conf or the configured servers).
 * The caller puts the addresses in the host sets with timeout = TTL + grace
 * and refreshes before they run out.
 */
import { Resolver } from 'node:dns/promises';
import type { ResolvedAddress } from './ruleset.js';

export interface DnsOptions {
  /** Name servers (ip or ip:port); default: the system's. */
  readonly servers?: readonly string[];
  /** Seconds added to each record's TTL before its address leaves the set (clients may connect just after resolving). */
  readonly graceSeconds?: number;
  /** TTLs below this are raised to it (and it is the shortest refresh interval). */
  readonly minTtlSeconds?: number;
  /** TTLs above this are lowered to it. */
  readonly maxTtlSeconds?: number;
  readonly timeoutMs?: number;
  /** Retry delay after a failed resolution, doubling with each further failure (default 2). */
  readonly retryBaseSeconds?: number;
  /** Longest retry delay after failures (default 60). */
  readonly retryMaxSeconds?: number;
}

export interface Resolution {
  readonly host: string;
  readonly addresses: readonly ResolvedAddress[];
  /** Seconds until this name should be resolved again. */
  readonly refreshSeconds: number;
  /** Set when resolution failed (the previous addresses then simply run out). */
  readonly error: string | null;
}

const NO_DATA = new Set(['ENODATA', 'ENOTFOUND', 'NOTFOUND', 'ENONAME']);

export class HostResolver {
  private readonly resolver: Resolver;
  readonly grace: number;
  readonly minTtl: number;
  readonly maxTtl: number;
  readonly retryBase: number;
  readonly retryMax: number;
  /** Consecutive failed resolutions per name (bounded by the declared names; cleared on success). */
  private readonly failures = new Map<string, number>();

  constructor(opts: DnsOptions = {}) {
    this.resolver = new Resolver({ timeout: opts.timeoutMs ?? 2000, tries: 2 });
    if (opts.servers && opts.servers.length > 0) this.resolver.setServers([...opts.servers]);
    this.grace = opts.graceSeconds ?? 1;
    this.minTtl = opts.minTtlSeconds ?? 1;
    this.maxTtl = opts.maxTtlSeconds ?? 3600;
    this.retryBase = Math.max(this.minTtl, opts.retryBaseSeconds ?? 2);
    this.retryMax = Math.max(this.retryBase, opts.retryMaxSeconds ?? 60);
  }

  async resolve(host: string): Promise<Resolution> {
    const errors: string[] = [];
    const out: ResolvedAddress[] = [];
    let minTtl = Infinity;
    const one = async (family: 4 | 6): Promise<void> => {
      try {
        const recs = family === 4 ? await this.resolver.resolve4(host, { ttl: true }) : await this.resolver.resolve6(host, { ttl: true });
        for (const r of recs) {
          const ttl = Math.min(this.maxTtl, Math.max(this.minTtl, r.ttl));
          minTtl = Math.min(minTtl, ttl);
          out.push({ family, address: r.address, timeoutSeconds: ttl + this.grace });
        }
      } catch (e) {
        const code = (e as { code?: string }).code ?? '';
        if (!NO_DATA.has(code)) errors.push(`${family === 4 ? 'A' : 'AAAA'}: ${code || (e as Error).message}`);
      }
    };
    await Promise.all([one(4), one(6)]);
    let refreshSeconds: number;
    if (errors.length > 0 || out.length === 0) {
      // Failed (or no address at all): back off exponentially, retryBase doubling to retryMax.
      const n = (this.failures.get(host) ?? 0) + 1;
      this.failures.set(host, n);
      refreshSeconds = retryDelaySeconds(n, this.retryBase, this.retryMax);
      // Some addresses did resolve (e.g. A answered, AAAA timed out): never let them lapse while backing off.
      if (out.length > 0) refreshSeconds = Math.min(refreshSeconds, Math.max(this.minTtl, minTtl * 0.8));
    } else {
      this.failures.delete(host);
      // Refresh at 80 % of the shortest TTL so that live addresses never lapse.
      refreshSeconds = Math.max(this.minTtl, minTtl * 0.8);
    }
    return { host, addresses: out, refreshSeconds, error: errors.length > 0 ? errors.join('; ') : null };
  }

  cancel(): void {
    this.resolver.cancel();
  }
}

/** Delay before retry after the n-th consecutive failure (n ≥ 1): base · 2^(n−1), at most max. Pure. */
export function retryDelaySeconds(n: number, base: number, max: number): number {
  return Math.min(max, base * 2 ** Math.min(Math.max(n - 1, 0), 30));
}
