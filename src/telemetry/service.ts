/**
 * Telemetry: the MQTT session, the offline queue and what flows between
 * them. Events and health samples are appended to the durable queue first
 * and published from it in order (QoS 1, a bounded in-flight window),
 * deleted on PUBACK; on a lost connection everything in flight goes back
 * and is sent again from the oldest (at least once, order of first
 * delivery kept). Status and provenance are retained state, republished on
 * every connect. Commands are answered directly (never queued).
 */
import { randomUUID } from 'node:crypto';
import type { Logger } from '../log/logger.js';
import { GlassboxError } from '../errors.js';
import { CommandRegistry, CommandRouter } from './commands.js';
import { encode, eventPayload, provenancePayload, statusPayload, type HealthPayload, type ProvenancePayload, type ProvenanceSnapshot } from './payloads.js';
import type { DiskQueue, QueueEntry, QueueStats } from './queue.js';
import { MqttSession, type SessionOptions, type SessionState } from './session.js';
import { commandFilter, topicOf, type EventType, type EventTypes } from './topics.js';

export interface TelemetryOptions {
  readonly deviceId: string;
  readonly hardware: string | null;
  readonly daemonVersion: string;
  readonly bootId: string | null;
  /** null: no broker configured (everything waits in the queue). */
  readonly session: Omit<SessionOptions, 'will' | 'log' | 'now' | 'random' | 'clientId'> | null;
  readonly inflightWindow: number;
  readonly maxCommandBytes: number;
  readonly commandsPerMinute: number;
  readonly queue: DiskQueue;
  readonly commands: CommandRegistry;
  /** Root logger: children `telemetry`, `mqtt` and `commands` are made here. */
  readonly log: Logger;
  readonly now: () => Date;
  /** Called when the session connects or loses its connection (the daemon rewrites its status file). */
  readonly onConnectionChange?: () => void;
}

export interface TelemetryStatus {
  readonly broker: SessionState | null;
  readonly queue: QueueStats;
  readonly published: number;
  readonly lastPublishAt: string | null;
  readonly lastPublishError: string | null;
}

/** Reason codes after which a message can never be accepted: it is dropped and counted. */
const PERMANENT_PUBLISH_REFUSALS = new Set([0x95, 0x99, 0x90]);

export class TelemetryService {
  private readonly o: TelemetryOptions;
  private session: MqttSession | null = null;
  private router: CommandRouter | null = null;
  private generation = 0;
  private inflight = 0;
  private pausedUntil = 0;
  private pauseTimer: NodeJS.Timeout | null = null;
  private provenance: ProvenancePayload | null = null;
  private published = 0;
  private lastPublishAt: string | null = null;
  private lastPublishError: string | null = null;
  private stopping = false;
  private readonly log: Logger;
  private sendChain: Promise<void> = Promise.resolve();
  /** Generation whose connect setup (subscribe, status, provenance) is done: the queue drains only then. */
  private readyGeneration = -1;

  constructor(o: TelemetryOptions) {
    this.o = o;
    this.log = o.log.child({ module: 'telemetry' });
  }

  start(signal?: AbortSignal): void {
    const o = this.o;
    this.router = new CommandRouter(
      { deviceId: o.deviceId, maxBytes: o.maxCommandBytes, perMinute: o.commandsPerMinute, timeoutMs: 10_000, log: o.log.child({ module: 'commands' }), now: o.now },
      o.commands,
    );
    if (o.session === null) {
      this.log.warn('no MQTT broker configured: events and health samples wait in the offline queue');
      return;
    }
    const session = new MqttSession({
      ...o.session,
      clientId: `glassbox-${o.deviceId}`,
      will: () => ({ topic: topicOf(o.deviceId, 'status'), payload: encode(this.status('offline', 'connection-lost')) }),
      log: o.log.child({ module: 'mqtt' }),
      now: o.now,
      random: Math.random,
    });
    this.session = session;
    session.on('connected', () => {
      void this.onConnected();
      o.onConnectionChange?.();
    });
    session.on('disconnected', () => {
      this.onDisconnected();
      o.onConnectionChange?.();
    });
    session.on('message', (topic, payload, packet) => {
      const props = packet.properties;
      void this.router?.handle(topic, payload, { responseTopic: props?.responseTopic, correlationData: props?.correlationData }, (t, p, corr) =>
        session.publish(t, p, { qos: 0, properties: corr ? { correlationData: corr } : {} }),
      );
    });
    signal?.addEventListener('abort', () => void this.stop(), { once: true });
    session.start();
  }

