/**
 * `glassbox provision init`: the identity key is born on the recorder, with
 * its CSR (edge).
 *
 * A new identity is built whole in a temp directory beside the identity
 * directory (key 0600 and everything else owned by the daemon's account,
 * fsynced) and published with one rename, so a failure at any step leaves
 * either the old identity or none, never half of one.
 */
import { randomBytes } from 'node:crypto';
import { readdir, rename, rm, stat } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { GlassboxError } from '../errors.js';
import { createCsr, deviceSubject } from '../pki/certs.js';
import { generateKey, keyPairFromPem, privateKeyPem, spkiSha256, type AcceptedKeyAlgorithm, type KeyPair } from '../pki/keys.js';
import { HARDWARE_PATTERN } from '../install/init.js';
import { StateDir } from '../install/state-store.js';
import { ProvisionError } from './errors.js';
import { ensureDir, exists, fsyncDir, readBounded, writeFileAtomic, type Owner } from './files.js';
import {
  IDENTITY_SCHEMA,
  META_MAX_BYTES,
  identityPaths,
  parseIdentityMeta,
  replacedIdentityDir,
  serializeIdentityMeta,
  type IdentityMeta,
} from './identity.js';

export const KEY_MAX_BYTES = 16 * 1024;

export interface InitRequest {
  readonly stateDir: string;
  readonly deviceId: string;
  readonly hardware: string;
  readonly keyAlgorithm: AcceptedKeyAlgorithm;
  /** The daemon's account; the identity directory and files are chowned to it. */
  readonly owner: Owner;
  readonly force: boolean;
  /** Extra copy of the CSR (e.g. on a USB stick); a directory gets <deviceId>.csr. */
  readonly outCsr: string | null;
  readonly now: Date;
}

export interface InitResult {
  readonly deviceId: string;
  readonly hardware: string;
  readonly keyAlgorithm: AcceptedKeyAlgorithm;
  readonly spkiSha256: string;
  readonly keyPath: string;
  readonly csrPath: string;
  /** Where the extra CSR copy went, or null. */
  readonly outCsr: string | null;
  /** true when an existing, not yet certified key for the same device was kept and its CSR re-emitted. */
  readonly reusedKey: boolean;
  /** Where a replaced identity was moved (--force), or null. */
  readonly replacedTo: string | null;
}

/** What the identity directory holds now (edge). */
export interface ExistingIdentity {
  readonly meta: IdentityMeta | null;
  /** Names in the directory other than our temp files. */
  readonly entries: readonly string[];
}

const TEMP_NAME = /^\..+\.[0-9a-f]{12}\.tmp$/;

export async function readExistingIdentity(stateDir: string): Promise<ExistingIdentity | null> {
  const paths = identityPaths(stateDir);
  let names: string[];
  try {
    names = await readdir(paths.dir);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw new ProvisionError('IDENTITY_CORRUPT', `cannot read ${paths.dir}: ${(err as Error).message}`, 'check the state directory (run as root, or pass --state-dir)', { cause: err });
  }
  const entries = names.filter((n) => !TEMP_NAME.test(n));
  if (entries.length === 0) return null;
  const metaBytes = await readBounded(paths.meta, META_MAX_BYTES, 'identity record', true);
  return { meta: metaBytes === null ? null : parseIdentityMeta(metaBytes, paths.meta), entries };
}

function checkNames(deviceId: string, hardware: string): void {
  if (!HARDWARE_PATTERN.test(hardware)) {
    throw new ProvisionError('DEVICE_ID_INVALID', `hardware model ${JSON.stringify(hardware)} is not a model id`, 'use the model id as printed on the recorder: letters, digits, ".", "_" and "-" (no spaces)');
  }
  try {
    deviceSubject(deviceId, hardware);
  } catch (err) {
    if (err instanceof GlassboxError) {
      throw new ProvisionError(
        'DEVICE_ID_INVALID',
        err.message,
        'use 1-64 characters of letters, digits, ".", "_" and "-" (the model may also hold spaces), starting with a letter or digit',
      );
    }
    throw err;
  }
}

/** Loads the key of an identity and checks it is the one its record names. */
export async function loadIdentityKey(stateDir: string, meta: IdentityMeta): Promise<KeyPair> {
  const paths = identityPaths(stateDir);
  const pem = await readBounded(paths.key, KEY_MAX_BYTES, 'identity key', true);
  if (pem === null) {
    throw new ProvisionError('IDENTITY_CORRUPT', `${paths.key} is missing but ${paths.meta} says a key was made`, 'start over with `glassbox provision init --force` (the current files are kept aside)');
  }
  let pair: KeyPair;
  try {
    pair = keyPairFromPem(pem);
  } catch (err) {
    throw new ProvisionError('IDENTITY_CORRUPT', `${paths.key} is not a readable private key`, 'start over with `glassbox provision init --force` (the current files are kept aside)', { cause: err });
  }
  if (spkiSha256(pair.publicKey) !== meta.spkiSha256) {
    throw new ProvisionError('IDENTITY_CORRUPT', `${paths.key} is not the key recorded in ${paths.meta}`, 'start over with `glassbox provision init --force` (the current files are kept aside)');
  }
  return pair;
}

