// One socket carrying envelopes, framed with the message layer's u32be codec. Used at both ends
// of the embedded queue's gateway <-> worker links.
import type { Socket } from 'node:net';
import { type Codec, createCodec } from '../message/codecs/index.js';
import type { Logger } from '../types.js';
import {
  decodeEnvelope,
  type Envelope,
  encodeEnvelope,
  envelopeSize,
  writeEnvelopeInto,
} from './envelope.js';

/** Room for the envelope's own fields on top of the largest client body, bytes. */
const HEADROOM = 4096;
/** The u32be frame header. */
const PREFIX = 4;
/** Output is encoded into slabs of this size; a frame bigger than one is written by itself, bytes. */
const SLAB_BYTES = 64 * 1024;

export function linkCodec(maxBody: number): Codec {
  return createCodec('u32be', { maxBody: maxBody + HEADROOM });
}

export class EnvelopeLink {
  /** Resolves with the reason once the socket has closed. */
  readonly closed: Promise<string>;
  private reason: string | undefined;
  private isClosed = false;
  /** Output not yet written: slab[head, tail). Bytes before `head` were written and are never reused. */
  private slab = Buffer.allocUnsafe(0);
  private head = 0;
  private tail = 0;
  private flushScheduled = false;

  constructor(
    readonly socket: Socket,
    private readonly codec: Codec,
    onEnvelope: (e: Envelope, link: EnvelopeLink) => void,
    private readonly logger: Logger,
  ) {
    let resolveClosed!: (r: string) => void;
    this.closed = new Promise((r) => {
      resolveClosed = r;
    });
    socket.setNoDelay(true);
    const decoder = codec.createDecoder({
      frame: (_msgid, body) => {
        let e: Envelope;
        try {
          e = decodeEnvelope(body);
        } catch (err) {
          this.destroy(`bad envelope: ${(err as Error).message}`);
          return;
        }
        onEnvelope(e, this);
      },
      error: (reason) => this.destroy(`bad frame: ${reason}`),
    });
    socket.on('data', (chunk: Buffer) => decoder.push(chunk));
    socket.on('error', (err: NodeJS.ErrnoException) => {
      this.reason ??= `socket error: ${err.code ?? err.message}`;
    });
    socket.on('end', () => {
      this.reason ??= 'closed by the other end';
      socket.end();
    });
    socket.on('close', () => {
      this.isClosed = true;
      decoder.stop();
      resolveClosed(this.reason ?? 'closed');
    });
  }

  get open(): boolean {
    return !this.isClosed && this.socket.writable;
  }

  /**
   * False when the link is closed (the envelope is dropped). Envelopes are encoded back to back
   * into a slab and leave once per event-loop turn (setImmediate), in one write: everything the
   * reads of one poll phase produced, rather than a syscall (or a writev entry) per envelope.
   * Throws RangeError for an envelope the link cannot carry (as encodeEnvelope).
   */
  send(e: Envelope): boolean {
    if (!this.open) return false;
    let size = envelopeSize(e);
    const encoded = size < 0 ? encodeEnvelope(e) : undefined;
    if (encoded) size = encoded.length;
    if (size > this.codec.maxBody) throw new RangeError(`envelope of ${size} bytes is over the link's limit`);
    if (PREFIX + size > this.slab.length - this.tail) this.makeRoom(PREFIX + size);
    if (PREFIX + size > this.slab.length - this.tail) {
      // Bigger than a slab: by itself, after what is pending.
      const out = Buffer.allocUnsafe(PREFIX + size);
      out.writeUInt32BE(size, 0);
      if (encoded) out.set(encoded, PREFIX);
      else writeEnvelopeInto(e, out, PREFIX);
      this.flush();
      this.socket.write(out);
      return true;
    }
    this.slab.writeUInt32BE(size, this.tail);
    if (encoded) this.slab.set(encoded, this.tail + PREFIX);
    else writeEnvelopeInto(e, this.slab, this.tail + PREFIX);
    this.tail += PREFIX + size;
    if (!this.flushScheduled) {
      this.flushScheduled = true;
      setImmediate(this.flush);
    }
    return true;
  }

  /** Writes what is pending now; the slab's written part is never reused. */
  private readonly flush = (): void => {
    this.flushScheduled = false;
    if (this.head === this.tail) return;
    const bytes = this.slab.subarray(this.head, this.tail);
    this.head = this.tail;
    if (!this.isClosed) this.socket.write(bytes);
  };

  /** Out with what is pending, onto a fresh slab when `bytes` do not fit in the rest of this one. */
  private makeRoom(bytes: number): void {
    this.flush();
    if (bytes <= SLAB_BYTES) {
      this.slab = Buffer.allocUnsafe(SLAB_BYTES);
      this.head = this.tail = 0;
    }
  }

  /** Graceful: what was sent goes out first. */
  end(reason: string): void {
    this.reason ??= reason;
    this.flush();
    this.socket.end();
  }

  destroy(reason: string): void {
    if (this.reason === undefined) this.logger.warn({ reason }, 'queue link closed');
    this.reason ??= reason;
    this.socket.destroy();
  }
}
