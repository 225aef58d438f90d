/** A small client of the local API (for `glassbox attest`): Unix socket or http://host:port, bounded. */
import { request, type RequestOptions } from 'node:http';
import { IoError } from '../errors.js';

export interface ApiTarget {
  readonly socketPath?: string;
  /** http://127.0.0.1:8780 */
  readonly url?: string;
}

export interface ApiReply {
  readonly status: number;
  readonly body: Buffer;
}

export function apiGet(target: ApiTarget, path: string, opts: { timeoutMs?: number; maxBytes?: number } = {}): Promise<ApiReply> {
  const maxBytes = opts.maxBytes ?? 8 * 1024 * 1024;
  return new Promise((resolve, reject) => {
    let options: RequestOptions;
    if (target.socketPath !== undefined) options = { socketPath: target.socketPath, path, method: 'GET' };
    else {
      let u: URL;
      try {
        u = new URL(path, target.url ?? 'http://127.0.0.1:8780');
      } catch {
        return reject(new IoError(`API address ${JSON.stringify(target.url)} is not a URL`));
      }
      if (u.protocol !== 'http:') return reject(new IoError(`API address must be http:// (local API), not ${u.protocol}`));
      options = { host: u.hostname.replace(/^\[|\]$/g, ''), port: u.port === '' ? 80 : Number(u.port), path: u.pathname + u.search, method: 'GET' };
    }
    const where = target.socketPath ?? target.url ?? 'http://127.0.0.1:8780';
    const req = request({ ...options, agent: false, timeout: opts.timeoutMs ?? 20_000 }, (res) => {
      const chunks: Buffer[] = [];
      let n = 0;
      res.on('data', (c: Buffer) => {
        n += c.length;
        if (n > maxBytes) {
          req.destroy(new IoError(`API reply from ${where} is over ${maxBytes} bytes`));
          return;
        }
        chunks.push(c);
      });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks) }));
      res.on('error', (e) => reject(new IoError(`API ${where}: ${e.message}`, { cause: e })));
    });
    req.on('timeout', () => req.destroy(new IoError(`API ${where} did not answer in time`)));
    req.on('error', (e) => reject(e instanceof IoError ? e : new IoError(`cannot reach the glassbox API at ${where}: ${e.message}`, { cause: e })));
    req.end();
  });
}
