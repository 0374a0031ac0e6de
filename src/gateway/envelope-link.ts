// One socket carrying envelopes, framed with the message layer's u32be codec. Used at both ends
// of the embedded queue's gateway <-> worker links.
import type { Socket } from 'node:net';
import { type Codec, createCodec } from '../message/codecs/index.js';
import type { Logger } from '../types.js';
import { decodeEnvelope, type Envelope } from './envelope.js';
import { EnvelopeBatch } from './envelope-batch.js';

/** Room for the envelope's own fields on top of the largest client body, bytes. */
const HEADROOM = 4096;

export function linkCodec(maxBody: number): Codec {
  return createCodec('u32be', { maxBody: maxBody + HEADROOM });
}

export class EnvelopeLink {
  /** Resolves with the reason once the socket has closed. */
  readonly closed: Promise<string>;
  private reason: string | undefined;
  private isClosed = false;
  /** Output not yet written. */
  private readonly out: EnvelopeBatch;
  private flushScheduled = false;

  constructor(
    readonly socket: Socket,
    codec: Codec,
    onEnvelope: (e: Envelope, link: EnvelopeLink) => void,
    private readonly logger: Logger,
  ) {
    let resolveClosed!: (r: string) => void;
    this.closed = new Promise((r) => {
      resolveClosed = r;
    });
    socket.setNoDelay(true);
    this.out = new EnvelopeBatch(codec.maxBody);
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
   * (EnvelopeBatch) and leave once per event-loop turn (setImmediate), in one write: everything
   * the reads of one poll phase produced, rather than a syscall (or a writev entry) per envelope.
   * Throws RangeError for an envelope the link cannot carry.
   */
  send(e: Envelope): boolean {
    if (!this.open) return false;
    this.out.add(e);
    if (!this.flushScheduled) {
      this.flushScheduled = true;
      setImmediate(this.flush);
    }
    return true;
  }

  private readonly write = (bytes: Buffer): void => {
    if (!this.isClosed) this.socket.write(bytes);
  };

  /** Writes what is batched now. */
  private readonly flush = (): void => {
    this.flushScheduled = false;
    const bytes = this.out.take();
    if (bytes) this.write(bytes);
  };

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
