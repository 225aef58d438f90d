/**
 * Services other modules plug into the daemon (egress observer, local API,
 * attestation). Each entry loads a module exporting
 *   createService(ctx: DaemonContext): DaemonService | null
 * (null: not applicable here, e.g. disabled by config). Add one line per
 * module; the daemon starts them in this order after telemetry, health and
 * provenance, and stops them in reverse order.
 */
import type { DaemonContext, DaemonService } from './types.js';

export type ServiceModule = { createService: (ctx: DaemonContext) => DaemonService | null | Promise<DaemonService | null> };

export const serviceModules: Array<() => Promise<ServiceModule>> = [
  () => import('../egress/daemon-service.js'),
];
