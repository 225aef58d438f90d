/**
 * One MQTT session to the broker, reconnected by us (mqtt.js runs with
 * reconnectPeriod 0, one client per attempt) so that the delay is capped and
 * jittered, the protocol can fall back from MQTT 5 to 3.1.1, TLS files are
 * re-read on every attempt (a renewed certificate is picked up), and a
 * refusal is recorded for `status`.
 *
 * Every attempt carries the retained `offline` last will; the caller's
 * 'connected' handler publishes `online`. stop() publishes a final document
 * (retained `offline`, reason shutdown) and disconnects cleanly, so the
 * broker discards the will.
 */
import { EventEmitter } from 'node:events';
import { open } from 'node:fs/promises';
import mqtt, { type IClientOptions, type IClientPublishOptions, type IPublishPacket, type MqttClient } from 'mqtt';
import { GlassboxError } from '../errors.js';
import type { Logger } from '../log/logger.js';
import { reconnectDelayMs, STABLE_CONNECTION_MS } from './backoff.js';
import { gridIntervalTimer } from '../sched/grid.js';

export interface SessionOptions {
  readonly url: string;
  readonly clientId: string;
  readonly ca: string | null;
  readonly cert: string | null;
  readonly key: string | null;
  readonly username: string | null;
  readonly password: string | null;
  readonly protocol: 'auto' | 5 | 4;
  readonly keepaliveSeconds: number;
  readonly connectTimeoutSeconds: number;
  readonly reconnectMinSeconds: number;
  readonly reconnectMaxSeconds: number;
  readonly maxPacketBytes: number;
  /** The last will of the next attempt. */
  readonly will: () => { topic: string; payload: Buffer };
  readonly log: Logger;
  readonly random: () => number;
  readonly now: () => Date;
}

export interface SessionError {
  readonly at: string;
  /** CONNACK reason code (number) or a socket/TLS error code (string). */
  readonly code: number | string | null;
  readonly message: string;
  /** true when the broker answered and refused us (CONNACK reason code ≥ 0x80, or 1–5 in 3.1.1). */
  readonly refused: boolean;
}

export interface SessionState {
  readonly state: 'stopped' | 'connecting' | 'connected' | 'waiting';
  readonly url: string;
  readonly protocolVersion: 5 | 4 | null;
  readonly connectedSince: string | null;
  readonly failedAttempts: number;
  readonly nextAttemptAt: string | null;
  readonly lastError: SessionError | null;
}

export interface PublishOptions {
  readonly qos: 0 | 1;
  readonly retain?: boolean;
  readonly properties?: IClientPublishOptions['properties'];
}

type Events = {
  connected: [info: { protocolVersion: 5 | 4 }];
  disconnected: [];
  message: [topic: string, payload: Buffer, packet: IPublishPacket];
};

const PEM_MAX_BYTES = 64 * 1024;

async function readPem(path: string): Promise<Buffer> {
  const fh = await open(path, 'r');
  try {
    const st = await fh.stat();
    if (st.size > PEM_MAX_BYTES) throw new GlassboxError('TLS_FILE_INVALID', `${path} is ${st.size} bytes, over the ${PEM_MAX_BYTES}-byte limit for a PEM file`);
    return await fh.readFile();
  } finally {
    await fh.close();
  }
}

function codeOf(err: unknown): number | string | null {
  const c = (err as { code?: unknown }).code;
  return typeof c === 'number' || typeof c === 'string' ? c : null;
}

export class MqttSession extends EventEmitter<Events> {
  private readonly opts: SessionOptions;
  private client: MqttClient | null = null;
  private generation = 0;
  private running = false;
  private connected = false;
  private connectedAt: number | null = null;
  private version: 5 | 4 | null = null;
  private useV4 = false;
  private failed = 0;
  private timer: NodeJS.Timeout | null = null;
  private nextAt: number | null = null;
  private lastError: SessionError | null = null;

  constructor(opts: SessionOptions) {
    super();
    this.opts = opts;
  }

  start(): void {
    if (this.running) return;
    this.running = true;
    this.useV4 = this.opts.protocol === 4;
    void this.attempt();
  }

