// Envelopes encoded back to back, each behind a u32 big-endian length (the message layer's u32be
// framing), into 64 KiB slabs: what a link writes, or one NATS message carries, per event-loop
// turn. Bytes handed out by take() are never written again (a socket or NATS may still hold them).
import {
  decodeEnvelope,
  type Envelope,
  encodeEnvelope,
  envelopeSize,
  writeEnvelopeInto,
} from './envelope.js';

const PREFIX = 4;
/** Bytes of one slab (a batch bigger than that gets a slab of its size). */
const SLAB_BYTES = 64 * 1024;

export class EnvelopeBatch {
  /** The batch: slab[head, tail). */
  private slab = Buffer.allocUnsafe(0);
  private head = 0;
  private tail = 0;

  /** `maxEnvelope`: largest envelope accepted, bytes (a bigger one throws RangeError). */
  constructor(private readonly maxEnvelope: number) {}

  /** Bytes in the batch. */
  get length(): number {
    return this.tail - this.head;
  }

  /**
   * Appends `e`; the batch moves to a larger (or fresh) slab when the rest of this one is too
   * small. Throws RangeError for an envelope over the limit or with a string too long, appending
   * nothing.
   */
  add(e: Envelope): void {
    let size = envelopeSize(e);
    const encoded = size < 0 ? encodeEnvelope(e) : undefined;
    if (encoded) size = encoded.length;
    if (size > this.maxEnvelope) {
      throw new RangeError(`envelope of ${size} bytes is over the limit of ${this.maxEnvelope}`);
    }
    const need = PREFIX + size;
    if (need > this.slab.length - this.tail) this.grow(need);
    this.slab.writeUInt32BE(size, this.tail);
    if (encoded) this.slab.set(encoded, this.tail + PREFIX);
    else writeEnvelopeInto(e, this.slab, this.tail + PREFIX);
    this.tail += need;
  }

  /** A fresh slab with the batch so far at its start and room for `need` more bytes. */
  private grow(need: number): void {
    const pending = this.tail - this.head;
    const next = Buffer.allocUnsafe(Math.max(SLAB_BYTES, pending + need));
    this.slab.copy(next, 0, this.head, this.tail);
    this.slab = next;
    this.head = 0;
    this.tail = pending;
  }

  /** The batch's bytes (undefined when empty); the batch is empty afterwards. */
  take(): Buffer | undefined {
    if (this.head === this.tail) return undefined;
    const bytes = this.slab.subarray(this.head, this.tail);
    this.head = this.tail;
    return bytes;
  }
}

/** Every envelope of a batch (as EnvelopeBatch writes it), in order. Throws RangeError on a malformed one. */
export function decodeBatch(bytes: Uint8Array, each: (e: Envelope) => void): void {
  const buf = Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let off = 0;
  while (off < buf.length) {
    if (buf.length - off < PREFIX) throw new RangeError('envelope batch is truncated');
    const size = buf.readUInt32BE(off);
    if (size > buf.length - off - PREFIX) throw new RangeError('envelope batch is truncated');
    each(decodeEnvelope(buf.subarray(off + PREFIX, off + PREFIX + size)));
    off += PREFIX + size;
  }
}
