/**
 * Facts about the recorder read from its own files (edge): the identity
 * record and key file, the device state (install module), the trust policy
 * in force and the installed firmware. Nothing here judges; checks.ts does.
 */
import { X509Certificate } from 'node:crypto';
import { lstat } from 'node:fs/promises';
import { GlassboxError, describeError } from '../errors.js';
import { DirectorySlotStore } from '../install/slot-dir.js';
import { StateDir } from '../install/state-store.js';
import { reverifySlot } from '../install/reverify.js';
import { SLOT_IDS, type DeviceState } from '../install/state.js';
import { parseManifest } from '../manifest/parse.js';
import type { Manifest } from '../manifest/types.js';
import { deviceIdOf } from '../pki/certs.js';
import { identityPaths, META_MAX_BYTES, parseIdentityMeta } from '../provision/identity.js';
import { readBounded } from '../provision/files.js';
import { validityOf } from '../provision/judge.js';
import { splitPemCertificates } from '../trust/chain.js';
import { certSha256, spkiSha256 } from '../trust/fingerprint.js';
import { loadTrustAnchors } from '../trust/policy.js';
import type { TrustAnchors } from '../trust/types.js';
import type { InstalledFirmware, SignerSummary } from '../telemetry/payloads.js';
import type { FirmwareFacts, IdentityFacts, TrustFacts } from './types.js';

export const CERT_MAX_BYTES = 64 * 1024;

/** Identity facts, or null when not provisioned at all; throws only on I/O it cannot explain. */
export async function readIdentityFacts(stateDir: string, expectedOwner: { uid: number; gid: number } | null = null): Promise<{ identity: IdentityFacts | null; error: string | null }> {
  const paths = identityPaths(stateDir);
  let metaBytes: Buffer | null;
  try {
    metaBytes = await readBounded(paths.meta, META_MAX_BYTES, 'identity record', true);
  } catch (err) {
    return { identity: null, error: describeError(err) };
  }
  if (metaBytes === null) return { identity: null, error: null };
  let meta;
  try {
    meta = parseIdentityMeta(metaBytes, paths.meta);
  } catch (err) {
    return { identity: null, error: describeError(err).split('\n')[0] ?? 'identity record unreadable' };
  }
  let keyFile: IdentityFacts['keyFile'] = null;
  try {
    const st = await lstat(paths.key);
    if (st.isFile()) keyFile = { path: paths.key, mode: st.mode & 0o7777, uid: st.uid, gid: st.gid };
  } catch {
    keyFile = null;
  }
  let certificate: IdentityFacts['certificate'] = null;
  if (meta.certificate !== null) {
    const pem = await readBounded(paths.cert, CERT_MAX_BYTES, 'device certificate', true).catch(() => null);
    const cert = pem === null ? null : firstCertificate(pem);
    if (cert !== null && certSha256(cert) === meta.certificate.sha256) {
      const v = validityOf(cert);
      certificate = {
        sha256: certSha256(cert),
        serial: cert.serialNumber.toLowerCase(),
        subject: cert.subject.replace(/\n/g, ', '),
        issuer: cert.issuer.replace(/\n/g, ', '),
        notBefore: v.notBefore.toISOString(),
        notAfter: v.notAfter.toISOString(),
      };
      if (deviceIdOf(cert) !== meta.deviceId) return { identity: null, error: `${paths.cert} names another device than ${paths.meta}` };
    } else {
      return { identity: null, error: `${paths.cert} is missing or is not the certificate recorded in ${paths.meta}` };
    }
  }
  return {
    identity: { deviceId: meta.deviceId, hardware: meta.hardware, keyAlgorithm: meta.keyAlgorithm, spkiSha256: meta.spkiSha256, certificate, keyFile, expectedOwner },
    error: null,
  };
}

function firstCertificate(pem: Buffer): X509Certificate | null {
  const { ders } = splitPemCertificates(pem.toString('latin1'));
  const der = ders[0];
  if (der === undefined) return null;
  try {
    return new X509Certificate(der);
  } catch {
    return null;
  }
}

export interface DeviceFacts {
  readonly state: DeviceState | null;
  readonly anchors: TrustAnchors | null;
  readonly trust: TrustFacts | null;
  readonly firmware: FirmwareFacts;
}

function trustFacts(anchors: TrustAnchors): TrustFacts {
  return { sha256: anchors.sha256, roots: anchors.roots.map((r) => r.subject.replace(/\n/g, ', ')), threshold: anchors.policy.threshold };
}

