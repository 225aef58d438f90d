/**
 * The status page as the daemon serves it: routes `/` and `/v1/status`
 * over the daemon's live state. The local API service adds these next to
 * its own routes:
 *
 *   routes: [...egressRoutes(…), ...statusPageDaemonRoutes(ctx, { egress: () => egress.snapshot() })]
 */
import type { DaemonContext } from '../daemon/types.js';
import type { EgressSnapshot } from '../egress/types.js';
import type { Route } from '../api/server.js';
import { brokerFromDaemonStatus, egressFromSnapshot, gatherStatusFacts } from '../status/gather.js';
import type { StatusFacts } from '../status/types.js';
import { readPasswordRecord } from './password-file.js';
import { statusPageRoutes } from './routes.js';

export interface StatusPageSources {
  /** The egress observer's snapshot, or null when the observer does not run. */
  readonly egress: (() => Promise<EgressSnapshot>) | null;
  /** Seconds between page reloads (default 30). */
  readonly refreshSeconds?: number;
}

/** The account the key must belong to: the daemon's own, unless it runs as root (which reads any file). */
function daemonAccount(): { uid: number; gid: number } | null {
  const uid = process.getuid?.();
  const gid = process.getgid?.();
  return uid === undefined || gid === undefined || uid === 0 ? null : { uid, gid };
}

export function daemonStatusFacts(ctx: Pick<DaemonContext, 'config' | 'status' | 'lastHealth' | 'now'>, sources: StatusPageSources): () => Promise<StatusFacts> {
  return async () => {
    const status = ctx.status();
    let egress = null;
    let egressError: string | null = null;
    if (sources.egress) {
      try {
        egress = egressFromSnapshot(await sources.egress());
      } catch (err) {
        egressError = err instanceof Error ? err.message : String(err);
      }
    }
    return gatherStatusFacts({
      stateDir: ctx.config.stateDir,
      daemonVersion: status.version,
      now: ctx.now(),
      verify: false,
      expectedOwner: daemonAccount(),
      configuredBroker: ctx.config.mqtt.url,
      live: {
        broker: brokerFromDaemonStatus(status, ctx.config.mqtt.url),
        health: ctx.lastHealth(),
        egress,
        running: true,
        detail: egressError === null ? null : `egress snapshot failed: ${egressError}`,
      },
    });
  };
}

export function statusPageDaemonRoutes(ctx: Pick<DaemonContext, 'config' | 'status' | 'lastHealth' | 'now'>, sources: StatusPageSources): Route[] {
  return statusPageRoutes({
    facts: daemonStatusFacts(ctx, sources),
    password: () => readPasswordRecord(ctx.config.stateDir),
    refreshSeconds: sources.refreshSeconds ?? 30,
  });
}