  state(): SessionState {
    return {
      state: !this.running ? 'stopped' : this.connected ? 'connected' : this.timer !== null ? 'waiting' : 'connecting',
      url: this.opts.url,
      protocolVersion: this.connected ? this.version : null,
      connectedSince: this.connectedAt === null ? null : new Date(this.connectedAt).toISOString(),
      failedAttempts: this.failed,
      nextAttemptAt: this.nextAt === null ? null : new Date(this.nextAt).toISOString(),
      lastError: this.lastError,
    };
  }

  isConnected(): boolean {
    return this.connected;
  }

  /** Resolves on PUBACK (QoS 1) or once written (QoS 0). Rejects when offline or the broker refuses. */
  publish(topic: string, payload: Buffer, o: PublishOptions): Promise<void> {
    const client = this.client;
    if (!this.connected || client === null) return Promise.reject(new GlassboxError('MQTT_OFFLINE', 'not connected to the broker'));
    const po: IClientPublishOptions = { qos: o.qos, retain: o.retain ?? false };
    if (o.properties && this.version === 5) po.properties = o.properties;
    return new Promise((resolve, reject) => {
      client.publish(topic, payload, po, (err) => (err ? reject(err) : resolve()));
    });
  }

  subscribe(filter: string, qos: 0 | 1): Promise<void> {
    const client = this.client;
    if (!this.connected || client === null) return Promise.reject(new GlassboxError('MQTT_OFFLINE', 'not connected to the broker'));
    return new Promise((resolve, reject) => {
      client.subscribe(filter, { qos }, (err, granted) => {
        if (err) return reject(err);
        const g = granted?.[0];
        if (g && g.qos >= 0x80) return reject(new GlassboxError('MQTT_SUBSCRIBE_REFUSED', `broker refused subscription to ${filter} (reason code ${g.qos})`));
        resolve();
      });
    });
  }

  /**
   * Ends the session: publishes `final` (retained, QoS 1) when connected,
   * waiting at most `timeoutMs` for its PUBACK, then disconnects cleanly.
   */
  async stop(final?: { topic: string; payload: Buffer }, timeoutMs = 2000): Promise<void> {
    this.running = false;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    this.nextAt = null;
    const client = this.client;
    if (client === null) return;
    const wasConnected = this.connected;
    if (wasConnected && final) {
      await Promise.race([
        this.publish(final.topic, final.payload, { qos: 1, retain: true }).catch((err: unknown) => this.opts.log.warn({ err }, 'final status not acknowledged')),
        new Promise((r) => setTimeout(r, timeoutMs).unref()),
      ]);
    }
    this.generation++;
    this.client = null;
    this.connected = false;
    await new Promise<void>((resolve) => {
      const t = setTimeout(() => {
        client.end(true);
        resolve();
      }, Math.max(200, timeoutMs / 2));
      t.unref();
      client.end(!wasConnected, {}, () => {
        clearTimeout(t);
        resolve();
      });
    });
    if (wasConnected) this.emit('disconnected');
  }

