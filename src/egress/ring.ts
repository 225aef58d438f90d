/**
 * A bounded FIFO of byte chunks between a pipe reader (which must never
 * wait) and a parser (which may lag). When full, new chunks are dropped and
 * counted: losing bytes here shows up as lost events in reconciliation,
 * while a stalled pipe would lose them silently in the kernel.
 */
export class ByteRing {
  private chunks: Buffer[] = [];
  private head = 0;
  private size = 0;
  droppedBytes = 0;
  droppedChunks = 0;
  highWater = 0;

  constructor(readonly capacity: number) {}

  get bytes(): number {
    return this.size;
  }

  push(chunk: Buffer): boolean {
    if (this.size + chunk.length > this.capacity) {
      this.droppedBytes += chunk.length;
      this.droppedChunks++;
      return false;
    }
    this.chunks.push(chunk);
    this.size += chunk.length;
    if (this.size > this.highWater) this.highWater = this.size;
    return true;
  }

  /** Takes up to `max` bytes (whole chunks, at least one when not empty). */
  take(max: number): Buffer | null {
    if (this.head >= this.chunks.length) return null;
    const out: Buffer[] = [];
    let n = 0;
    while (this.head < this.chunks.length && (n === 0 || n + (this.chunks[this.head] as Buffer).length <= max)) {
      const c = this.chunks[this.head++] as Buffer;
      out.push(c);
      n += c.length;
    }
    this.size -= n;
    if (this.head > 1024 || this.head === this.chunks.length) {
      this.chunks = this.chunks.slice(this.head);
      this.head = 0;
    }
    return out.length === 1 ? (out[0] as Buffer) : Buffer.concat(out, n);
  }
}
