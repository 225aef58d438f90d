/**
 * Re-verifying a slot without its bundle (boot confirmation, rollback).
 *
 * The slot's files are streamed back into the bundle layout (manifest,
 * signature pairs, artifacts in manifest order, then any extra file found
 * in artifacts/) and judged by the same verifier as an install, so there is
 * one judge. Tar headers are encoded by node-tar. What is checked:
 *   - manifest.json is byte-identical to what the state recorded (sha256):
 *     swapping a slot for another, validly signed, older release is refused;
 *   - signatures, chains and threshold against the device's current policy
 *     (so a key revoked since the install is refused);
 *   - every artifact's size and sha256, no artifact missing, none extra.
 * The time of judgement is the slot's own verification time (recorded at
 * install): the question is "are these still the bytes that were accepted",
 * not "would this bundle be accepted today", so a manifest that expired
 * after a correct install does not brick the recorder.
 */
import { Header, Pax } from 'tar';
import { verifyBundle } from '../bundle/verify.js';
import type { VerifyReport } from '../bundle/types.js';
import type { TrustAnchors } from '../trust/types.js';
import { parseManifest } from '../manifest/parse.js';
import { InstallError } from './errors.js';
import type { SlotContent } from './slot.js';
import type { DeviceState, SlotRecord } from './state.js';
import { sha256Hex } from './state-store.js';

const BLOCK = 512;
const MTIME = new Date(0);

function headerBytes(path: string, size: number): Buffer {
  const h = new Header({ path, type: 'File', size, mode: 0o644, uid: 0, gid: 0, mtime: MTIME });
  const block = Buffer.alloc(BLOCK);
  const needPax = h.encode(block);
  if (!needPax) return block;
  return Buffer.concat([new Pax({ path, size, mtime: MTIME }).encode(), block]);
}

function pad(size: number): Buffer {
  return Buffer.alloc((BLOCK - (size % BLOCK)) % BLOCK);
}

/** Exactly `size` bytes of an artifact file; fewer (file shrank while read) ends the stream short, which the verifier calls truncation. */
async function* exactly(source: AsyncIterable<Buffer>, size: number): AsyncGenerator<Buffer, void, void> {
  let left = size;
  for await (const chunk of source) {
    if (left === 0) break;
    const piece = chunk.length > left ? chunk.subarray(0, left) : chunk;
    left -= piece.length;
    yield piece;
  }
}

export async function* slotAsBundle(content: SlotContent, manifestBytes: Buffer): AsyncGenerator<Buffer, void, void> {
  yield headerBytes('manifest.json', manifestBytes.length);
  yield manifestBytes;
  yield pad(manifestBytes.length);
  for (const p of await content.readSignatures()) {
    for (const [ext, bytes] of [['sig', p.signature], ['pem', p.chainPem]] as const) {
      yield headerBytes(`signatures/${p.index}.${ext}`, bytes.length);
      yield bytes;
      yield pad(bytes.length);
    }
  }
  let order: string[] = [];
  try {
    order = parseManifest(manifestBytes).artifacts.map((a) => a.name);
  } catch {
    // The verifier reports the manifest problem itself.
  }
  const present = await content.listArtifacts();
  const names = [...order.filter((n) => present.includes(n)), ...present.filter((n) => !order.includes(n))];
  for (const name of names) {
    const size = await content.artifactSize(name);
    yield headerBytes(`artifacts/${name}`, size);
    yield* exactly(content.readArtifact(name), size);
    yield pad(size);
  }
  yield Buffer.alloc(2 * BLOCK);
}

export interface ReverifyOutcome {
  readonly ok: boolean;
  /** Bundle rejection code, SLOT_REFUSED (manifest swapped / unreadable), or null. */
  readonly code: string | null;
  readonly reason: string;
  readonly report: VerifyReport | null;
}

export async function reverifySlot(content: SlotContent, record: SlotRecord, state: DeviceState, trust: TrustAnchors): Promise<ReverifyOutcome> {
  let manifestBytes: Buffer;
  try {
    manifestBytes = await content.readManifest();
  } catch (err) {
    return { ok: false, code: 'SLOT_REFUSED', reason: `manifest.json of the slot cannot be read: ${(err as Error).message}`, report: null };
  }
  const sha = sha256Hex(manifestBytes);
  if (sha !== record.manifestSha256) {
    return { ok: false, code: 'SLOT_REFUSED', reason: `manifest.json of the slot changed since install (sha256 ${sha}, recorded ${record.manifestSha256 ?? 'none'})`, report: null };
  }
  const at = new Date(record.verifiedAt ?? state.trustedTime);
  let report: VerifyReport;
  try {
    report = await verifyBundle(slotAsBundle(content, manifestBytes), { trust, at, hardware: state.hardware, securityFloor: 0 });
  } catch (err) {
    if (err instanceof InstallError) return { ok: false, code: err.code, reason: err.message, report: null };
    const code = (err as { code?: unknown }).code;
    return { ok: false, code: 'SLOT_REFUSED', reason: `slot files cannot be read: ${(err as Error).message}${typeof code === 'string' ? ` (${code})` : ''}`, report: null };
  }
  if (!report.ok) return { ok: false, code: report.code, reason: report.reason, report };
  return { ok: true, code: null, reason: 'slot files verify against their manifest', report };
}
