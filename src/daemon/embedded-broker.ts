/**
 * The embedded broker of `glassbox daemon --dev`: aedes on loopback, plain
 * TCP (loopback only, so nothing crosses a network; aedes speaks MQTT
 * 3.1.1, which also exercises the daemon's protocol fallback). Port 1883
 * when free, else one the kernel picks.
 */
import { createServer, type Server } from 'node:net';
import { Aedes } from 'aedes';

export interface EmbeddedBroker {
  readonly host: string;
  readonly port: number;
  readonly url: string;
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

export async function startEmbeddedBroker(preferredPort = 1883, host = '127.0.0.1'): Promise<EmbeddedBroker> {
  const aedes = await Aedes.createBroker({ maxClientsIdLength: 128 });
  const server = createServer((socket) => aedes.handle(socket));
  let port: number;
  try {
    port = await listen(server, preferredPort, host);
  } catch {
    port = await listen(server, 0, host);
  }
  return {
    host,
    port,
    url: `mqtt://${host}:${port}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        aedes.close(() => undefined);
        setTimeout(resolve, 1000).unref();
      }),
  };
}
