import type { DaemonConfig } from '../config/types.js';
import type { Logger } from '../log/logger.js';
import type { CommandRegistry } from '../telemetry/commands.js';
import type { EventType, EventTypes } from '../telemetry/topics.js';
import type { HealthPayload } from '../telemetry/payloads.js';
import type { ProvenanceSource } from './provenance.js';
import type { DaemonStatus } from './status-file.js';

/**
 * A long-running part of the daemon. The constructor only assigns;
 * start() begins the work (and may watch `signal`); stop() ends it and
 * releases every timer and socket. Both are awaited.
 */
export interface DaemonService {
  readonly name: string;
  start(signal: AbortSignal): void | Promise<void>;
  stop(): void | Promise<void>;
}

/** What a plugged-in service gets from the daemon. */
export interface DaemonContext {
  readonly config: DaemonConfig;
  readonly deviceId: string;
  /** Root logger: make a child with `log.child({ module: '<name>' })`. */
  readonly log: Logger;
  /** Register read-only MQTT commands (e.g. `attest`). */
  readonly commands: CommandRegistry;
  /** Queues an event durably (resolves once on disk) and publishes it on `…/events`. */
  publishEvent<T extends EventType>(type: T, data: EventTypes[T], id?: string): Promise<{ id: string; seq: number }>;
  readonly provenance: ProvenanceSource;
  status(): DaemonStatus;
  lastHealth(): HealthPayload | null;
  now(): Date;
}
