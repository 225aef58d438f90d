/** Token buckets per client key. Pure: the time comes in. Bounded: at most maxClients buckets. */
export interface RateLimitOptions {
  readonly perMinute: number;
  readonly burst: number;
  readonly maxClients?: number;
}

export class RateLimiter {
  private readonly buckets = new Map<string, { tokens: number; at: number }>();

  constructor(private readonly opts: RateLimitOptions) {}

  /** True when the request may go ahead (and takes a token). */
  take(client: string, nowMs: number): boolean {
    const rate = this.opts.perMinute / 60_000;
    let b = this.buckets.get(client);
    if (b === undefined) {
      if (this.buckets.size >= (this.opts.maxClients ?? 1024)) this.evict(nowMs);
      b = { tokens: this.opts.burst, at: nowMs };
      this.buckets.set(client, b);
    }
    b.tokens = Math.min(this.opts.burst, b.tokens + Math.max(0, nowMs - b.at) * rate);
    b.at = nowMs;
    if (b.tokens < 1) return false;
    b.tokens -= 1;
    return true;
  }

  /** Seconds until the client has a token again. */
  retryAfter(client: string): number {
    const b = this.buckets.get(client);
    if (!b) return 0;
    return Math.max(1, Math.ceil((1 - b.tokens) / (this.opts.perMinute / 60)));
  }

  private evict(nowMs: number): void {
    // Drop full buckets first (clients that have been quiet), else the oldest.
    for (const [k, b] of this.buckets) {
      if (b.tokens + (nowMs - b.at) * (this.opts.perMinute / 60_000) >= this.opts.burst) this.buckets.delete(k);
    }
    if (this.buckets.size >= (this.opts.maxClients ?? 1024)) this.buckets.delete(this.buckets.keys().next().value as string);
  }
}
