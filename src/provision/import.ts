/**
 * `glassbox provision import CERT`: the certificate from ops comes home
 * (edge orchestration).
 *
 * Order, so that a refusal at any step changes nothing on the recorder:
 *   1. read everything (identity, certificate, chain, trust policy, broker CA, config)
 *   2. judge: key, device id, clock, chain to the device CA under the trust roots (judge.ts);
 *      the trust policy against the one the recorder already holds
 *   3. build the new daemon configuration and validate it with the config schema
 *   4. check the broker with the new identity, from memory (broker.ts)
 *   5. only then write: device state (first provisioning only), broker CA,
 *      certificate + chain, identity record, and the configuration last, each file
 *      staged (temp + fsync) and renamed into place
 *   6. gather the checklist from what is now on disk
 */
import { lstat, mkdir, readdir } from 'node:fs/promises';
import { X509Certificate, randomBytes } from 'node:crypto';
import { dirname, join } from 'node:path';
import { GlassboxError } from '../errors.js';
import { resolveConfig } from '../config/resolve.js';
import { initDevice } from '../install/init.js';
import { StateDir } from '../install/state-store.js';
import { loadTrustAnchors } from '../trust/policy.js';
import { splitPemCertificates } from '../trust/chain.js';
import type { TrustAnchors } from '../trust/types.js';
import { checkBroker, parseBrokerUrl, type BrokerCheckResult } from './broker.js';
import { ProvisionError } from './errors.js';
import { commitAll, discardAll, ensureDir, exists, fsyncDir, readBounded, stageFile, type Owner, type StagedFile } from './files.js';
import { identityPaths, replacedIdentityDir, serializeIdentityMeta, type IdentityMeta } from './identity.js';
import { loadIdentityKey, readExistingIdentity, KEY_MAX_BYTES } from './init.js';
import { judgeCertificate, type JudgedCertificate } from './judge.js';

export const BROKER_CA_MAX_BYTES = 256 * 1024;

export interface ImportRequest {
  readonly stateDir: string;
  readonly certFile: string;
  readonly certPem: Buffer;
  readonly chainFile: string;
  readonly chainPem: Buffer;
  readonly trustFile: string;
  readonly trustBytes: Buffer;
  readonly brokerUrl: string;
  readonly brokerCaFile: string;
  readonly brokerCaPem: Buffer;
  readonly configPath: string;
  /** The config file's current JSON value, or undefined when there is none. */
  readonly existingConfig: unknown;
  readonly force: boolean;
  /** Skip the broker check (the checklist then says so, as a failure to come back to). */
  readonly skipBrokerCheck: boolean;
  readonly brokerTimeoutMs: number;
  readonly now: Date;
  /** For the broker check's status payload times. */
  readonly clock: () => Date;
  readonly daemonVersion: string;
  readonly bootId: string | null;
}

