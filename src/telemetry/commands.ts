/**
 * Read-only commands over MQTT: `<root>/cmd/<name>`.
 *
 * Request payload: empty, or a JSON object `{ "correlationId"?: string ≤ 128,
 * "args"?: object }`. MQTT 5: the reply goes to the request's response
 * topic with its correlation data; 3.1.1 (or no response topic): the reply
 * goes to `<root>/cmd/<name>/response` and carries `correlationId` back in
 * its `correlation` field. A response topic outside the device's own
 * subtree is not used (the broker ACL would refuse it): the reply goes to
 * the default topic with error RESPONSE_TOPIC_REFUSED.
 *
 * parseCommand is pure; CommandRouter adds the handlers, the size and rate
 * limits, and never lets a handler's failure escape.
 */
import type { Logger } from '../log/logger.js';
import { untrustedSnippet } from '../log/logger.js';
import { cmdResponse, encode, type CmdResponsePayload } from './payloads.js';
import { COMMAND_NAME_PATTERN, commandNameOf, defaultResponseTopic, isOwnTopic } from './topics.js';

export type CommandErrorCode =
  | 'UNKNOWN_COMMAND'
  | 'BAD_REQUEST'
  | 'PAYLOAD_TOO_LARGE'
  | 'RESPONSE_TOPIC_REFUSED'
  | 'COMMAND_FAILED'
  | 'COMMAND_TIMEOUT';

export interface CommandRequest {
  readonly name: string;
  readonly args: Record<string, unknown>;
  /** base64 of MQTT 5 correlation data, or the 3.1.1 correlationId; null when none. */
  readonly correlation: string | null;
  readonly correlationData: Buffer | null;
  readonly responseTopic: string;
}

export type ParsedCommand =
  | { readonly kind: 'request'; readonly request: CommandRequest }
  | { readonly kind: 'error'; readonly name: string; readonly code: CommandErrorCode; readonly message: string; readonly correlation: string | null; readonly correlationData: Buffer | null; readonly responseTopic: string }
  | { readonly kind: 'ignore'; readonly reason: string };

export interface CommandMeta {
  readonly responseTopic?: string | undefined;
  readonly correlationData?: Buffer | undefined;
}

/** Judges one incoming message on a command topic. Pure. */
export function parseCommand(deviceId: string, topic: string, payload: Buffer, meta: CommandMeta, maxBytes: number): ParsedCommand {
  const name = commandNameOf(deviceId, topic);
  if (name === null) return { kind: 'ignore', reason: `not a command topic: ${topic}` };
  const correlationData = meta.correlationData && meta.correlationData.length <= 256 ? meta.correlationData : null;
  let correlation: string | null = correlationData ? correlationData.toString('base64') : null;
  const fallback = COMMAND_NAME_PATTERN.test(name) ? defaultResponseTopic(deviceId, name) : null;
  if (fallback === null) return { kind: 'ignore', reason: `malformed command name ${JSON.stringify(untrustedSnippet(name, 40))}` };
  const err = (code: CommandErrorCode, message: string, responseTopic = fallback): ParsedCommand => ({ kind: 'error', name, code, message, correlation, correlationData, responseTopic });

  let responseTopic = fallback;
  if (meta.responseTopic !== undefined) {
    if (!isOwnTopic(deviceId, meta.responseTopic)) {
      return err('RESPONSE_TOPIC_REFUSED', `response topic must lie under glassbox/v1/${deviceId}/ (the device may publish nowhere else)`);
    }
    if (commandNameOf(deviceId, meta.responseTopic) !== null) {
      // A reply there would itself be read as a command: a loop.
      return err('RESPONSE_TOPIC_REFUSED', 'response topic must not be a command topic');
    }
    responseTopic = meta.responseTopic;
  }
  if (payload.length > maxBytes) return err('PAYLOAD_TOO_LARGE', `request is ${payload.length} bytes; the limit is ${maxBytes}`, responseTopic);

  let args: Record<string, unknown> = {};
  if (payload.length > 0) {
    let value: unknown;
    try {
      value = JSON.parse(payload.toString('utf8'));
    } catch {
      return err('BAD_REQUEST', 'request payload is not JSON (send an empty payload or a JSON object)', responseTopic);
    }
    if (typeof value !== 'object' || value === null || Array.isArray(value)) return err('BAD_REQUEST', 'request payload must be a JSON object', responseTopic);
    const obj = value as Record<string, unknown>;
    for (const k of Object.keys(obj)) {
      if (k !== 'correlationId' && k !== 'args') return err('BAD_REQUEST', `unknown request field ${JSON.stringify(untrustedSnippet(k, 40))} (allowed: correlationId, args)`, responseTopic);
    }
    if (obj['correlationId'] !== undefined) {
      const c = obj['correlationId'];
      if (typeof c !== 'string' || c.length === 0 || c.length > 128) return err('BAD_REQUEST', 'correlationId must be a string of 1 to 128 characters', responseTopic);
      if (correlation === null) correlation = c;
    }
    if (obj['args'] !== undefined) {
      const a = obj['args'];
      if (typeof a !== 'object' || a === null || Array.isArray(a)) return err('BAD_REQUEST', 'args must be a JSON object', responseTopic);
      args = a as Record<string, unknown>;
    }
  }
  return { kind: 'request', request: { name, args, correlation, correlationData, responseTopic } };
}