export async function provisionInit(req: InitRequest): Promise<InitResult> {
  checkNames(req.deviceId, req.hardware);
  const paths = identityPaths(req.stateDir);
  const deviceState = new StateDir(req.stateDir);
  if (await deviceState.isInitialised()) {
    const { state } = await deviceState.read();
    if (state.hardware !== req.hardware) {
      throw new ProvisionError('DEVICE_ID_INVALID', `this recorder's device state says hardware ${state.hardware}, not ${req.hardware}`, `pass --hardware ${state.hardware}`);
    }
  }
  const existing = await readExistingIdentity(req.stateDir);

  if (existing && !req.force) {
    const meta = existing.meta;
    if (meta === null) {
      throw new ProvisionError(
        'ALREADY_PROVISIONED',
        `${paths.dir} already holds files (${existing.entries.slice(0, 4).join(', ')}) but no identity record`,
        'run again with --force to set them aside (kept in identity.replaced-<time>) and make a new key',
      );
    }
    if (meta.certificate !== null) {
      throw new ProvisionError(
        'ALREADY_PROVISIONED',
        `this recorder is already provisioned as ${meta.deviceId} (certificate ${meta.certificate.sha256.slice(0, 16)}…, valid until ${meta.certificate.notAfter})`,
        'nothing to do; to replace the identity run again with --force (the old one is kept in identity.replaced-<time>)',
      );
    }
    if (meta.deviceId !== req.deviceId || meta.hardware !== req.hardware) {
      throw new ProvisionError(
        'ALREADY_PROVISIONED',
        `a key for device ${meta.deviceId} (${meta.hardware}) is already waiting for its certificate here`,
        `import the certificate for ${meta.deviceId}, or run again with --force to start over as ${req.deviceId} (the old key is kept aside)`,
      );
    }
    // Same device, no certificate yet: keep the key, re-emit its CSR (idempotent).
    const key = await loadIdentityKey(req.stateDir, meta);
    const csrPem = await createCsr(key, deviceSubject(meta.deviceId, meta.hardware));
    await writeFileAtomic(paths.csr, csrPem, { mode: 0o644, owner: req.owner });
    const outCsr = req.outCsr === null ? null : await writeOutCsr(req.outCsr, meta.deviceId, csrPem);
    return {
      deviceId: meta.deviceId,
      hardware: meta.hardware,
      keyAlgorithm: meta.keyAlgorithm,
      spkiSha256: meta.spkiSha256,
      keyPath: paths.key,
      csrPath: paths.csr,
      outCsr,
      reusedKey: true,
      replacedTo: null,
    };
  }

  // A new identity, built whole beside the final directory.
  await ensureDir(req.stateDir, 0o755);
  const staging = join(req.stateDir, `.identity.${randomBytes(6).toString('hex')}.tmp`);
  const owned = { owner: req.owner };
  let replacedTo: string | null = null;
  let outCsr: string | null = null;
  let result: InitResult;
  try {
    await ensureDir(staging, 0o700, req.owner);
    const key = await generateKey(req.keyAlgorithm);
    const spki = spkiSha256(key.publicKey);
    const csrPem = await createCsr(key, deviceSubject(req.deviceId, req.hardware));
    const meta: IdentityMeta = {
      schema: IDENTITY_SCHEMA,
      deviceId: req.deviceId,
      hardware: req.hardware,
      keyAlgorithm: req.keyAlgorithm,
      spkiSha256: spki,
      createdAt: req.now.toISOString(),
      certificate: null,
    };
    await writeFileAtomic(join(staging, basename(paths.key)), privateKeyPem(key), { mode: 0o600, ...owned });
    await writeFileAtomic(join(staging, basename(paths.csr)), csrPem, { mode: 0o644, ...owned });
    await writeFileAtomic(join(staging, basename(paths.meta)), serializeIdentityMeta(meta), { mode: 0o644, ...owned });

    // The extra copy first: an unwritable USB stick stops the command before anything is published.
    outCsr = req.outCsr === null ? null : await writeOutCsr(req.outCsr, req.deviceId, csrPem);

    if (existing) {
      replacedTo = replacedIdentityDir(req.stateDir, req.now);
      if (await exists(replacedTo)) replacedTo = `${replacedTo}-${randomBytes(3).toString('hex')}`;
      await rename(paths.dir, replacedTo);
    } else if (await exists(paths.dir)) {
      // Only temp leftovers of an interrupted run: clear them so the rename can land.
      await rm(paths.dir, { recursive: true, force: true });
    }
    await rename(staging, paths.dir);
    await fsyncDir(req.stateDir);
    result = {
      deviceId: req.deviceId,
      hardware: req.hardware,
      keyAlgorithm: req.keyAlgorithm,
      spkiSha256: spki,
      keyPath: paths.key,
      csrPath: paths.csr,
      outCsr,
      reusedKey: false,
      replacedTo,
    };
  } catch (err) {
    await rm(staging, { recursive: true, force: true }).catch(() => undefined);
    if (outCsr !== null) await rm(outCsr, { force: true }).catch(() => undefined);
    // The old identity was moved aside but the new one did not land: put the old one back.
    if (replacedTo !== null && !(await exists(paths.dir).catch(() => true))) await rename(replacedTo, paths.dir).catch(() => undefined);
    throw err;
  }
  return result;
}

/** Writes the extra CSR copy; a directory target gets <deviceId>.csr inside it. */
async function writeOutCsr(target: string, deviceId: string, csrPem: string): Promise<string> {
  let path = target;
  try {
    if ((await stat(target)).isDirectory()) path = join(target, `${deviceId}.csr`);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  await writeFileAtomic(path, csrPem, { mode: 0o644 });
  return path;
}
