/**
 * Fixtures for provisioning tests, all generated at test time: the fleet's
 * PKI (createDevPki), a broker CA and a broker certificate for 127.0.0.1,
 * and a real mosquitto with mutual TLS and the fleet ACL on a free
 * loopback port.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createReadStream } from 'node:fs';
import { mkdir, readFile, readdir, stat, writeFile } from 'node:fs/promises';
import { createHash } from 'node:crypto';
import { createServer, connect } from 'node:net';
import { join, relative } from 'node:path';
import { createLeaf, createRootCa, type CertifiedKey } from '../../src/pki/certs.js';
import { createDevPki, type DevPki } from '../../src/pki/devpki.js';
import { generateKey, privateKeyPem } from '../../src/pki/keys.js';
import { x509 } from '../../src/pki/x509.js';

export interface BrokerPki {
  readonly ca: CertifiedKey;
  readonly caFile: string;
  readonly certFile: string;
  readonly keyFile: string;
}

/** A broker CA and a server certificate naming 127.0.0.1 and localhost. */
export async function makeBrokerPki(dir: string, name = 'broker'): Promise<BrokerPki> {
  await mkdir(dir, { recursive: true });
  const ca = await createRootCa({ key: await generateKey('ecdsa-p256'), subject: `CN=${name} test CA` });
  const key = await generateKey('ecdsa-p256');
  const san = new x509.SubjectAlternativeNameExtension([
    { type: 'ip', value: '127.0.0.1' },
    { type: 'dns', value: 'localhost' },
  ]);
  const server = await createLeaf(ca, { key, subject: 'CN=localhost', purpose: 'clientAuth' }, { extendedKeyUsage: ['1.3.6.1.5.5.7.3.1'], extraExtensions: [san] });
  const caFile = join(dir, `${name}-ca.pem`);
  const certFile = join(dir, `${name}.pem`);
  const keyFile = join(dir, `${name}.key`);
  await writeFile(caFile, ca.pem);
  await writeFile(certFile, server.pem);
  await writeFile(keyFile, privateKeyPem(key), { mode: 0o600 });
  return { ca, caFile, certFile, keyFile };
}

export interface Site {
  readonly dir: string;
  readonly pki: DevPki;
  readonly broker: BrokerPki;
}

export async function makeSite(dir: string, name = 'fleet'): Promise<Site> {
  const pki = await createDevPki(join(dir, `${name}-pki`), { signers: 2, threshold: 1 });
  const broker = await makeBrokerPki(join(dir, `${name}-broker`));
  return { dir, pki, broker };
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      const port = typeof addr === 'object' && addr !== null ? addr.port : 0;
      srv.close(() => resolve(port));
    });
  });
}

export interface Mosquitto {
  readonly port: number;
  readonly url: string;
  readonly logFile: string;
  log(): Promise<string>;
  stop(): Promise<void>;
}

/**
 * mosquitto on 127.0.0.1 with require_certificate, the client CA file
 * `clientCaFile` (the fleet root: device certificates present their chain),
 * use_identity_as_username and `pattern readwrite glassbox/v1/%u/#`.
 */
export async function startMosquitto(dir: string, opts: { clientCaFile: string; broker: BrokerPki }): Promise<Mosquitto> {
  await mkdir(dir, { recursive: true });
  const port = await freePort();
  const acl = join(dir, 'acl');
  const conf = join(dir, 'mosquitto.conf');
  const logFile = join(dir, 'mosquitto.log');
  await writeFile(acl, 'pattern readwrite glassbox/v1/%u/#\n');
  await writeFile(
    conf,
    [
      'per_listener_settings true',
      `listener ${port} 127.0.0.1`,
      `cafile ${opts.clientCaFile}`,
      `certfile ${opts.broker.certFile}`,
      `keyfile ${opts.broker.keyFile}`,
      'require_certificate true',
      'use_identity_as_username true',
      `acl_file ${acl}`,
      'persistence false',
      // The test runs as root; keep root so the 0600 broker key stays readable.
      'user root',
      'log_type all',
      `log_dest file ${logFile}`,
      '',
    ].join('\n'),
  );
  const child: ChildProcess = spawn('mosquitto', ['-c', conf], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const deadline = Date.now() + 10_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`mosquitto exited (${child.exitCode}): ${stderr}`);
    if (await canConnect(port)) break;
    if (Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error(`mosquitto did not listen on ${port}: ${stderr}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  return {
    port,
    url: `mqtts://127.0.0.1:${port}`,
    logFile,
    log: () => readFile(logFile, 'utf8').catch(() => ''),
    async stop() {
      if (child.exitCode === null) {
        child.kill('SIGTERM');
        await exited;
      }
    },
  };
}

function canConnect(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect(port, '127.0.0.1');
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}

/** Every file under `root` (relative path → sha256 and mode), to prove a refusal changed nothing. */
export async function snapshot(root: string): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  const walk = async (dir: string): Promise<void> => {
    let entries;
    try {
      entries = await readdir(dir, { withFileTypes: true });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
      throw err;
    }
    for (const e of entries) {
      const p = join(dir, e.name);
      if (e.isDirectory()) {
        out[relative(root, p) + '/'] = ((await stat(p)).mode & 0o7777).toString(8);
        await walk(p);
      } else {
        const h = createHash('sha256');
        await new Promise<void>((resolve, reject) => createReadStream(p).on('data', (d) => h.update(d)).on('end', () => resolve()).on('error', reject));
        out[relative(root, p)] = `${h.digest('hex')} ${((await stat(p)).mode & 0o7777).toString(8)}`;
      }
    }
  };
  await walk(root);
  return out;
}

/** The base64 body lines of a PEM private key: what must never appear in any output. */
export function pemBodyLines(pem: string): string[] {
  return pem
    .split('\n')
    .filter((l) => l.length > 0 && !l.startsWith('-----'))
    .filter((l) => l.length >= 16);
}
