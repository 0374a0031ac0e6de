// The incremental decoder shared by every codec whose header announces the body length
// (lars, seq, tdhb, u32be). A subclass only reads its header.
//
// Whole frames are cut out of the chunk they arrived in (a view, no copy). Only a frame split
// across chunks is copied, into a buffer that grows with the bytes that actually arrived (at most
// twice them), never to the announced length up front: a peer cannot make us reserve memory
// by announcing a large frame and sending nothing.
import type { Decoder, FrameSink } from './codec.js';

export abstract class LengthPrefixedDecoder implements Decoder {
  /** Set by `readHeader` for the frame whose header it just read. */
  protected msgid = 0;
  protected seq = 0;
  protected flags = 0;
  /** Set by `readHeader` when it returns -1. */
  protected reason = '';

  private dead = false;
  /** Bytes of the unfinished frame: acc[0, accLen). */
  private acc: Buffer | undefined;
  private accLen = 0;
  /** Header + body length of the unfinished frame, once its header is in; -1 before. */
  private need = -1;

  constructor(
    private readonly sink: FrameSink,
    /** Bytes. */
    private readonly headerLength: number,
  ) {}

  /**
   * Reads the header at buf[off, off + headerLength): returns the body length (bytes, within
   * the limit) and sets msgid/seq/flags, or returns -1 and sets `reason`.
   */
  protected abstract readHeader(buf: Buffer, off: number): number;

  get buffered(): number {
    return this.accLen;
  }

  stop(): void {
    this.dead = true;
    this.acc = undefined;
    this.accLen = 0;
  }

  push(chunk: Buffer): boolean {
    if (this.dead) return false;
    if (this.accLen === 0) return this.scan(chunk, 0);
    return this.continueFrame(chunk);
  }

  /** Cuts whole frames out of buf[off..]; keeps a copy of a trailing partial frame. */
  private scan(buf: Buffer, off: number): boolean {
    const hl = this.headerLength;
    const end = buf.length;
    while (end - off >= hl) {
      const len = this.readHeader(buf, off);
      if (len < 0) return this.fail();
      const stop = off + hl + len;
      if (stop > end) {
        this.need = hl + len;
        break;
      }
      this.sink.frame(this.msgid, buf.subarray(off + hl, stop), this.seq, this.flags);
      if (this.dead) return false;
      off = stop;
    }
    if (off < end) this.append(buf, off, end);
    return true;
  }

  /** The unfinished frame takes what it still needs from `chunk`; the rest is scanned. */
  private continueFrame(chunk: Buffer): boolean {
    let off = 0;
    const hl = this.headerLength;
    if (this.need < 0) {
      off = Math.min(hl - this.accLen, chunk.length);
      this.append(chunk, 0, off);
      if (this.accLen < hl) return true;
      const len = this.readHeader(this.acc!, 0);
      if (len < 0) return this.fail();
      this.need = hl + len;
    }
    const take = Math.min(this.need - this.accLen, chunk.length - off);
    this.append(chunk, off, off + take);
    off += take;
    if (this.accLen < this.need) return true;
    // readHeader ran last for this frame (at the break in scan or just above): msgid/seq/flags are its own.
    const frame = this.acc!;
    const need = this.need;
    this.acc = undefined;
    this.accLen = 0;
    this.need = -1;
    this.sink.frame(this.msgid, frame.subarray(hl, need), this.seq, this.flags);
    if (this.dead) return false;
    return off < chunk.length ? this.scan(chunk, off) : true;
  }

  private append(src: Buffer, start: number, end: number): void {
    const n = end - start;
    if (n === 0) return;
    const required = this.accLen + n;
    if (this.acc === undefined || required > this.acc.length) {
      // Room for twice what arrived, never past the frame's own length (or the header, before it is in).
      const limit = this.need >= 0 ? this.need : this.headerLength;
      const grown = Buffer.allocUnsafe(Math.max(required, Math.min(2 * required, limit)));
      if (this.acc !== undefined) this.acc.copy(grown, 0, 0, this.accLen);
      this.acc = grown;
    }
    src.copy(this.acc, this.accLen, start, end);
    this.accLen = required;
  }

  private fail(): false {
    this.stop();
    this.sink.error(this.reason);
    return false;
  }
}
