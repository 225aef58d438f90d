/**
 * A real Mosquitto for tests: TLS listener on a free loopback port that
 * requires client certificates (use_identity_as_username: the CN is the
 * username), an ACL confining each device to glassbox/v1/<CN>/# and
 * letting the `ops` identity read everything and write commands, and
 * on-disk persistence (retained messages and the ops subscriber's session
 * survive a restart). Certificates are generated per test file:
 *
 *   const pki = await makeBrokerPki(dir);     // server CA + server cert, device CA, ops + device certs
 *   const broker = await startMosquitto({ dir, pki });
 *   await broker.stop(); await broker.start();  // same port
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { writeFile, mkdir } from 'node:fs/promises';
import { connect, createServer } from 'node:net';
import { join } from 'node:path';
import { createDeviceCert, createLoopbackServer, createRootCa, type CertifiedKey, type CertOverrides } from '../../src/pki/certs.js';
import { generateKey, privateKeyPem } from '../../src/pki/keys.js';

export interface IdentityFiles {
  readonly cert: string;
  readonly key: string;
}

export interface BrokerPki {
  readonly dir: string;
  /** CA that signed the broker's certificate (clients verify the broker with it). */
  readonly serverCaFile: string;
  /** CA that signs client certificates (the broker verifies clients with it). */
  readonly deviceCaFile: string;
  readonly serverCert: string;
  readonly serverKey: string;
  readonly deviceCa: CertifiedKey;
  /** Issues a client certificate CN=<name> under the device CA (or another CA), written to files. */
  issueClient(name: string, opts?: { issuer?: CertifiedKey; overrides?: CertOverrides }): Promise<IdentityFiles>;
  /** A CA the broker does not trust. */
  otherCa(): Promise<CertifiedKey>;
}

const HOUR = 3600_000;

export async function makeBrokerPki(dir: string): Promise<BrokerPki> {
  await mkdir(dir, { recursive: true });
  const { ca: serverCa, server } = await createLoopbackServer('CN=test broker CA');
  const serverKey = server.key;
  const deviceCa = await createRootCa({ key: await generateKey('ecdsa-p256'), subject: 'CN=test device CA' });
  const files = {
    serverCaFile: join(dir, 'server-ca.pem'),
    deviceCaFile: join(dir, 'device-ca.pem'),
    serverCert: join(dir, 'server.pem'),
    serverKey: join(dir, 'server.key'),
  };
  await writeFile(files.serverCaFile, serverCa.pem);
  await writeFile(files.deviceCaFile, deviceCa.pem);
  await writeFile(files.serverCert, server.pem);
  await writeFile(files.serverKey, privateKeyPem(serverKey), { mode: 0o600 });
  let n = 0;
  return {
    dir,
    ...files,
    deviceCa,
    async issueClient(name, opts = {}) {
      const key = await generateKey('ecdsa-p256');
      const issued = await createDeviceCert(opts.issuer ?? deviceCa, { deviceId: name, publicKey: key.publicKey }, opts.overrides ?? {});
      const base = join(dir, `client-${name}-${n++}`);
      await writeFile(`${base}.pem`, issued.pem);
      await writeFile(`${base}.key`, privateKeyPem(key), { mode: 0o600 });
      return { cert: `${base}.pem`, key: `${base}.key` };
    },
    async otherCa() {
      return createRootCa({ key: await generateKey('ecdsa-p256'), subject: 'CN=untrusted CA' });
    },
  };
}

/** Options to make an expired client certificate. */
export function expiredOverrides(now = new Date()): CertOverrides {
  return { notBefore: new Date(now.getTime() - 48 * HOUR), notAfter: new Date(now.getTime() - 24 * HOUR) };
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      const port = typeof addr === 'object' && addr ? addr.port : 0;
      srv.close(() => resolve(port));
    });
  });
}

function portOpen(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect({ host: '127.0.0.1', port });
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}

export interface Mosquitto {
  readonly port: number;
  readonly url: string;
  readonly log: string;
  start(): Promise<void>;
  stop(): Promise<void>;
  running(): boolean;
}

export async function startMosquitto(opts: { dir: string; pki: BrokerPki; port?: number; maxPacketBytes?: number }): Promise<Mosquitto> {
  const port = opts.port ?? (await freePort());
  const data = join(opts.dir, 'data');
  await mkdir(data, { recursive: true });
  const acl = join(opts.dir, 'acl');
  await writeFile(
    acl,
    [
      '# each device: its own tree only',
      'pattern readwrite glassbox/v1/%u/#',
      '',
      '# central ops: read everything, send commands',
      'user ops',
      'topic read glassbox/#',
      'topic write glassbox/v1/+/cmd/#',
      '',
    ].join('\n'),
  );
  const conf = join(opts.dir, 'mosquitto.conf');
  const log = join(opts.dir, 'mosquitto.log');
  await writeFile(
    conf,
    [
      'user root',
      'per_listener_settings false',
      'allow_anonymous false',
      `acl_file ${acl}`,
      'persistence true',
      `persistence_location ${data}/`,
      'autosave_interval 1',
      'max_queued_messages 100000',
      'max_inflight_messages 100',
      `max_packet_size ${opts.maxPacketBytes ?? 1048576}`,
      `log_dest file ${log}`,
      'log_type error',
      'log_type warning',
      'log_type notice',
      'log_type information',
      'connection_messages true',
      `listener ${port} 127.0.0.1`,
      `cafile ${opts.pki.deviceCaFile}`,
      `certfile ${opts.pki.serverCert}`,
      `keyfile ${opts.pki.serverKey}`,
      'require_certificate true',
      'use_identity_as_username true',
      '',
    ].join('\n'),
  );
  let proc: ChildProcess | null = null;
  const broker: Mosquitto = {
    port,
    url: `mqtts://127.0.0.1:${port}`,
    log,
    running: () => proc !== null && proc.exitCode === null,
    async start() {
      if (proc && proc.exitCode === null) return;
      proc = spawn('mosquitto', ['-c', conf], { stdio: ['ignore', 'ignore', 'pipe'] });
      let stderr = '';
      proc.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
      const deadline = Date.now() + 10_000;
      while (!(await portOpen(port))) {
        if (proc.exitCode !== null) throw new Error(`mosquitto exited (${proc.exitCode}): ${stderr}`);
        if (Date.now() > deadline) throw new Error(`mosquitto did not listen on ${port}: ${stderr}`);
        await new Promise((r) => setTimeout(r, 50));
      }
    },
    async stop() {
      const p = proc;
      if (!p || p.exitCode !== null) return;
      await new Promise<void>((resolve) => {
        const t = setTimeout(() => p.kill('SIGKILL'), 5000);
        p.once('exit', () => {
          clearTimeout(t);
          resolve();
        });
        p.kill('SIGTERM');
      });
      proc = null;
    },
  };
  await broker.start();
  return broker;
}

