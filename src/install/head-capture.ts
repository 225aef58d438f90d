/**
 * Keeps the signature pairs of a bundle that is being verified, without a
 * second read of the bundle: the verifier's source is passed through a tap
 * that copies the archive's first HEAD_MAX_BYTES (manifest and signature
 * entries always come first and are bounded by the layout's limits). Once
 * the verifier has accepted the bundle, the copied head is framed with the
 * project's strict tar reader and the `signatures/<k>.sig|.pem` entries are
 * taken from it. The bytes are the very bytes the verifier judged.
 */
import { readTar } from '../bundle/reader.js';
import { CHAIN_PEM_MAX_BYTES, MAX_SIGNERS, SIGNATURE_MAX_BYTES } from '../bundle/layout.js';
import { MANIFEST_MAX_BYTES } from '../manifest/types.js';
import type { SignaturePair } from './slot.js';

/** Manifest + 16 pairs at their limits + headers / pax records for each entry. */
export const HEAD_MAX_BYTES = MANIFEST_MAX_BYTES + MAX_SIGNERS * (SIGNATURE_MAX_BYTES + CHAIN_PEM_MAX_BYTES) + (1 + 2 * MAX_SIGNERS) * 3 * 1024 + 1024;

export class HeadCapture {
  #parts: Buffer[] = [];
  #kept = 0;

  /** Wraps a byte source; every chunk passes through unchanged. */
  async *tap(source: AsyncIterable<Buffer | Uint8Array>): AsyncGenerator<Buffer, void, void> {
    for await (const raw of source) {
      const chunk = Buffer.isBuffer(raw) ? raw : Buffer.from(raw.buffer, raw.byteOffset, raw.byteLength);
      if (this.#kept < HEAD_MAX_BYTES) {
        const take = chunk.subarray(0, HEAD_MAX_BYTES - this.#kept);
        // Copy: the source may reuse its buffers once the chunk is consumed.
        this.#parts.push(Buffer.from(take));
        this.#kept += take.length;
      }
      yield chunk;
    }
  }

  /** The signature pairs in the captured head, in index order. */
  async signatures(): Promise<SignaturePair[]> {
    const head = Buffer.concat(this.#parts);
    const sigs = new Map<number, { signature?: Buffer; chainPem?: Buffer }>();
    let current: { index: number; kind: 'sig' | 'pem'; parts: Buffer[] } | null = null;
    const source = (async function* () {
      yield head;
    })();
    for await (const ev of readTar(source)) {
      if (ev.kind === 'entry') {
        if (ev.path.startsWith('artifacts/')) break;
        const m = /^signatures\/([1-9][0-9]{0,2})\.(sig|pem)$/.exec(ev.path);
        current = m ? { index: Number(m[1]), kind: m[2] as 'sig' | 'pem', parts: [] } : null;
      } else if (ev.kind === 'data') {
        current?.parts.push(Buffer.from(ev.chunk));
      } else if (ev.kind === 'entry-end') {
        if (current) {
          const rec = sigs.get(current.index) ?? {};
          if (current.kind === 'sig') rec.signature = Buffer.concat(current.parts);
          else rec.chainPem = Buffer.concat(current.parts);
          sigs.set(current.index, rec);
        }
        current = null;
      } else {
        break;
      }
    }
    const out: SignaturePair[] = [];
    for (const [index, rec] of [...sigs.entries()].sort((a, b) => a[0] - b[0])) {
      if (rec.signature && rec.chainPem) out.push({ index, signature: rec.signature, chainPem: rec.chainPem });
    }
    this.#parts = [];
    return out;
  }
}
