/**
 * RFC 3339 UTC timestamps as the manifest schema accepts them: upper-case T
 * and Z, whole seconds, or milliseconds when there are any. Pure.
 */

/** `2025-03-01T12:00:00Z`, or `2025-03-01T12:00:00.250Z` when the milliseconds are not zero. */
export function formatUtc(date: Date): string {
  const ms = date.getTime();
  if (!Number.isFinite(ms)) throw new RangeError('invalid Date');
  const iso = date.toISOString();
  if (iso.length !== 24) throw new RangeError(`year out of the 4-digit range: ${iso}`);
  return ms % 1000 === 0 ? `${iso.slice(0, 19)}Z` : iso;
}

/** Milliseconds since the epoch of a schema-valid timestamp (exact: at most 3 fraction digits). */
export function utcMillis(timestamp: string): number {
  const ms = Date.parse(timestamp);
  if (!Number.isFinite(ms)) throw new RangeError(`not a timestamp: ${JSON.stringify(timestamp)}`);
  return ms;
}
