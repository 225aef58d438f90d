/**
 * The daemon: wiring and lifecycle. Builds every service from the frozen
 * config, starts them in order, stops them in reverse. The CLI
 * (src/cli/daemon.ts) owns signals and the process exit.
 */
import { join } from 'node:path';
import type { DaemonConfig } from '../config/types.js';
import type { Logger } from '../log/logger.js';
import { HealthCollector } from '../health/collector.js';
import { HealthService } from '../health/service.js';
import { SelfMonitor } from '../health/self.js';
import { CommandRegistry } from '../telemetry/commands.js';
import { DiskQueue } from '../telemetry/queue.js';
import { TelemetryService } from '../telemetry/service.js';
import { SpoolReader } from '../telemetry/spool.js';
import type { HealthPayload, ProvenancePayload } from '../telemetry/payloads.js';
import type { EventType, EventTypes } from '../telemetry/topics.js';
import { resolveDeviceId } from './identity.js';
import { JournalEventSource } from './journal-events.js';
import { SystemdNotifier } from './notify.js';
import { InstallStateProvenance, installStateKey, type ProvenanceSource } from './provenance.js';
import { DAEMON_NODE_OPTIONS, missingNodeOptions } from './runtime.js';
import { serviceModules } from './services.js';
import { grid, type GridTimer } from '../sched/grid.js';
import { writeDaemonStatus, type DaemonStatus } from './status-file.js';
import type { DaemonContext, DaemonService } from './types.js';

export interface DaemonOptions {
  readonly config: DaemonConfig;
  readonly log: Logger;
  readonly version: string;
  readonly env: Readonly<Record<string, string | undefined>>;
  readonly now?: () => Date;
  /** Overrides the install-state reader (tests, other platforms). */
  readonly provenance?: ProvenanceSource;
  /** Load the plugged-in services of services.ts (default true). */
  readonly plugins?: boolean;
  /** Broker URL to use instead of config.mqtt.url (the embedded broker of --dev). */
  readonly brokerUrl?: string | null;
}

/**
 * Timers of the idle daemon (docs/daemon.md, "Idle cost": at idle, wake-ups
 * are most of its CPU). Every timer of 1 s or more is on the wake-up grid
 * (src/sched/grid.ts), so the provenance poll and the health sample, both
 * every 30 s by default, share their wake-ups. The status file is rewritten
 * after each health sample, when the broker connection comes or goes, and
 * every 5 s only while a configured broker is not connected (attempts,
 * refusals and the queue change then).
 */
const STATUS_UNCONNECTED_MS = 5_000;
const PROVENANCE_POLL_MAX_S = 30;
/** A full provenance poll at least this often even when the install state's key is unchanged. */
const PROVENANCE_FULL_POLL_MS = 600_000;

export class Daemon {
  private readonly o: DaemonOptions;
  private readonly now: () => Date;
  private readonly abort = new AbortController();
  readonly commands = new CommandRegistry();
  private deviceId = '';
  private telemetry: TelemetryService | null = null;
  private health: HealthService | null = null;
  private self: SelfMonitor | null = null;
  private queue: DiskQueue | null = null;
  private provenance: ProvenanceSource | null = null;
  private journal: JournalEventSource | null = null;
  private spool: SpoolReader | null = null;
  private notifier: SystemdNotifier | null = null;
  private plugins: DaemonService[] = [];
  private pollTimer: GridTimer | null = null;
  private statusTimer: GridTimer | null = null;
  private startedAt = '';
  private polling: Promise<void> | null = null;
  private lastStateKey: string | null = null;
  private lastFullPollAt = 0;
  private lastStatusJson = '';
  private statusWrite: Promise<void> = Promise.resolve();
  private stopped = false;

  constructor(o: DaemonOptions) {
    this.o = o;
    this.now = o.now ?? (() => new Date());
  }

  get id(): string {
    return this.deviceId;
  }