  private async attempt(): Promise<void> {
    this.timer = null;
    this.nextAt = null;
    if (!this.running) return;
    const gen = ++this.generation;
    const version: 5 | 4 = this.useV4 ? 4 : 5;
    const o = this.opts;
    let tls: { ca?: Buffer; cert?: Buffer; key?: Buffer } = {};
    try {
      tls = {
        ...(o.ca ? { ca: await readPem(o.ca) } : {}),
        ...(o.cert ? { cert: await readPem(o.cert) } : {}),
        ...(o.key ? { key: await readPem(o.key) } : {}),
      };
    } catch (err) {
      this.fail(gen, { at: o.now().toISOString(), code: codeOf(err), message: `cannot read TLS material: ${(err as Error).message}`, refused: false });
      return;
    }
    if (gen !== this.generation || !this.running) return;
    const will = o.will();
    const options: IClientOptions = {
      protocolVersion: version,
      clientId: o.clientId,
      clean: true,
      keepalive: o.keepaliveSeconds,
      connectTimeout: o.connectTimeoutSeconds * 1000,
      reconnectPeriod: 0,
      resubscribe: false,
      queueQoSZero: false,
      rejectUnauthorized: true,
      // mqtt-packet would otherwise pre-build 65,536 two-byte Buffers (one per
      // packet id / length) and keep them for the process's life: ≈7 MiB of
      // heap, measured (docs/daemon.md, Footprint). Without the cache it makes
      // the 2-byte field when it writes one.
      writeCache: false,
      // mqtt.js ticks its keepalive every keepalive/2 (15 s at the default 30 s) and starts over
      // after each packet it sends: on the wake-up grid those ticks share the daemon's 15 s and
      // 30 s points instead of waking it a few ms after each health publish (src/sched/grid.ts).
      timerVariant: gridIntervalTimer as unknown as NonNullable<IClientOptions['timerVariant']>,
      will: { topic: will.topic, payload: will.payload, qos: 1, retain: true },
      ...tls,
      ...(o.username !== null ? { username: o.username } : {}),
      ...(o.password !== null ? { password: o.password } : {}),
      ...(version === 5 ? { properties: { maximumPacketSize: o.maxPacketBytes, sessionExpiryInterval: 0, requestProblemInformation: true } } : {}),
    };
    o.log.debug({ url: o.url, protocolVersion: version, attempt: this.failed + 1 }, 'connecting to broker');
    const client = mqtt.connect(o.url, options);
    this.client = client;
    let closed = false;
    let refusal: SessionError | null = null;

    client.on('connect', () => {
      if (gen !== this.generation) return;
      this.connected = true;
      this.version = version;
      this.connectedAt = o.now().getTime();
      this.lastError = null;
      o.log.info({ url: o.url, protocolVersion: version === 5 ? '5' : '3.1.1' }, 'connected to broker');
      this.emit('connected', { protocolVersion: version });
    });
    client.on('message', (topic, payload, packet) => {
      if (gen === this.generation) this.emit('message', topic, payload, packet);
    });
    client.on('error', (err) => {
      if (gen !== this.generation) return;
      const code = codeOf(err);
      const isConnack = typeof code === 'number' && !this.connected;
      const e: SessionError = { at: o.now().toISOString(), code, message: err.message, refused: isConnack };
      refusal = e;
      if (isConnack && version === 5 && o.protocol === 'auto' && (code === 1 || code === 132)) {
        o.log.warn({ url: o.url, reasonCode: code }, 'broker does not speak MQTT 5: falling back to 3.1.1');
        this.useV4 = true;
        refusal = null;
        return;
      }
      if (isConnack) o.log.error({ url: o.url, reasonCode: code, reason: err.message }, 'broker refused the connection');
      else o.log.warn({ url: o.url, code, reason: err.message }, 'broker connection error');
    });
    client.on('close', () => {
      if (closed || gen !== this.generation) return;
      closed = true;
      const wasConnected = this.connected;
      const lastedMs = this.connectedAt === null ? 0 : o.now().getTime() - this.connectedAt;
      this.connected = false;
      this.connectedAt = null;
      client.end(true);
      if (wasConnected) {
        o.log.warn({ url: o.url, lastedMs }, 'broker connection lost');
        this.emit('disconnected');
        if (lastedMs >= STABLE_CONNECTION_MS) this.failed = 0;
      }
      const e = refusal ?? { at: o.now().toISOString(), code: null, message: wasConnected ? 'connection closed' : 'connection closed before the broker accepted it', refused: false };
      // A TLS peer that rejects our certificate just closes: no 'error' event, so say it here.
      if (refusal === null && !wasConnected && !(this.useV4 && version === 5)) o.log.warn({ url: o.url, reason: e.message }, 'broker connection attempt failed');
      if (this.useV4 && version === 5 && refusal === null && !wasConnected) {
        // Protocol fallback: try 3.1.1 at once.
        this.client = null;
        void this.attempt();
        return;
      }
      this.fail(gen, e);
    });
  }

  private fail(gen: number, e: SessionError): void {
    if (gen !== this.generation || !this.running) return;
    this.client = null;
    this.lastError = e;
    this.failed++;
    const delay = reconnectDelayMs(this.failed, this.opts.reconnectMinSeconds, this.opts.reconnectMaxSeconds, this.opts.random());
    this.nextAt = this.opts.now().getTime() + delay;
    this.opts.log.debug({ delayMs: delay, failedAttempts: this.failed }, 'reconnect scheduled');
    this.timer = setTimeout(() => void this.attempt(), delay);
  }
}
