/** The API's egress routes: /healthz, /v1/egress, /v1/attestation. */
import { GlassboxError } from '../errors.js';
import type { Attest } from '../attestation/attester.js';
import { isValidNonce } from '../attestation/statement.js';
import type { EgressSnapshot } from '../egress/types.js';
import type { Route } from './server.js';

export interface EgressRoutesDeps {
  readonly snapshot: () => Promise<EgressSnapshot>;
  readonly attest: Attest | null;
  /** Extra health facts (daemon services); default: egress only. */
  readonly health?: () => Promise<Record<string, unknown>>;
  readonly observer?: () => Record<string, unknown>;
}

export function egressRoutes(deps: EgressRoutesDeps): Route[] {
  return [
    {
      path: '/healthz',
      async handle() {
        const extra = deps.health ? await deps.health() : {};
        return { status: 200, body: { ok: true, ...extra } };
      },
    },
    {
      path: '/v1/egress',
      async handle() {
        const snapshot = await deps.snapshot();
        return { status: 200, body: { ...snapshot, observer: deps.observer ? deps.observer() : {} } };
      },
    },
    {
      path: '/v1/attestation',
      async handle(req) {
        const all = req.url.searchParams.getAll('nonce');
        const nonce = all[0];
        if (all.length !== 1 || !isValidNonce(nonce)) {
          return { status: 400, body: { error: 'NONCE_INVALID', reason: 'give exactly one nonce: 16–128 characters of [A-Za-z0-9_-]' } };
        }
        if (deps.attest === null) return { status: 503, body: { error: 'NO_IDENTITY', reason: 'this device has no identity key to sign with' } };
        try {
          const envelope = await deps.attest(nonce);
          return { status: 200, headers: { 'content-type': 'application/json' }, body: envelope };
        } catch (e) {
          const code = e instanceof GlassboxError ? e.code : 'INTERNAL';
          return { status: 503, body: { error: code, reason: e instanceof Error ? e.message : String(e) } };
        }
      },
    },
  ];
}
