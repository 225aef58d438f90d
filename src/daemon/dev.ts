/**
 * `glassbox daemon --dev` (what `npm start` runs): everything a fresh
 * checkout needs, generated into the git-ignored `.glassbox-dev/` at the
 * package root (or $GLASSBOX_DEV_DIR):
 *
 *   pki/                development PKI (root, release CA, 2 signers, device CA, trust policy)
 *   device/             the device identity: key + certificate CN=<deviceId>, clientAuth, from the device CA
 *   release/            a sample release, built, signed by both signers
 *   state/              device state: initialised, the sample installed and committed (slot a)
 *
 * Each step is skipped when its output exists. When neither --broker nor
 * GLASSBOX_BROKER is given, an embedded aedes broker listens on loopback.
 */
import { X509Certificate } from 'node:crypto';
import { createReadStream, existsSync, readFileSync } from 'node:fs';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { CliIO } from '../cli/run.js';
import { GlassboxError } from '../errors.js';
import { startEmbeddedBroker, type EmbeddedBroker } from './embedded-broker.js';

export const DEV_DEVICE_ID = 'dev-recorder-1';
export const DEV_HARDWARE = 'hss-nvr-dev';

export interface DevSetup {
  readonly dir: string;
  readonly flags: Record<string, unknown>;
  readonly brokerUrl: string | null;
  readonly broker: EmbeddedBroker | null;
  announce(deviceId: string): void;
  stop(): Promise<void>;
}

function packageRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 6; i++) {
    try {
      const pkg = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')) as { name?: string };
      if (pkg.name === 'glassbox') return dir;
    } catch {
      /* keep walking */
    }
    dir = dirname(dir);
  }
  return process.cwd();
}

interface PkiIndex {
  trustPolicy: { path: string };
  deviceCa: { cert: string; key: string };
  signers: Array<{ key: string; chain: string }>;
}

async function ensurePki(dir: string): Promise<PkiIndex> {
  const index = join(dir, 'pki.json');
  if (!existsSync(index)) {
    const { createDevPki } = await import('../pki/devpki.js');
    await createDevPki(dir, { signers: 2, threshold: 2 });
  }
  return JSON.parse(await readFile(index, 'utf8')) as PkiIndex;
}

async function ensureDeviceIdentity(pkiDir: string, pki: PkiIndex, deviceDir: string, deviceId: string): Promise<{ cert: string; key: string }> {
  const cert = join(deviceDir, 'device.pem');
  const key = join(deviceDir, 'device.key');
  if (existsSync(cert) && existsSync(key)) return { cert, key };
  const { generateKey, keyPairFromPem, privateKeyPem } = await import('../pki/keys.js');
  const { createDeviceCert } = await import('../pki/certs.js');
  const caPem = await readFile(join(pkiDir, pki.deviceCa.cert), 'utf8');
  const caKey = keyPairFromPem(await readFile(join(pkiDir, pki.deviceCa.key)));
  const deviceKey = await generateKey('ecdsa-p256');
  const issued = await createDeviceCert({ key: caKey, cert: new X509Certificate(caPem), pem: caPem }, { deviceId, hardwareModel: DEV_HARDWARE, publicKey: deviceKey.publicKey });
  await mkdir(deviceDir, { recursive: true, mode: 0o700 });
  await writeFile(key, privateKeyPem(deviceKey), { mode: 0o600 });
  await writeFile(cert, issued.pem + caPem);
  await writeFile(join(deviceDir, 'device-ca.pem'), caPem);
  return { cert, key };
}

