/**
 * Where the daemon learns what firmware is installed. ProvenanceSource is
 * the seam; InstallStateProvenance reads the install module's state dir
 * (state.json, the active slot's manifest.json and signature chains). The
 * slot files are re-read only when state.json's generation or the active
 * slot changes.
 */
import { X509Certificate } from 'node:crypto';
import { statSync } from 'node:fs';
import { join } from 'node:path';
import { sha256Hex, spkiSha256 } from '../trust/fingerprint.js';
import type { ProvenanceSnapshot, SignerSummary, SlotSummary, InstalledFirmware } from '../telemetry/payloads.js';
import type { Manifest } from '../manifest/types.js';
import { STATE_FILE, StateDir } from '../install/state-store.js';
import { JOURNAL_NAME, JOURNAL_ROTATED_NAME } from '../install/journal.js';
import { DirectorySlotStore } from '../install/slot-dir.js';
import { SLOT_IDS, type DeviceState } from '../install/state.js';

export interface ProvenanceSource {
  /** The current snapshot; never throws for an uninitialised device (installed: null). */
  read(): Promise<ProvenanceSnapshot>;
}

/**
 * What the install commands last wrote, as a string that changes whenever
 * they write: inode, size and mtime (ns) of state.json (replaced by rename)
 * and of the journal files (appended, rotated by rename). The daemon reads
 * and parses the state and the journal only when this changes. Three
 * stat(2) calls, synchronous: metadata of a local directory.
 */
export function installStateKey(stateDir: string): string {
  return [STATE_FILE, JOURNAL_NAME, JOURNAL_ROTATED_NAME]
    .map((name) => {
      const st = statSync(join(stateDir, name), { bigint: true, throwIfNoEntry: false });
      return st === undefined ? '-' : `${st.ino}:${st.size}:${st.mtimeNs}:${st.ctimeNs}`;
    })
    .join('|');
}

export const EMPTY_PROVENANCE: ProvenanceSnapshot = { installed: null, activeSlot: null, slots: [], securityFloor: null, trustPolicySha256: null };

/** Subject and SPKI digest of the first certificate of a PEM chain. */
export function leafSummary(chainPem: Buffer): SignerSummary {
  try {
    const cert = new X509Certificate(chainPem);
    return { subject: cert.subject.split('\n').join(', '), spkiSha256: spkiSha256(cert) };
  } catch {
    return { subject: null, spkiSha256: null };
  }
}

/** The installed-firmware summary of a manifest (pure). */
export function installedFrom(manifestBytes: Buffer, signers: readonly SignerSummary[]): InstalledFirmware {
  const manifestSha256 = sha256Hex(manifestBytes);
  const m = JSON.parse(manifestBytes.toString('utf8')) as Manifest;
  const byRole = (role: string) => m.artifacts.find((a) => a.role === role)?.sha256 ?? null;
  return {
    product: m.product ?? null,
    version: m.version,
    manifestSha256,
    securityVersion: m.securityVersion,
    released: m.released ?? null,
    expires: m.expires ?? null,
    signers,
    sbomSha256: byRole('sbom'),
    provenanceSha256: byRole('provenance'),
    sourceRepository: m.provenance?.sourceRepository ?? null,
    sourceCommit: m.provenance?.sourceCommit ?? null,
    builder: m.provenance?.builder ?? null,
  };
}

export function slotsOf(state: DeviceState): SlotSummary[] {
  return SLOT_IDS.map((id) => {
    const s = state.slots[id];
    return { name: id, state: s.state, version: s.version, manifestSha256: s.manifestSha256 };
  });
}

export class InstallStateProvenance implements ProvenanceSource {
  private readonly dir: StateDir;
  private readonly store: DirectorySlotStore;
  private cache: { key: string; installed: InstalledFirmware | null } | null = null;

  constructor(stateDir: string) {
    this.dir = new StateDir(stateDir);
    this.store = new DirectorySlotStore(stateDir);
  }

  /** The device state, or null when the device is not initialised. */
  async state(): Promise<DeviceState | null> {
    if (!(await this.dir.isInitialised())) return null;
    return (await this.dir.read()).state;
  }

  async read(): Promise<ProvenanceSnapshot> {
    const state = await this.state();
    if (state === null) return EMPTY_PROVENANCE;
    const active = state.active === null ? null : state.slots[state.active];
    let installed: InstalledFirmware | null = null;
    if (active !== null && active !== undefined && active.ref !== null) {
      const key = `${state.generation}:${active.ref}`;
      if (this.cache?.key === key) installed = this.cache.installed;
      else {
        const content = this.store.open(active.ref);
        const [manifest, signatures] = await Promise.all([content.readManifest(), content.readSignatures()]);
        installed = installedFrom(manifest, signatures.map((s) => leafSummary(s.chainPem)));
        this.cache = { key, installed };
      }
    }
    return { installed, activeSlot: state.active, slots: slotsOf(state), securityFloor: state.securityFloor, trustPolicySha256: state.trustPolicy };
  }
}
