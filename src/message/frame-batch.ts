// The frames a connection sends while it handles one read chunk, encoded back to back into a
// slab shared by the process (or thread) and written with one socket.write: no buffer, header
// write and stream write per frame. Handlers run one at a time, so one open batch is enough;
// a connection that finds it open for another (a handler sending to a second connection)
// writes directly instead.
import type { Codec } from './codecs/index.js';

/** Bytes of one slab. A batch is taken once it reaches the socket's high-water mark (16 KiB by default). */
const SLAB_BYTES = 64 * 1024;
/** A batch opens on a fresh slab when less than this is left, so it rarely has to move mid-chunk, bytes. */
const SLAB_RESERVE = 16 * 1024;

export class FrameBatch {
  private slab = Buffer.allocUnsafe(0);
  /** The open batch: slab[start, end). Bytes before `start` were taken and are never written again. */
  private start = 0;
  private end = 0;
  private owner: object | undefined;

  /** Opens the batch for `owner`: true, or false (nothing opened) when it is open for another. */
  open(owner: object): boolean {
    if (this.owner !== undefined) return false;
    this.owner = owner;
    if (this.slab.length - this.end < SLAB_RESERVE) this.renew();
    return true;
  }

  /** Closes the batch; what is still in it must have been taken. */
  close(): void {
    this.owner = undefined;
    this.start = this.end;
  }

  /** Bytes in the open batch. */
  get length(): number {
    return this.end - this.start;
  }

  /**
   * Encodes one frame at the end of the batch. False, with nothing appended, when it does not fit
   * in what is left of the slab: take() the batch, then try again (a frame bigger than a whole
   * slab never fits; write it by itself). Throws what `codec.encode` throws.
   */
  append(codec: Codec, msgid: number, body: Uint8Array, seq: number, flags: number): boolean {
    if (codec.encodeInto === undefined) return this.appendBytes(codec.encode(msgid, body, seq, flags));
    let n = codec.encodeInto(this.slab, this.end, msgid, body, seq, flags);
    if (n < 0 && this.renewIfEmpty()) n = codec.encodeInto(this.slab, this.end, msgid, body, seq, flags);
    if (n < 0) return false;
    this.end += n;
    return true;
  }

  /** Copies an encoded frame to the end of the batch; false as for append(). */
  appendBytes(frame: Uint8Array): boolean {
    if (frame.length > this.slab.length - this.end) {
      if (!this.renewIfEmpty() || frame.length > this.slab.length) return false;
    }
    this.slab.set(frame, this.end);
    this.end += frame.length;
    return true;
  }

  /** The batch's bytes (undefined when empty), as a view that is never written again; the batch stays open, empty. */
  take(): Buffer | undefined {
    if (this.start === this.end) return undefined;
    const bytes = this.slab.subarray(this.start, this.end);
    this.start = this.end;
    return bytes;
  }

  /** With the batch empty, moves on to a fresh slab unless this one is all free: true when it did. */
  private renewIfEmpty(): boolean {
    if (this.start !== this.end || (this.end === 0 && this.slab.length === SLAB_BYTES)) return false;
    this.renew();
    return true;
  }

  /** The old slab lives on as long as writes of its bytes are queued. */
  private renew(): void {
    this.slab = Buffer.allocUnsafe(SLAB_BYTES);
    this.start = this.end = 0;
  }
}

/** This process's (thread's) batch, shared by its connections. */
export const frameBatch = new FrameBatch();