  async start(): Promise<void> {
    const { config, log } = this.o;
    this.startedAt = this.now().toISOString();
    this.deviceId = await resolveDeviceId(config);
    const signal = this.abort.signal;

    const queueDir = config.queue.dir ?? join(config.stateDir, 'queue');
    this.queue = new DiskQueue({ dir: queueDir, maxBytes: config.queue.maxBytes, log: log.child({ module: 'queue' }), now: this.now });
    await this.queue.open();

    this.self = new SelfMonitor(config.health.eventLoopResolutionMs);
    this.self.start();
    const collector = new HealthCollector({
      deviceId: this.deviceId,
      recordingPaths: config.health.recordingPaths,
      interfaces: config.health.interfaces,
      smart: config.health.smart,
      smartIntervalSeconds: config.health.smartIntervalSeconds,
      daemon: () => {
        const s = this.self!.sample();
        const q = this.queue!.stats();
        return { ...s, queue: { depth: q.depth, bytes: q.bytes, maxBytes: q.maxBytes, droppedEvents: q.drops.droppedEvents, droppedHealth: q.drops.droppedHealth } };
      },
      log: log.child({ module: 'health' }),
      now: this.now,
    });
    const bootId = await collector.readBootId();

    const m = config.mqtt;
    const url = this.o.brokerUrl !== undefined ? this.o.brokerUrl : m.url;
    const password = m.passwordFile !== null ? await readPassword(m.passwordFile) : m.password;
    this.telemetry = new TelemetryService({
      deviceId: this.deviceId,
      hardware: config.hardware,
      daemonVersion: this.o.version,
      bootId,
      session:
        url === null
          ? null
          : {
              url,
              ca: m.ca,
              cert: m.cert,
              key: m.key,
              username: m.username,
              password,
              protocol: m.protocolVersion,
              keepaliveSeconds: m.keepaliveSeconds,
              connectTimeoutSeconds: m.connectTimeoutSeconds,
              reconnectMinSeconds: m.reconnectMinSeconds,
              reconnectMaxSeconds: m.reconnectMaxSeconds,
              maxPacketBytes: m.maxPacketBytes,
            },
      inflightWindow: m.inflightWindow,
      maxCommandBytes: m.maxCommandBytes,
      commandsPerMinute: m.commandsPerMinute,
      queue: this.queue,
      commands: this.commands,
      log,
      now: this.now,
      onConnectionChange: () => {
        void this.writeStatus(false);
        this.armStatusTimer();
      },
    });

    this.provenance = this.o.provenance ?? new InstallStateProvenance(config.stateDir);
    this.journal = new JournalEventSource(config.stateDir, queueDir, this.deviceId, (t, d, id) => this.publishEvent(t, d, id), log.child({ module: 'journal-events' }));
    await this.pollProvenance();

    this.health = new HealthService({
      intervalSeconds: config.health.intervalSeconds,
      collector,
      publish: async (s) => {
        const queued = await this.telemetry!.publishHealth(s);
        void this.writeStatus(false); // its last health sample
        return queued;
      },
      log: log.child({ module: 'health' }),
    });
    this.commands.register('health', () => this.health!.sampleNow());
    this.commands.register('provenance', async () => this.refreshProvenance(true));

    // The plugged-in services (egress observer: nftables table + reader, local API) start BEFORE
    // telemetry connects, so the daemon's own first broker connection falls inside its own
    // observation window. What they publish before then (egress.alert) is queued on disk:
    // TelemetryService.publishEvent appends to the queue and only sends once connected.
    if (this.o.plugins !== false) {
      const ctx = this.context();
      for (const entry of serviceModules) {
        if (!entry.enabled(config)) {
          log.debug({ service: entry.name }, 'service not enabled: not loaded');
          continue;
        }
        const svc = await (await entry.load()).createService(ctx);
        if (svc === null) continue;
        await svc.start(signal);
        this.plugins.push(svc);
        log.info({ service: svc.name }, 'service started');
      }
    }

    this.telemetry.start(signal);
    this.health.start(signal);
    this.spool = new SpoolReader(config.stateDir, (type, data, id) => this.telemetry!.publishEvent(type as EventType, data as never, id), log.child({ module: 'spool' }));
    await this.spool.start();
    // At the default 30 s health interval this lands on the health sample's grid points: one wake-up for both.
    this.pollTimer = grid.interval(Math.min(PROVENANCE_POLL_MAX_S, config.health.intervalSeconds) * 1000, () => void this.pollProvenance());

    await this.publishEvent('daemon.started', { version: this.o.version, bootId, queuedAtStart: this.queue.stats().depth });
    await this.writeStatus(true);
    this.armStatusTimer();

    this.notifier = new SystemdNotifier({ env: this.o.env, log: log.child({ module: 'systemd' }) });
    await this.notifier.ready(`device ${this.deviceId}; broker ${url ?? 'none'}`);
    log.info({ deviceId: this.deviceId, broker: url, stateDir: config.stateDir, queueDir }, 'daemon started');
    const missing = missingNodeOptions(process.execArgv, this.o.env['NODE_OPTIONS']);
    if (missing.length > 0) {
      log.warn({ missing, expected: DAEMON_NODE_OPTIONS }, 'started without the Node options the service unit and the image use (NODE_OPTIONS): idle RSS will be about 10 MiB higher');
    }
  }

  context(): DaemonContext {
    return {
      config: this.o.config,
      deviceId: this.deviceId,
      log: this.o.log,
      commands: this.commands,
      publishEvent: (type, data, id) => this.publishEvent(type, data, id),
      provenance: this.provenance!,
      status: () => this.status(),
      lastHealth: () => this.lastHealth(),
      now: this.now,
    };
  }

