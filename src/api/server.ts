/**
 * The local HTTP API (node:http): loopback TCP and a Unix socket by default,
 * never a wildcard address unless the configuration says so. GET only,
 * bounded headers, timeouts, a connection cap and a per-client rate limit.
 * Routes are registered by path, so other modules (the technician status
 * page) add theirs with addRoute().
 *
 *   const api = new ApiServer({ tcp: '127.0.0.1:8780', socketPath: '/run/glassbox/api.sock', routes });
 *   await api.start(signal);
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { chmod, lstat, unlink } from 'node:fs/promises';
import { isIP, type Socket } from 'node:net';
import { GlassboxError } from '../errors.js';
import { RateLimiter, type RateLimitOptions } from './rate-limit.js';

export interface ApiRequest {
  readonly url: URL;
  readonly method: string;
  /** Client key used for rate limiting: remote address, or "unix" for the socket. */
  readonly client: string;
  readonly headers: IncomingMessage['headers'];
}

export interface ApiResponse {
  readonly status: number;
  readonly headers?: Readonly<Record<string, string>>;
  /** Buffers and strings go out as they are; anything else as JSON. */
  readonly body: Buffer | string | object;
}

export interface Route {
  readonly path: string;
  handle(req: ApiRequest): Promise<ApiResponse>;
}

export interface ApiServerOptions {
  /** "host:port" ("[::1]:8780" for IPv6), or null for none. */
  readonly tcp: string | null;
  readonly socketPath: string | null;
  /** Allow 0.0.0.0 / :: (a deliberate configuration choice, off by default). */
  readonly allowWildcard?: boolean;
  readonly routes?: readonly Route[];
  readonly rateLimit?: RateLimitOptions;
  readonly maxHeaderBytes?: number;
  readonly headersTimeoutMs?: number;
  readonly requestTimeoutMs?: number;
  readonly maxConnections?: number;
  readonly now?: () => number;
}

const NODE_CHECK_MS = 86_400_000;

export class ApiError extends GlassboxError {
  constructor(message: string, options: { cause?: unknown } = {}) {
    super('API_LISTEN', message, { ...options, exitCode: 2 });
  }
}

export function parseListen(spec: string, allowWildcard: boolean): { host: string; port: number } {
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([^:[\]]+)):(\d{1,5})$/.exec(spec);
  if (!m) throw new ApiError(`API listen address ${JSON.stringify(spec)} is not host:port`);
  const host = (m[1] ?? m[2]) as string;
  const port = Number(m[3]);
  if (port > 65535) throw new ApiError(`API port ${port} is out of range`);
  if (host !== 'localhost' && isIP(host) === 0) throw new ApiError(`API host ${JSON.stringify(host)} is not an IP address (or localhost)`);
  const wildcard = host === '0.0.0.0' || /^[0:]+$/.test(host);
  if (wildcard && !allowWildcard) throw new ApiError(`API listen address ${spec} is a wildcard address; set allowWildcard to serve beyond this host`);
  return { host, port };
}

export class ApiServer {
  private readonly routes = new Map<string, Route>();
  private servers: Server[] = [];
  private readonly limiter: RateLimiter;
  private readonly now: () => number;
  rejectedRateLimited = 0;
  /** Connections cut for headers or a request not complete in time. */
  timedOut = 0;

  constructor(private readonly opts: ApiServerOptions) {
    for (const r of opts.routes ?? []) this.routes.set(r.path, r);
    this.limiter = new RateLimiter(opts.rateLimit ?? { perMinute: 120, burst: 20 });
    this.now = opts.now ?? Date.now;
  }

  addRoute(route: Route): void {
    this.routes.set(route.path, route);
  }

  /** The TCP address actually bound (port 0 → the chosen port), or null. */
  get tcpAddress(): { host: string; port: number } | null {
    for (const s of this.servers) {
      const a = s.address();
      if (a && typeof a === 'object') return { host: a.address, port: a.port };
    }
    return null;
  }

  async start(signal?: AbortSignal): Promise<void> {
    if (this.opts.tcp !== null) {
      const { host, port } = parseListen(this.opts.tcp, this.opts.allowWildcard ?? false);
      await this.listen((s) => s.listen(port, host));
    }
    if (this.opts.socketPath !== null) {
      const path = this.opts.socketPath;
      const st = await lstat(path).catch(() => null);
      if (st !== null) {
        if (!st.isSocket()) throw new ApiError(`${path} exists and is not a socket`);
        await unlink(path);
      }
      await this.listen((s) => s.listen(path));
      await chmod(path, 0o660);
    }
    signal?.addEventListener('abort', () => void this.stop(), { once: true });
  }