  private status(state: 'online' | 'offline', reason: 'connected' | 'shutdown' | 'connection-lost') {
    const o = this.o;
    return statusPayload({ deviceId: o.deviceId, state, reason, at: o.now(), daemonVersion: o.daemonVersion, bootId: o.bootId, hardware: o.hardware });
  }

  private async onConnected(): Promise<void> {
    const s = this.session;
    if (s === null) return;
    const gen = ++this.generation;
    this.inflight = 0;
    this.o.queue.releaseAll();
    const log = this.log;
    try {
      await s.subscribe(commandFilter(this.o.deviceId), 0);
      await s.publish(topicOf(this.o.deviceId, 'status'), encode(this.status('online', 'connected')), { qos: 1, retain: true });
      if (this.provenance) await s.publish(topicOf(this.o.deviceId, 'provenance'), encode(this.provenance), { qos: 1, retain: true });
      const drops = this.o.queue.pendingDrops();
      if (drops) {
        const ev = eventPayload(this.o.deviceId, randomUUID(), 0, 'queue.dropped', { ...drops, since: drops.since ?? this.o.now().toISOString() }, this.o.now());
        await s.publish(topicOf(this.o.deviceId, 'events'), encode(ev), { qos: 1 });
        await this.o.queue.markReported(drops);
        log.warn({ drops }, 'reported offline-queue drops');
      }
    } catch (err) {
      if (gen === this.generation) log.warn({ err }, 'session setup after connect incomplete');
    }
    if (gen === this.generation) {
      this.readyGeneration = gen;
      this.pump();
    }
  }

  private onDisconnected(): void {
    this.generation++;
    this.inflight = 0;
    this.o.queue.releaseAll();
  }

  /** Sends queued messages while connected and the window allows. */
  private pump(): void {
    const s = this.session;
    if (s === null || !s.isConnected() || this.stopping || this.readyGeneration !== this.generation) return;
    const now = this.o.now().getTime();
    if (now < this.pausedUntil) return;
    const room = this.o.inflightWindow - this.inflight;
    if (room <= 0) return;
    const gen = this.generation;
    for (const entry of this.o.queue.take(room)) {
      this.inflight++;
      // Reads finish in any order; PUBLISH packets must leave in seq order.
      this.sendChain = this.sendChain.then(() => this.send(s, entry, gen));
    }
  }

  /** Reads one entry and issues its PUBLISH; the PUBACK is handled without holding up the next send. */
  private async send(s: MqttSession, e: QueueEntry, gen: number): Promise<void> {
    const rec = await this.o.queue.read(e).catch(() => null);
    if (gen !== this.generation) return;
    if (rec === null) {
      this.inflight--;
      this.pump();
      return;
    }
    void this.acknowledged(s, e, gen, s.publish(rec.topic, rec.body, { qos: 1 }));
  }