  publishEvent<T extends EventType>(type: T, data: EventTypes[T], id?: string): Promise<{ id: string; seq: number }> {
    if (this.telemetry === null) return Promise.reject(new Error('daemon not started'));
    return this.telemetry.publishEvent(type, data, id);
  }

  lastHealth(): HealthPayload | null {
    return this.health?.lastSample() ?? null;
  }

  private async refreshProvenance(force: boolean): Promise<ProvenancePayload> {
    const snap = await this.provenance!.read();
    return this.telemetry!.setProvenance(snap, force);
  }

  /**
   * Provenance republished on change; new journal entries become events.
   * With the install state dir as source, the files are read and parsed
   * only when installStateKey changed, or at least every 10 min.
   */
  private pollProvenance(): Promise<void> {
    if (this.polling) return this.polling;
    let key: string | null = null;
    if (this.o.provenance === undefined) {
      try {
        key = installStateKey(this.o.config.stateDir);
      } catch (err) {
        this.o.log.warn({ err }, 'install state not readable: polling it in full');
      }
      const nowMs = this.now().getTime();
      if (key !== null && key === this.lastStateKey && nowMs - this.lastFullPollAt < PROVENANCE_FULL_POLL_MS) return Promise.resolve();
      this.lastFullPollAt = nowMs;
    }
    this.polling = (async () => {
      try {
        if (this.telemetry) await this.refreshProvenance(false);
        const p = this.provenance;
        const state = p instanceof InstallStateProvenance ? await p.state() : null;
        await this.journal?.poll(state);
        this.lastStateKey = key;
      } catch (err) {
        this.o.log.error({ err }, 'provenance poll failed');
      } finally {
        this.polling = null;
      }
    })();
    return this.polling;
  }

  status(): DaemonStatus {
    return {
      schema: 'glassbox.daemon-status/v1',
      pid: process.pid,
      running: !this.stopped,
      deviceId: this.deviceId,
      version: this.o.version,
      startedAt: this.startedAt,
      updatedAt: this.now().toISOString(),
      telemetry: this.telemetry!.telemetryStatus(),
      lastHealthAt: this.health?.lastSample()?.at ?? null,
      installedVersion: null,
      api: this.o.config.api.listen,
    };
  }

  /** Rewrites daemon-status.json when its content changed (or `force`); writes are serialised. */
  private writeStatus(force: boolean): Promise<void> {
    this.statusWrite = this.statusWrite.then(async () => {
      if (this.telemetry === null) return;
      const s = this.status();
      const key = JSON.stringify({ ...s, updatedAt: null, telemetry: { ...s.telemetry, lastPublishAt: null, published: null } });
      if (!force && key === this.lastStatusJson) return;
      this.lastStatusJson = key;
      await writeDaemonStatus(this.o.config.stateDir, s).catch((err: unknown) => this.o.log.warn({ err }, 'daemon-status.json not written'));
    });
    return this.statusWrite;
  }

  /** The 5 s status timer runs only while a configured broker is not connected. */
  private armStatusTimer(): void {
    const t = this.telemetry;
    if (this.stopped || this.statusTimer !== null || t === null || !t.hasSession() || t.isConnected()) return;
    this.statusTimer = grid.timeout(
      STATUS_UNCONNECTED_MS,
      () => {
        this.statusTimer = null;
        void this.writeStatus(false).then(() => this.armStatusTimer());
      },
      { unref: true },
    );
  }

  /**
   * Stops everything in reverse order: telemetry publishes its final `offline` status and
   * disconnects first, then the plugged-in services stop, so the daemon's own broker traffic
   * stays inside the egress observation window to the end.
   */
  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    const log = this.o.log;
    await this.notifier?.stopping();
    this.pollTimer?.cancel();
    this.statusTimer?.cancel();
    this.statusTimer = null;
    this.health?.stop();
    await this.spool?.stop();
    await this.polling;
    await this.telemetry?.stop();
    for (const svc of [...this.plugins].reverse()) {
      try {
        await svc.stop();
      } catch (err) {
        log.error({ err, service: svc.name }, 'service stop failed');
      }
    }
    // An alert raised while the services stopped is queued for the next start: wait for its write.
    await this.queue?.flush();
    this.abort.abort();
    this.self?.stop();
    await this.writeStatus(true);
    log.info({ queued: this.queue?.stats().depth ?? 0 }, 'daemon stopped');
  }
}

async function readPassword(path: string): Promise<string> {
  const { readFile } = await import('node:fs/promises');
  const text = await readFile(path, 'utf8');
  if (text.length > 1024) throw new Error(`${path}: password file over 1024 bytes`);
  return text.replace(/\r?\n$/, '');
}
