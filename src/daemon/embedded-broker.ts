/**
 * The embedded broker of `glassbox daemon --dev`: aedes on loopback, plain
 * TCP (loopback only, so nothing crosses a network; aedes speaks MQTT
 * 3.1.1, which also exercises the daemon's protocol fallback). Port 1883
 * when free, else one the kernel picks. With `tls` it listens with TLS
 * and requires a client certificate issued by `tls.ca` (bench:idle uses
 * this to measure the daemon the way it runs in the field: mutual TLS).
 */
import { createServer, type Server } from 'node:net';
import { createServer as createTlsServer } from 'node:tls';
import { Aedes } from 'aedes';

export interface EmbeddedBrokerTls {
  /** PEM of the broker's certificate (and chain) and its key. */
  readonly cert: string | Buffer;
  readonly key: string | Buffer;
  /** PEM of the CA whose client certificates are accepted. */
  readonly ca: string | Buffer;
}

export interface EmbeddedBroker {
  readonly host: string;
  readonly port: number;
  readonly url: string;
  /** The aedes instance (e.g. to watch what the daemon publishes). */
  readonly aedes: Aedes;
  close(): Promise<void>;
}

function listen(server: Server, port: number, host: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const onError = (err: Error) => {
      server.off('listening', onListening);
      reject(err);
    };
    const onListening = () => {
      server.off('error', onError);
      const addr = server.address();
      resolve(typeof addr === 'object' && addr !== null ? addr.port : port);
    };
    server.once('error', onError);
    server.once('listening', onListening);
    server.listen(port, host);
  });
}

export async function startEmbeddedBroker(preferredPort = 1883, host = '127.0.0.1', tls?: EmbeddedBrokerTls): Promise<EmbeddedBroker> {
  const aedes = await Aedes.createBroker({ maxClientsIdLength: 128 });
  const server: Server = tls
    ? createTlsServer({ cert: tls.cert, key: tls.key, ca: tls.ca, requestCert: true, rejectUnauthorized: true }, (socket) => aedes.handle(socket))
    : createServer((socket) => aedes.handle(socket));
  let port: number;
  try {
    port = await listen(server, preferredPort, host);
  } catch {
    port = await listen(server, 0, host);
  }
  return {
    host,
    port,
    url: `${tls ? 'mqtts' : 'mqtt'}://${host}:${port}`,
    aedes,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        aedes.close(() => undefined);
        setTimeout(resolve, 1000).unref();
      }),
  };
}