export type CommandHandler = (args: Record<string, unknown>, signal: AbortSignal) => Promise<unknown>;

/** Token bucket, pure given the times passed in. */
export class RateLimiter {
  private tokens: number;
  private last: number;
  constructor(
    private readonly perMinute: number,
    private readonly burst: number,
    now: number,
  ) {
    this.tokens = burst;
    this.last = now;
  }
  take(now: number): boolean {
    this.tokens = Math.min(this.burst, this.tokens + ((now - this.last) / 60_000) * this.perMinute);
    this.last = now;
    if (this.tokens < 1) return false;
    this.tokens -= 1;
    return true;
  }
}

export interface Responder {
  (topic: string, payload: Buffer, correlationData: Buffer | null): Promise<void>;
}

export interface CommandRouterOptions {
  readonly deviceId: string;
  readonly maxBytes: number;
  readonly perMinute: number;
  readonly timeoutMs: number;
  readonly log: Logger;
  readonly now: () => Date;
}

/** Holds the command handlers; services add theirs with register(). */
export class CommandRegistry {
  private readonly handlers = new Map<string, CommandHandler>();
  register(name: string, handler: CommandHandler): void {
    if (!COMMAND_NAME_PATTERN.test(name)) throw new Error(`bad command name ${name}`);
    if (this.handlers.has(name)) throw new Error(`command ${name} registered twice`);
    this.handlers.set(name, handler);
  }
  get(name: string): CommandHandler | undefined {
    return this.handlers.get(name);
  }
  names(): string[] {
    return [...this.handlers.keys()].sort();
  }
}

export class CommandRouter {
  private readonly opts: CommandRouterOptions;
  private readonly registry: CommandRegistry;
  private readonly limiter: RateLimiter;
  private droppedSinceLog = 0;
  private lastDropLog = 0;
  private running = 0;

  constructor(opts: CommandRouterOptions, registry: CommandRegistry) {
    this.opts = opts;
    this.registry = registry;
    this.limiter = new RateLimiter(opts.perMinute, Math.max(5, Math.ceil(opts.perMinute / 6)), opts.now().getTime());
  }

  /** Handles one incoming command message; never throws. Returns the response sent, or null. */
  async handle(topic: string, payload: Buffer, meta: CommandMeta, respond: Responder): Promise<CmdResponsePayload | null> {
    const { log, deviceId } = this.opts;
    try {
      const now = this.opts.now();
      if (!this.limiter.take(now.getTime()) || this.running >= 4) {
        this.droppedSinceLog++;
        if (now.getTime() - this.lastDropLog > 10_000) {
          log.warn({ dropped: this.droppedSinceLog }, 'command rate limit exceeded: requests dropped');
          this.droppedSinceLog = 0;
          this.lastDropLog = now.getTime();
        }
        return null;
      }
      const parsed = parseCommand(deviceId, topic, payload, meta, this.opts.maxBytes);
      if (parsed.kind === 'ignore') {
        log.warn({ reason: parsed.reason, bytes: payload.length }, 'command message dropped');
        return null;
      }
      if (parsed.kind === 'error') {
        log.warn({ command: parsed.name, code: parsed.code, bytes: payload.length, untrusted: untrustedSnippet(payload, 80) }, 'command refused');
        const res = cmdResponse(deviceId, parsed.name, now, parsed.correlation, { ok: false, code: parsed.code, message: parsed.message });
        await respond(parsed.responseTopic, encode(res), parsed.correlationData);
        return res;
      }
      const req = parsed.request;
      const handler = this.registry.get(req.name);
      let res: CmdResponsePayload;
      if (handler === undefined) {
        log.warn({ command: req.name }, 'unknown command');
        res = cmdResponse(deviceId, req.name, now, req.correlation, { ok: false, code: 'UNKNOWN_COMMAND', message: `unknown command ${JSON.stringify(req.name)}; known: ${this.registry.names().join(', ')}` });
      } else {
        this.running++;
        const ac = new AbortController();
        const timer = setTimeout(() => ac.abort(), this.opts.timeoutMs);
        try {
          const result = await Promise.race([
            handler(req.args, ac.signal),
            new Promise<never>((_, reject) => ac.signal.addEventListener('abort', () => reject(Object.assign(new Error('timed out'), { code: 'COMMAND_TIMEOUT' })), { once: true })),
          ]);
          res = cmdResponse(deviceId, req.name, this.opts.now(), req.correlation, { ok: true, result });
          log.info({ command: req.name }, 'command answered');
        } catch (err) {
          const code = (err as { code?: unknown }).code === 'COMMAND_TIMEOUT' ? 'COMMAND_TIMEOUT' : 'COMMAND_FAILED';
          log.error({ command: req.name, err }, 'command failed');
          res = cmdResponse(deviceId, req.name, this.opts.now(), req.correlation, { ok: false, code, message: err instanceof Error ? err.message : String(err) });
        } finally {
          clearTimeout(timer);
          this.running--;
        }
      }
      await respond(req.responseTopic, encode(res), req.correlationData);
      return res;
    } catch (err) {
      log.error({ err }, 'command handling failed');
      return null;
    }
  }
}
