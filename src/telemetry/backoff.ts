/**
 * Reconnect delay, pure: capped exponential with "equal jitter" — half of
 * the capped delay is fixed, the other half random — so a fleet that lost
 * its broker at the same moment does not come back in lockstep, and no
 * device hammers the broker.
 *
 *   attempt 1 → [min/2 .. min], attempt n → [cap/2 .. cap], cap = min(max, min·2^(n-1))
 */
export function reconnectDelayMs(attempt: number, minSeconds: number, maxSeconds: number, random: number): number {
  const n = Math.max(1, Math.floor(attempt));
  const cap = Math.min(maxSeconds, minSeconds * 2 ** Math.min(n - 1, 30)) * 1000;
  const r = Math.min(1, Math.max(0, random));
  return Math.round(cap / 2 + (r * cap) / 2);
}

/** A connection that lasted this long resets the attempt counter. */
export const STABLE_CONNECTION_MS = 60_000;
