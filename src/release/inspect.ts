/**
 * `glassbox release inspect`: what is inside a bundle, read once as a
 * stream with the verifier's strict reader and layout rules. It lists; it
 * does NOT judge signatures, chains or digests (that needs the trust policy:
 * `glassbox verify`). A layout fault is reported with its rejection code.
 */
import { createReadStream } from 'node:fs';
import { X509Certificate } from 'node:crypto';
import { BundleLayout, type EntryHeader } from '../bundle/layout.js';
import { readTar } from '../bundle/reader.js';
import { BundleRejected, type RejectionCode } from '../bundle/codes.js';
import { parseManifest, manifestSha256 } from '../manifest/parse.js';
import type { Manifest } from '../manifest/types.js';
import { spkiSha256 } from '../trust/fingerprint.js';
import { IoError } from '../errors.js';
import { stat } from 'node:fs/promises';

export interface InspectedEntry {
  readonly path: string;
  readonly size: number;
  /** Byte offset of the entry's header (or pax header) in the bundle. */
  readonly offset: number;
}

export interface InspectedSigner {
  readonly index: number;
  readonly signatureBytes: number;
  /** Leaf subject, or null when the PEM does not parse. */
  readonly subject: string | null;
  readonly issuer: string | null;
  readonly spkiSha256: string | null;
  readonly notAfter: string | null;
  /** Certificates in the PEM (leaf + intermediates). */
  readonly certificates: number;
}

export interface InspectReport {
  readonly path: string;
  readonly bytes: number;
  /** true when the layout (section 1) and manifest (section 2) are well formed. Signatures are NOT checked. */
  readonly wellFormed: boolean;
  readonly code: RejectionCode | null;
  readonly reason: string | null;
  readonly entries: readonly InspectedEntry[];
  readonly manifestSha256: string | null;
  readonly manifest: Pick<Manifest, 'product' | 'version' | 'securityVersion' | 'hardware' | 'released' | 'expires' | 'artifacts'> | null;
  readonly signers: readonly InspectedSigner[];
}

function describeChain(index: number, sig: Buffer, pem: Buffer): InspectedSigner {
  const certificates = (pem.toString('latin1').match(/-----BEGIN CERTIFICATE-----/g) ?? []).length;
  try {
    const leaf = new X509Certificate(pem);
    return {
      index,
      signatureBytes: sig.length,
      subject: leaf.subject.split('\n').join(', '),
      issuer: leaf.issuer.split('\n').join(', '),
      spkiSha256: spkiSha256(leaf),
      notAfter: new Date(leaf.validTo).toISOString(),
      certificates,
    };
  } catch {
    return { index, signatureBytes: sig.length, subject: null, issuer: null, spkiSha256: null, notAfter: null, certificates };
  }
}

/** Lists a bundle's entries, manifest summary and signers. Throws IoError when the file cannot be read. */
export async function inspectBundle(path: string): Promise<InspectReport> {
  let bytes: number;
  try {
    bytes = (await stat(path)).size;
  } catch (err) {
    throw new IoError(`cannot read bundle ${path}: ${(err as Error).message}`, { cause: err });
  }
  const entries: InspectedEntry[] = [];
  const signers: InspectedSigner[] = [];
  const layout = new BundleLayout();
  let manifest: Manifest | null = null;
  let mSha: string | null = null;
  let fault: { code: RejectionCode; reason: string } | null = null;

  let current: { kind: 'manifest' | 'sig' | 'pem' | 'artifact'; parts: Buffer[]; index: number } | null = null;
  let pendingSig: Buffer | null = null;
  const events = readTar(createReadStream(path, { highWaterMark: 1024 * 1024 }));
  try {
    for await (const ev of events) {
      if (ev.kind === 'format') {
        fault = { code: 'BUNDLE_FORMAT', reason: ev.reason };
        break;
      }
      if (ev.kind === 'entry') {
        entries.push({ path: ev.path, size: ev.size, offset: ev.offset });
        const step = layout.entry(ev as EntryHeader);
        if (step.kind === 'reject') {
          fault = { code: step.code, reason: step.reason };
          break;
        }
        if (step.kind === 'manifest') current = { kind: 'manifest', parts: [], index: 0 };
        else if (step.kind === 'signature') current = { kind: step.part, parts: [], index: step.index };
        else {
          current = { kind: 'artifact', parts: [], index: 0 };
          if (manifest) {
            const a = layout.artifact(step.name, ev.size);
            if (a.kind === 'reject') {
              fault = { code: a.code, reason: a.reason };
              break;
            }
          }
        }
      } else if (ev.kind === 'data') {
        if (current && current.kind !== 'artifact') current.parts.push(Buffer.from(ev.chunk));
      } else if (ev.kind === 'entry-end' && current) {
        const body = Buffer.concat(current.parts);
        if (current.kind === 'manifest') {
          mSha = manifestSha256(body);
          try {
            manifest = parseManifest(body);
            layout.setManifestArtifacts(manifest.artifacts);
          } catch (err) {
            fault = err instanceof BundleRejected ? { code: err.code, reason: err.message } : { code: 'MANIFEST_INVALID', reason: String(err) };
            break;
          }
        } else if (current.kind === 'sig') {
          pendingSig = body;
        } else if (current.kind === 'pem') {
          signers.push(describeChain(current.index, pendingSig ?? Buffer.alloc(0), body));
          pendingSig = null;
        }
        current = null;
      } else if (ev.kind === 'end-of-archive') {
        const end = layout.end();
        if (end.kind === 'reject') {
          fault = { code: end.code, reason: end.reason };
          break;
        }
      }
    }
  } finally {
    await events.return(undefined);
  }
  return {
    path,
    bytes,
    wellFormed: fault === null,
    code: fault?.code ?? null,
    reason: fault?.reason ?? null,
    entries,
    manifestSha256: mSha,
    manifest: manifest
      ? {
          product: manifest.product,
          version: manifest.version,
          securityVersion: manifest.securityVersion,
          hardware: manifest.hardware,
          released: manifest.released,
          expires: manifest.expires,
          artifacts: manifest.artifacts,
        }
      : null,
    signers,
  };
}
