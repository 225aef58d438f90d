/**
 * The status page's routes on the daemon's local API: `/` (HTML) and
 * `/v1/status` (the same view as JSON). When a password is set, TCP clients
 * must give it (HTTP Basic); the Unix socket does not ask.
 */
import { createHash, randomBytes } from 'node:crypto';
import type { ApiRequest, ApiResponse, Route } from '../api/server.js';
import { composeStatus } from '../status/checks.js';
import type { StatusFacts } from '../status/types.js';
import { basicPassword, FailureLimiter, verifyPassword, type PasswordRecord } from './auth.js';
import { renderStatusPage, STATUS_PAGE_CSP } from './render.js';

export interface StatusPageDeps {
  /** Gathers the facts for one page (the daemon's live data and the device files). */
  readonly facts: () => Promise<StatusFacts>;
  /** The password record, or null when the page is open (read per request: set/cleared without restart). */
  readonly password: () => Promise<PasswordRecord | null>;
  readonly now?: () => number;
  readonly refreshSeconds?: number;
  readonly limiter?: FailureLimiter;
}

const PAGE_HEADERS = {
  'content-type': 'text/html; charset=utf-8',
  'content-security-policy': STATUS_PAGE_CSP,
  'x-frame-options': 'DENY',
  'referrer-policy': 'no-referrer',
  'cross-origin-resource-policy': 'same-origin',
} as const;

function unauthorized(retryAfter: number | null): ApiResponse {
  const headers: Record<string, string> = {
    ...PAGE_HEADERS,
    'www-authenticate': 'Basic realm="glassbox recorder status", charset="UTF-8"',
  };
  if (retryAfter !== null) headers['retry-after'] = String(retryAfter);
  const text = retryAfter === null ? 'This recorder\'s status page needs the technician password set at provisioning.' : `Too many wrong passwords: try again in ${retryAfter} s.`;
  return {
    status: retryAfter === null ? 401 : 429,
    headers,
    body: `<!doctype html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1"><link rel="icon" href="data:,"><title>glassbox</title></head><body><p>${text}</p></body></html>\n`,
  };
}

/** A fresh attestation nonce: 24 random bytes, base64url (32 characters). */
export function newNonce(): string {
  return randomBytes(24).toString('base64url');
}

/** A password checked once is remembered this long (scrypt costs ~0.1-0.5 s; the page reloads every 30 s). */
export const AUTH_CACHE_MS = 10 * 60_000;
const AUTH_CACHE_MAX = 64;

export function statusPageRoutes(deps: StatusPageDeps): Route[] {
  const now = deps.now ?? Date.now;
  const limiter = deps.limiter ?? new FailureLimiter();
  // sha256(stored hash + Authorization header) → expiry. Never the password itself; a new password invalidates every entry.
  const verified = new Map<string, number>();

  async function authorised(req: ApiRequest): Promise<ApiResponse | null> {
    if (req.client === 'unix') return null;
    const record = await deps.password();
    if (record === null) return null;
    const wait = limiter.blockedFor(req.client, now());
    if (wait > 0) return unauthorized(wait);
    const header = typeof req.headers.authorization === 'string' ? req.headers.authorization : undefined;
    const given = basicPassword(header);
    if (given === null) return unauthorized(null);
    const key = createHash('sha256').update(record.hash).update('\0').update(header ?? '').digest('hex');
    const until = verified.get(key);
    if (until !== undefined && until > now()) return null;
    if (await verifyPassword(record, given)) {
      verified.delete(key);
      verified.set(key, now() + AUTH_CACHE_MS);
      while (verified.size > AUTH_CACHE_MAX) verified.delete(verified.keys().next().value as string);
      return null;
    }
    limiter.fail(req.client, now());
    return unauthorized(null);
  }

  return [
    {
      path: '/',
      async handle(req) {
        const denied = await authorised(req);
        if (denied) return denied;
        const view = composeStatus(await deps.facts());
        return { status: 200, headers: PAGE_HEADERS, body: renderStatusPage(view, { nonce: newNonce(), refreshSeconds: deps.refreshSeconds ?? 0 }) };
      },
    },
    {
      path: '/v1/status',
      async handle(req) {
        const denied = await authorised(req);
        if (denied) return denied;
        return { status: 200, body: composeStatus(await deps.facts()) };
      },
    },
  ];
}