function signerOf(chainPem: Buffer): SignerSummary {
  const cert = firstCertificate(chainPem);
  return cert === null ? { subject: null, spkiSha256: null } : { subject: cert.subject.replace(/\n/g, ', '), spkiSha256: spkiSha256(cert) };
}

function installedOf(manifest: Manifest, manifestSha256: string, signers: SignerSummary[]): InstalledFirmware {
  const byRole = (role: string) => manifest.artifacts.find((a) => a.role === role)?.sha256 ?? null;
  return {
    product: manifest.product,
    version: manifest.version,
    manifestSha256,
    securityVersion: manifest.securityVersion,
    released: manifest.released,
    expires: manifest.expires,
    signers,
    sbomSha256: byRole('sbom'),
    provenanceSha256: byRole('provenance'),
    sourceRepository: manifest.provenance.sourceRepository,
    sourceCommit: manifest.provenance.sourceCommit,
    builder: manifest.provenance.builder,
  };
}

const NO_FIRMWARE = { activeSlot: null, securityFloor: null, installed: null, slots: [], verification: null, egressRules: null, lastBoot: null } as const;

/**
 * Reads the device state, its trust policy and the active slot. `verify`
 * re-checks the active slot's signatures and every artifact digest
 * (install/reverify.ts): reads the whole firmware, so it is opt-in for
 * `status` and always on for the provisioning checklist.
 */
export async function readDeviceFacts(stateDir: string, opts: { verify: boolean; now: Date }): Promise<DeviceFacts> {
  const dir = new StateDir(stateDir);
  let state: DeviceState;
  try {
    state = (await dir.read()).state;
  } catch (err) {
    const notInit = err instanceof GlassboxError && err.code === 'NOT_INITIALISED';
    return {
      state: null,
      anchors: null,
      trust: null,
      firmware: { ...NO_FIRMWARE, error: notInit ? 'device state not initialised (no trust policy, no slots): provision import or `glassbox device init` creates it' : describeError(err) },
    };
  }
  let anchors: TrustAnchors | null = null;
  let trustError: string | null = null;
  try {
    anchors = loadTrustAnchors(await dir.readTrust(state.trustPolicy));
  } catch (err) {
    trustError = describeError(err);
  }
  const slots = SLOT_IDS.map((id) => ({ name: id, state: state.slots[id].state, version: state.slots[id].version, manifestSha256: state.slots[id].manifestSha256 }));
  const base = {
    activeSlot: state.active,
    securityFloor: state.securityFloor,
    slots,
    lastBoot: state.lastBoot ? { at: state.lastBoot.at, outcome: state.lastBoot.outcome, reason: state.lastBoot.reason } : null,
  };
  const trust = anchors ? trustFacts(anchors) : null;
  if (trustError !== null) return { state, anchors, trust, firmware: { ...base, installed: null, verification: null, egressRules: null, error: trustError } };
  const record = state.active === null ? null : state.slots[state.active];
  if (record === null || record.ref === null || record.manifestSha256 === null) {
    return { state, anchors, trust, firmware: { ...base, installed: null, verification: null, egressRules: null, error: null } };
  }
  const content = new DirectorySlotStore(stateDir).open(record.ref);
  let installed: InstalledFirmware | null = null;
  let egressRules: FirmwareFacts['egressRules'] = null;
  let verification: FirmwareFacts['verification'] = null;
  try {
    const manifest = parseManifest(await content.readManifest());
    const signers = (await content.readSignatures()).map((p) => signerOf(p.chainPem));
    installed = installedOf(manifest, record.manifestSha256, signers);
    egressRules = manifest.egress;
  } catch (err) {
    verification = { ok: false, code: (err as { code?: string }).code ?? 'SLOT_REFUSED', reason: describeError(err), at: opts.now.toISOString(), deep: false };
  }
  if (verification === null) {
    if (opts.verify && anchors) {
      const outcome = await reverifySlot(content, record, state, anchors);
      verification = { ok: outcome.ok, code: outcome.code, reason: outcome.reason, at: opts.now.toISOString(), deep: true };
    } else if (record.verifiedAt !== null) {
      verification = { ok: true, code: null, reason: `verified at install (${record.verifiedAt})`, at: record.verifiedAt, deep: false };
    }
  }
  return { state, anchors, trust, firmware: { ...base, installed, verification, egressRules, error: null } };
}
