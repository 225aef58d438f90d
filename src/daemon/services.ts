/**
 * Services other modules plug into the daemon (egress observer, local API,
 * attestation). Each entry names the module, says from the config alone
 * whether it applies here, and loads a module exporting
 *   createService(ctx: DaemonContext): DaemonService | null
 * (null: not applicable after all). A module whose `enabled(config)` is
 * false is never imported: its code would otherwise stay resident for the
 * daemon's whole life (the egress plug-in and what it imports — x509,
 * attestation, API, tar via re-verification — cost ≈25 MiB of RSS; see
 * docs/daemon.md, "Footprint"). Add one entry per module; the daemon starts
 * them in this order BEFORE telemetry connects (after the queue, health
 * collector and provenance are built), so its own broker traffic is inside
 * the egress observation window from the first connection; it stops them in
 * reverse order AFTER telemetry has published its final offline status and
 * disconnected. Events a service publishes before the broker connection are
 * queued on disk and sent once connected.
 */
import type { DaemonConfig } from '../config/types.js';
import type { DaemonContext, DaemonService } from './types.js';

export type ServiceModule = { createService: (ctx: DaemonContext) => DaemonService | null | Promise<DaemonService | null> };

export interface ServiceEntry {
  readonly name: string;
  /** Decided from the config alone, without importing the module. */
  readonly enabled: (config: DaemonConfig) => boolean;
  readonly load: () => Promise<ServiceModule>;
}

/** The `enabled` flag of a config section other modules add (e.g. `egress`). */
function sectionEnabled(config: DaemonConfig, section: string): boolean {
  const s = (config as unknown as Record<string, unknown>)[section];
  return typeof s === 'object' && s !== null && (s as { enabled?: unknown }).enabled === true;
}

export const serviceModules: readonly ServiceEntry[] = [
  // Off unless `egress.enabled` (the same test as createService's own).
  { name: 'egress', enabled: (c) => sectionEnabled(c, 'egress'), load: () => import('../egress/daemon-service.js') },
];