async function ensureInstalled(pkiDir: string, pki: PkiIndex, releaseDir: string, stateDir: string): Promise<void> {
  const { StateDir } = await import('../install/state-store.js');
  const sd = new StateDir(stateDir);
  const now = new Date();
  if (!(await sd.isInitialised())) {
    const { initDevice } = await import('../install/init.js');
    await mkdir(stateDir, { recursive: true });
    await initDevice({ stateDir, trustBytes: await readFile(join(pkiDir, pki.trustPolicy.path)), hardware: DEV_HARDWARE, clock: now });
  }
  const { state } = await sd.read();
  if (state.active !== null) return;
  await mkdir(releaseDir, { recursive: true });
  const template = join(releaseDir, 'template.json');
  const day = 24 * 3600_000;
  await writeFile(
    template,
    JSON.stringify(
      {
        schema: 'glassbox.manifest/v1',
        product: 'hss-nvr',
        hardware: [DEV_HARDWARE],
        version: '1.0.0-dev.1',
        securityVersion: 1,
        released: new Date(now.getTime() - 3600_000).toISOString().replace(/\.\d{3}Z$/, 'Z'),
        expires: new Date(now.getTime() + 365 * day).toISOString().replace(/\.\d{3}Z$/, 'Z'),
        egress: [{ id: 'ops-broker', purpose: 'telemetry to the central MQTT broker', proto: 'tcp', port: 8883, host: 'broker.example.com' }],
        provenance: {
          sourceRepository: 'https://example.com/hss/glassbox-sample-firmware',
          sourceCommit: '0123456789abcdef0123456789abcdef01234567',
          builder: 'https://example.com/hss/dev-builder',
          buildFinished: new Date(now.getTime() - 3600_000).toISOString().replace(/\.\d{3}Z$/, 'Z'),
        },
        notes: 'development sample release generated by glassbox daemon --dev',
      },
      null,
      2,
    ),
  );
  const app = join(releaseDir, 'recorder-app.bin');
  await writeFile(app, `sample recorder application ${now.toISOString()}\n`);
  const bundle = join(releaseDir, 'sample.bundle');
  const { buildRelease, signBundleWithKeyFile } = await import('../release/index.js');
  await buildRelease({ template, artifacts: [{ name: 'recorder-app.bin', role: 'app', path: app }], out: bundle, now });
  for (const s of pki.signers) await signBundleWithKeyFile(bundle, { key: join(pkiDir, s.key), chain: join(pkiDir, s.chain) });
  const { installBundle } = await import('../install/install.js');
  const res = await installBundle({ stateDir, source: createReadStream(bundle), sourceName: bundle, clock: new Date() });
  if (!res.ok) throw new GlassboxError('DEV_SETUP_FAILED', `sample bundle was refused: ${res.code}: ${res.reason}`);
  const { bootCheck } = await import('../install/boot.js');
  await bootCheck({ stateDir, clock: new Date() });
}

export async function prepareDev(args: { io: CliIO; flags: Record<string, unknown>; env: Readonly<Record<string, string | undefined>> }): Promise<DevSetup> {
  const { io, flags, env } = args;
  const dir = resolve(env['GLASSBOX_DEV_DIR'] ?? join(packageRoot(), '.glassbox-dev'));
  const pkiDir = join(dir, 'pki');
  const stateDir = (flags['stateDir'] as string | undefined) ?? env['GLASSBOX_STATE_DIR'] ?? join(dir, 'state');
  const deviceId = (flags['deviceId'] as string | undefined) ?? env['GLASSBOX_DEVICE_ID'] ?? DEV_DEVICE_ID;
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const pki = await ensurePki(pkiDir);
  const identity = await ensureDeviceIdentity(pkiDir, pki, join(dir, 'device'), deviceId);
  await ensureInstalled(pkiDir, pki, join(dir, 'release'), stateDir);

  const external = flags['broker'] !== undefined || (env['GLASSBOX_BROKER'] ?? '') !== '';
  const broker = external ? null : await startEmbeddedBroker(Number(env['GLASSBOX_DEV_BROKER_PORT'] ?? 1883));
  return {
    dir,
    broker,
    brokerUrl: broker?.url ?? null,
    flags: { stateDir, deviceId, hardware: DEV_HARDWARE },
    announce(id: string) {
      const lines = [
        `glassbox dev daemon: device ${id}, state ${stateDir}`,
        broker
          ? `  embedded MQTT broker: ${broker.url} — watch the telemetry with:  mosquitto_sub -h ${broker.host} -p ${broker.port} -t 'glassbox/#' -v`
          : '  using the broker given by --broker / GLASSBOX_BROKER',
        `  device identity (for a real broker): --cert ${identity.cert} --key ${identity.key}`,
        `  local API: http://${String(flags['apiListen'] ?? env['GLASSBOX_API_LISTEN'] ?? '127.0.0.1:8780')}/ (served when the API module is present)`,
      ];
      for (const l of lines) io.err(l);
    },
    async stop() {
      await broker?.close();
    },
  };
}