  private async acknowledged(s: MqttSession, e: QueueEntry, gen: number, puback: Promise<void>): Promise<void> {
    try {
      await puback;
      if (gen !== this.generation) return;
      await this.o.queue.remove(e);
      this.published++;
      this.lastPublishAt = this.o.now().toISOString();
      this.inflight--;
      this.pump();
    } catch (err) {
      if (gen !== this.generation) return;
      this.inflight--;
      const code = (err as { code?: unknown }).code;
      this.lastPublishError = `${typeof code === 'number' ? `reason code ${code}: ` : ''}${(err as Error).message}`;
      if (typeof code === 'number' && PERMANENT_PUBLISH_REFUSALS.has(code)) {
        this.log.error({ seq: e.seq, reasonCode: code }, 'broker refused a queued message for good: dropped and counted');
        await this.o.queue.drop(e);
        this.pump();
        return;
      }
      this.o.queue.release(e);
      if (s.isConnected()) {
        // Refused for now (not authorised, quota): retry the queue later, in order.
        this.log.warn({ seq: e.seq, err }, 'publish refused by the broker: pausing the queue for 30 s');
        this.o.queue.releaseAll();
        this.generation++;
        this.readyGeneration = this.generation;
        this.inflight = 0;
        this.pausedUntil = this.o.now().getTime() + 30_000;
        if (this.pauseTimer) clearTimeout(this.pauseTimer);
        this.pauseTimer = setTimeout(() => this.pump(), 30_000);
        this.pauseTimer.unref();
      }
    }
  }

  /**
   * Queues an event durably, then publishes it when the broker is reachable.
   * Resolves with the event's id and seq once it is on disk.
   */
  async publishEvent<T extends EventType>(type: T, data: EventTypes[T], id: string = randomUUID()): Promise<{ id: string; seq: number }> {
    const o = this.o;
    const at = o.now();
    const entry = await o.queue.append('event', topicOf(o.deviceId, 'events'), (seq) => encode(eventPayload(o.deviceId, id, seq, type, data, at)));
    if (entry === null) throw new GlassboxError('QUEUE_FULL', 'event could not be queued');
    this.pump();
    return { id, seq: entry.seq };
  }

  /** Queues a health sample (thinned first when the queue runs short of room). */
  async publishHealth(sample: HealthPayload): Promise<boolean> {
    const entry = await this.o.queue.append('health', topicOf(this.o.deviceId, 'health'), () => encode(sample));
    this.pump();
    return entry !== null;
  }

  /** Sets the retained provenance document; republished when it changed or when forced. */
  async setProvenance(snapshot: ProvenanceSnapshot, force = false): Promise<ProvenancePayload> {
    const changed = this.provenance === null || JSON.stringify({ ...this.provenance, at: null }) !== JSON.stringify({ ...provenancePayload(this.o.deviceId, snapshot, this.o.now()), at: null });
    if (changed || force || this.provenance === null) this.provenance = provenancePayload(this.o.deviceId, snapshot, this.o.now());
    const s = this.session;
    if ((changed || force) && s?.isConnected()) {
      await s.publish(topicOf(this.o.deviceId, 'provenance'), encode(this.provenance), { qos: 1, retain: true }).catch((err: unknown) => this.log.warn({ err }, 'provenance publish failed'));
      this.log.info({ version: this.provenance.installed?.version ?? null }, 'provenance published');
    }
    return this.provenance;
  }

  telemetryStatus(): TelemetryStatus {
    return { broker: this.session?.state() ?? null, queue: this.o.queue.stats(), published: this.published, lastPublishAt: this.lastPublishAt, lastPublishError: this.lastPublishError };
  }

  isConnected(): boolean {
    return this.session?.isConnected() ?? false;
  }

  /** true when a broker is configured (a session exists, connected or not). */
  hasSession(): boolean {
    return this.session !== null;
  }

  /** Publishes the final retained `offline`, disconnects, waits for queue writes. */
  async stop(): Promise<void> {
    if (this.stopping) return;
    this.stopping = true;
    if (this.pauseTimer) clearTimeout(this.pauseTimer);
    this.generation++;
    await this.session?.stop({ topic: topicOf(this.o.deviceId, 'status'), payload: encode(this.status('offline', 'shutdown')) });
    this.o.queue.releaseAll();
    await this.o.queue.flush();
  }
}