export interface ImportResult {
  readonly deviceId: string;
  readonly hardware: string;
  readonly certificate: { readonly sha256: string; readonly serial: string; readonly issuer: string; readonly notBefore: string; readonly notAfter: string; readonly path: readonly string[] };
  readonly trustPolicySha256: string;
  readonly deviceStateInitialised: boolean;
  /** true when the same certificate was already imported (nothing new written but the config). */
  readonly unchanged: boolean;
  readonly replacedTo: string | null;
  readonly broker: BrokerCheckResult | null;
  readonly files: { readonly cert: string; readonly brokerCa: string; readonly meta: string; readonly config: string };
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** The daemon config with this identity written in; everything else the file held is kept. */
export function buildConfig(existing: unknown, fields: { deviceId: string; hardware: string; stateDir: string; brokerUrl: string; brokerCa: string; cert: string; key: string }, configPath: string): Record<string, unknown> {
  if (existing !== undefined && !isPlainObject(existing)) {
    throw new ProvisionError('IDENTITY_CORRUPT', `${configPath} is not a JSON object`, `move ${configPath} aside; provisioning writes a fresh one`);
  }
  const base = existing ?? {};
  const mqtt = isPlainObject(base['mqtt']) ? base['mqtt'] : {};
  const next: Record<string, unknown> = {
    ...base,
    deviceId: fields.deviceId,
    hardware: fields.hardware,
    stateDir: fields.stateDir,
    mqtt: { ...mqtt, url: fields.brokerUrl, ca: fields.brokerCa, cert: fields.cert, key: fields.key },
  };
  try {
    resolveConfig({ file: { name: configPath, value: next }, env: {}, flags: {} });
  } catch (err) {
    if (err instanceof GlassboxError) {
      throw new ProvisionError('IDENTITY_CORRUPT', `the configuration to write would be invalid: ${err.message.replace(/\n\s*/g, ' ')}`, `fix or move aside ${configPath} (the settings it already holds are kept), then run import again`, { cause: err });
    }
    throw err;
  }
  return next;
}

function parseBrokerCa(pem: Buffer, file: string): void {
  const { ders, faults } = splitPemCertificates(pem.toString('latin1'));
  const bad = ders.findIndex((d) => {
    try {
      new X509Certificate(d);
      return false;
    } catch {
      return true;
    }
  });
  if (faults.length > 0 || ders.length === 0 || bad >= 0) {
    throw new ProvisionError('BROKER_CA_INVALID', `--broker-ca ${file} is not PEM CA certificates${faults.length ? `: ${faults.join('; ')}` : ''}`, "bring the CA certificate that signed the broker's certificate (broker-ca.pem from ops)");
  }
}

export async function provisionImport(req: ImportRequest): Promise<ImportResult> {
  // 1. What this recorder is.
  const existing = await readExistingIdentity(req.stateDir);
  if (existing === null || existing.meta === null) {
    throw new ProvisionError('NOT_INITIALISED', `no identity key on this recorder (${identityPaths(req.stateDir).dir})`, 'run `glassbox provision init --device-id ID --hardware MODEL` first, and have ops issue the certificate from its CSR');
  }
  const meta = existing.meta;
  const paths = identityPaths(req.stateDir);
  // The key must be readable and be the one the record names (never printed, never copied elsewhere).
  await loadIdentityKey(req.stateDir, meta);
  const keyPem = await readBounded(paths.key, KEY_MAX_BYTES, 'identity key');
  const dirStat = await lstat(paths.dir);
  const owner: Owner = { uid: dirStat.uid, gid: dirStat.gid };

  // 2. Trust: the policy given, and the one the recorder already holds (if any).
  let anchors: TrustAnchors;
  try {
    anchors = loadTrustAnchors(req.trustBytes);
  } catch (err) {
    throw new ProvisionError('TRUST_POLICY_INVALID', `${req.trustFile}: ${err instanceof Error ? err.message : String(err)}`, 'bring the trust-policy.json from ops unchanged (canonical JSON; do not re-save it in an editor)', { cause: err });
  }
  const stateDir = new StateDir(req.stateDir);
  const initialised = await stateDir.isInitialised();
  if (initialised) {
    const { state } = await stateDir.read();
    if (state.trustPolicy !== anchors.sha256) {
      throw new ProvisionError(
        'TRUST_POLICY_MISMATCH',
        `this recorder already trusts policy ${state.trustPolicy.slice(0, 16)}…, not ${req.trustFile} (${anchors.sha256.slice(0, 16)}…)`,
        "pass the recorder's own policy (trust/<sha256>.json in the state directory) or the matching file from ops; trust changes only through a signed bundle",
      );
    }
    if (state.hardware !== meta.hardware) {
      throw new ProvisionError('DEVICE_ID_INVALID', `the device state says hardware ${state.hardware}, the identity says ${meta.hardware}`, `start the identity over with \`provision init --force --hardware ${state.hardware}\``);
    }
  }

  const judged: JudgedCertificate = judgeCertificate({
    certPem: req.certPem,
    chainPem: req.chainPem,
    anchors,
    keySpkiSha256: meta.spkiSha256,
    deviceId: meta.deviceId,
    hardware: meta.hardware,
    now: req.now,
    files: { cert: req.certFile, chain: req.chainFile, trust: req.trustFile },
  });

  const unchanged = meta.certificate !== null && meta.certificate.sha256 === judged.sha256;
  if (meta.certificate !== null && !unchanged && !req.force) {
    throw new ProvisionError(
      'ALREADY_PROVISIONED',
      `this recorder is already provisioned with certificate ${meta.certificate.sha256.slice(0, 16)}… (serial ${meta.certificate.serial}, valid until ${meta.certificate.notAfter})`,
      'to replace it with this one run import again with --force (the old certificate is kept in identity.replaced-<time>)',
    );
  }

  parseBrokerCa(req.brokerCaPem, req.brokerCaFile);
  parseBrokerUrl(req.brokerUrl);
  const brokerCaPath = paths.brokerCa;
  const config = buildConfig(
    req.existingConfig,
    { deviceId: meta.deviceId, hardware: meta.hardware, stateDir: req.stateDir, brokerUrl: req.brokerUrl, brokerCa: brokerCaPath, cert: paths.cert, key: paths.key },
    req.configPath,
  );

  // 4. The broker, with the new identity, before anything is written.
  const broker = req.skipBrokerCheck
    ? null
    : await checkBroker({
        url: req.brokerUrl,
        caPem: req.brokerCaPem,
        certChainPem: judged.leafPem + judged.chainPem,
        keyPem,
        deviceId: meta.deviceId,
        hardware: meta.hardware,
        daemonVersion: req.daemonVersion,
        bootId: req.bootId,
        timeoutMs: req.brokerTimeoutMs,
        now: req.clock,
        caFile: req.brokerCaFile,
      });

  // 5. Write. Stage every file first; commit in order, the configuration last.
  const certificate = {
    sha256: judged.sha256,
    serial: judged.serial,
    issuer: judged.issuer,
    notBefore: judged.notBefore.toISOString(),
    notAfter: judged.notAfter.toISOString(),
  };
  const newMeta: IdentityMeta = {
    ...meta,
    certificate: {
      ...certificate,
      importedAt: unchanged && meta.certificate ? meta.certificate.importedAt : req.now.toISOString(),
      trustPolicySha256: anchors.sha256,
    },
  };
  let replacedTo: string | null = null;
  if (meta.certificate !== null && !unchanged) {
    // --force: keep the old certificate, broker CA and record (never the key: it stays in place).
    replacedTo = replacedIdentityDir(req.stateDir, req.now);
    if (await exists(replacedTo)) replacedTo = `${replacedTo}-${randomBytes(3).toString('hex')}`;
    await mkdir(replacedTo, { mode: 0o700 });
    const keep = (await readdir(paths.dir)).filter((n) => n !== 'device.key' && !n.startsWith('.'));
    for (const name of keep) {
      const bytes = await readBounded(join(paths.dir, name), 1024 * 1024, 'identity file');
      const s = await stageFile(join(replacedTo, name), bytes, { mode: 0o600 });
      await s.commit();
    }
    await fsyncDir(req.stateDir);
  }
  if (!initialised) {
    await initDevice({ stateDir: req.stateDir, trustBytes: req.trustBytes, hardware: meta.hardware, clock: req.now });
  }
  const staged: StagedFile[] = [];
  try {
    await ensureDir(dirname(req.configPath), 0o755);
    staged.push(await stageFile(brokerCaPath, req.brokerCaPem, { mode: 0o644, owner }));
    staged.push(await stageFile(paths.cert, judged.leafPem + judged.chainPem, { mode: 0o644, owner }));
    staged.push(await stageFile(paths.meta, serializeIdentityMeta(newMeta), { mode: 0o644, owner }));
    staged.push(await stageFile(req.configPath, JSON.stringify(config, null, 2) + '\n', { mode: 0o644 }));
  } catch (err) {
    await discardAll(staged);
    throw err;
  }
  await commitAll(staged);

  return {
    deviceId: meta.deviceId,
    hardware: meta.hardware,
    certificate: { ...certificate, path: judged.path },
    trustPolicySha256: anchors.sha256,
    deviceStateInitialised: !initialised,
    unchanged,
    replacedTo,
    broker,
    files: { cert: paths.cert, brokerCa: brokerCaPath, meta: paths.meta, config: req.configPath },
  };
}

