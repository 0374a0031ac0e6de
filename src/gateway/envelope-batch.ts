// Envelopes encoded back to back, each behind a u32 big-endian length (the message layer's u32be
// framing), into 64 KiB slabs: what a link writes, or one NATS message carries, per event-loop
// turn. Bytes handed out by take() are never written again (a socket or NATS may still hold them).
// With a bound, a batch that reaches it is handed out at once (the rest of the turn starts the next).
import {
  decodeEnvelope,
  type Envelope,
  encodeEnvelope,
  envelopeSize,
  type RequestFields,
  requestSize,
  type SessionCache,
  writeEnvelopeInto,
  writeRequestInto,
} from './envelope.js';

const PREFIX = 4;
/** Bytes of one slab (a batch bigger than that gets a slab of its size). */
const SLAB_BYTES = 64 * 1024;

/** Where a bounded batch goes when it is full. */
export interface BatchBound {
  /** Bytes of one batch, length prefixes included; only an envelope bigger than this goes alone, bigger. */
  bytes: number;
  /** Envelopes in one batch (>= 1). */
  count: number;
  /** Takes a full batch (called from inside add). */
  full: (bytes: Buffer) => void;
}

export class EnvelopeBatch {
  /** The batch: slab[head, tail). */
  private slab = Buffer.allocUnsafe(0);
  private head = 0;
  private tail = 0;
  /** Envelopes in the batch. */
  private n = 0;

  /**
   * `maxEnvelope`: largest envelope accepted, bytes (a bigger one throws RangeError). `bound`:
   * none, the batch grows until take(); else add() hands a batch to `bound.full` before it would
   * pass `bound.bytes` and once it holds `bound.count` envelopes.
   */
  constructor(
    private readonly maxEnvelope: number,
    private readonly bound?: BatchBound,
  ) {}

  /** Bytes in the batch. */
  get length(): number {
    return this.tail - this.head;
  }

  /** Envelopes in the batch. */
  get count(): number {
    return this.n;
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
    const at = this.reserve(size);
    if (encoded) this.slab.set(encoded, at);
    else writeEnvelopeInto(e, this.slab, at);
    this.added();
  }

  /** As add() for the request envelope of `req` (the hot path: no envelope object is made). */
  addRequest(req: RequestFields): void {
    const size = requestSize(req);
    const at = this.reserve(size); // before reading this.slab: reserve() may move the batch
    writeRequestInto(req, this.slab, at);
    this.added();
  }

  /** Room for an envelope of `size` bytes behind its prefix, which is written; returns where the envelope goes. */
  private reserve(size: number): number {
    if (size > this.maxEnvelope) {
      throw new RangeError(`envelope of ${size} bytes is over the limit of ${this.maxEnvelope}`);
    }
    const need = PREFIX + size;
    const bound = this.bound;
    if (bound && this.n > 0 && this.tail - this.head + need > bound.bytes) bound.full(this.take()!);
    if (need > this.slab.length - this.tail) this.grow(need);
    this.slab.writeUInt32BE(size, this.tail);
    const at = this.tail + PREFIX;
    this.tail += need;
    return at;
  }

  private added(): void {
    this.n++;
    const bound = this.bound;
    if (bound && (this.n >= bound.count || this.tail - this.head >= bound.bytes)) bound.full(this.take()!);
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
    this.n = 0;
    return bytes;
  }
}

/**
 * Every envelope of a batch (as EnvelopeBatch writes it), in order. Throws RangeError on a
 * malformed one. `sessions`: reuses the session of the request before when its fields are the same.
 */
export function decodeBatch(bytes: Uint8Array, each: (e: Envelope) => void, sessions?: SessionCache): void {
  const buf = Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let off = 0;
  while (off < buf.length) {
    if (buf.length - off < PREFIX) throw new RangeError('envelope batch is truncated');
    const size = buf.readUInt32BE(off);
    if (size > buf.length - off - PREFIX) throw new RangeError('envelope batch is truncated');
    each(decodeEnvelope(buf.subarray(off + PREFIX, off + PREFIX + size), sessions));
    off += PREFIX + size;
  }
}