  /**
   * Slow clients are cut by deadlines of our own, armed per connection: the
   * headers of each request within headersTimeoutMs of the connection (or of
   * the previous response), the whole request within requestTimeoutMs.
   * Node's own enforcement of headersTimeout/requestTimeout is a timer every
   * `connectionsCheckingInterval` (30 s) per server that runs with or
   * without connections; two servers made an idle daemon wake 4 times a
   * minute for nothing (docs/daemon.md, "Idle cost"). It is pushed out of
   * the way; these timers exist only while a connection does.
   */
  private listen(bind: (s: Server) => void): Promise<void> {
    const headersMs = this.opts.headersTimeoutMs ?? 5000;
    const requestMs = this.opts.requestTimeoutMs ?? 15_000;
    const s = createServer(
      {
        maxHeaderSize: this.opts.maxHeaderBytes ?? 8192,
        // Node's checks, kept as a backstop but only once a day (must be ≤ requestTimeout to be
        // accepted, so both are set to the day and the real limits are the deadlines below).
        headersTimeout: NODE_CHECK_MS,
        requestTimeout: NODE_CHECK_MS,
        connectionsCheckingInterval: NODE_CHECK_MS,
      },
      (req, res) => void this.handle(req, res),
    );
    s.maxConnections = this.opts.maxConnections ?? 64;
    s.keepAliveTimeout = 5000;
    const deadlines = new WeakMap<Socket, (ms: number) => void>();
    s.on('connection', (socket: Socket) => {
      let deadline: NodeJS.Timeout | null = null;
      deadlines.set(socket, (ms) => {
        if (deadline !== null) clearTimeout(deadline);
        deadline = setTimeout(() => {
          this.timedOut++;
          socket.destroy();
        }, ms);
        deadline.unref();
      });
      deadlines.get(socket)?.(headersMs); // the first request's headers
      socket.once('close', () => {
        if (deadline !== null) clearTimeout(deadline);
        deadline = null;
      });
    });
    s.on('request', (req: IncomingMessage, res: ServerResponse) => {
      const arm = deadlines.get(req.socket);
      if (arm === undefined) return;
      arm(requestMs); // this request, to its response
      res.once('finish', () => {
        if (!req.socket.destroyed) arm(headersMs + s.keepAliveTimeout); // the next request's headers
      });
    });
    this.servers.push(s);
    return new Promise((resolve, reject) => {
      s.once('error', (e) => reject(new ApiError(`API cannot listen: ${e.message}`, { cause: e })));
      s.once('listening', () => resolve());
      bind(s);
    });
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const client = req.socket.remoteAddress ?? 'unix';
    const send = (r: ApiResponse) => {
      const isRaw = Buffer.isBuffer(r.body) || typeof r.body === 'string';
      const body = isRaw ? (r.body as Buffer | string) : JSON.stringify(r.body, null, 2) + '\n';
      res.writeHead(r.status, {
        'content-type': isRaw ? 'application/octet-stream' : 'application/json',
        'cache-control': 'no-store',
        'x-content-type-options': 'nosniff',
        ...(r.headers ?? {}),
        'content-length': String(Buffer.byteLength(body)),
      });
      res.end(req.method === 'HEAD' ? undefined : body);
    };
    try {
      if (req.method !== 'GET' && req.method !== 'HEAD') {
        req.resume();
        return send({ status: 405, headers: { allow: 'GET, HEAD' }, body: { error: 'METHOD_NOT_ALLOWED', reason: 'only GET is served' } });
      }
      const length = Number(req.headers['content-length'] ?? '0');
      if (length > 0 || req.headers['transfer-encoding'] !== undefined) {
        req.destroy();
        return;
      }
      if (!this.limiter.take(client, this.now())) {
        this.rejectedRateLimited++;
        return send({ status: 429, headers: { 'retry-after': String(this.limiter.retryAfter(client)) }, body: { error: 'RATE_LIMITED', reason: 'too many requests' } });
      }
      if ((req.url ?? '').length > 2048) return send({ status: 414, body: { error: 'URI_TOO_LONG', reason: 'request target over 2048 bytes' } });
      const url = new URL(req.url ?? '/', 'http://glassbox.local');
      const route = this.routes.get(url.pathname);
      if (!route) return send({ status: 404, body: { error: 'NOT_FOUND', reason: `no such path ${url.pathname}` } });
      send(await route.handle({ url, method: req.method, client, headers: req.headers }));
    } catch (e) {
      if (!res.headersSent) send({ status: 500, body: { error: 'INTERNAL', reason: e instanceof Error ? e.message : String(e) } });
      else res.destroy();
    }
  }

  async stop(): Promise<void> {
    const servers = this.servers;
    this.servers = [];
    await Promise.all(
      servers.map(
        (s) =>
          new Promise<void>((resolve) => {
            s.close(() => resolve());
            s.closeAllConnections();
          }),
      ),
    );
    if (this.opts.socketPath !== null) await unlink(this.opts.socketPath).catch(() => undefined);
  }
}
