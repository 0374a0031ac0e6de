// One socket carrying envelopes, framed with the message layer's u32be codec. Used at both ends
// of the embedded queue's gateway <-> worker links.
import type { Socket } from 'node:net';
import { type Codec, createCodec } from '../message/codecs/index.js';
import type { Logger } from '../types.js';
import { decodeEnvelope, type Envelope, FIXED, KIND, type RequestFields, SessionCache } from './envelope.js';
import { EnvelopeBatch } from './envelope-batch.js';

/** Room for the envelope's own fields on top of the largest client body, bytes. */
const HEADROOM = 4096;
/**
 * One write carries at most this many bytes (unless it is one bigger envelope) and this many
 * envelopes; what a turn sends past that goes in further writes, the first ones at once.
 */
export const LINK_BATCH_BYTES = 64 * 1024;
export const LINK_BATCH_ENVELOPES = 512;

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
  /** The session of the last request read (a worker reads many of one session in a row). */
  private readonly sessions = new SessionCache();

  constructor(
    readonly socket: Socket,
    codec: Codec,
    onEnvelope: (e: Envelope, link: EnvelopeLink) => void,
    private readonly logger: Logger,
    bound: { bytes: number; count: number } = { bytes: LINK_BATCH_BYTES, count: LINK_BATCH_ENVELOPES },
    /**
     * The gateway's side: reply envelopes (most of what it reads) come here as their fields,
     * without an Envelope object each; everything else goes to `onEnvelope`.
     */
    onReply?: (id: number, msgid: number, body: Buffer) => void,
  ) {
    let resolveClosed!: (r: string) => void;
    this.closed = new Promise((r) => {
      resolveClosed = r;
    });
    socket.setNoDelay(true);
    this.out = new EnvelopeBatch(codec.maxBody, { ...bound, full: this.write });
    const decoder = codec.createDecoder({
      frame: (_msgid, body) => {
        if (onReply !== undefined && body.length >= FIXED && body[0] === KIND.reply) {
          onReply(body.readUInt32LE(1), body.readInt32LE(5), body.subarray(FIXED));
          return;
        }
        let e: Envelope;
        try {
          e = decodeEnvelope(body, this.sessions);
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
   * A batch that reaches the bound is written at once. One envelope alone leaves in the turn it
   * was sent in: there is no timer. Throws RangeError for an envelope the link cannot carry.
   */
  send(e: Envelope): boolean {
    if (!this.open) return false;
    this.out.add(e);
    this.scheduleFlush();
    return true;
  }

  /** As send() for a request envelope (no envelope object is made for it). */
  sendRequest(req: RequestFields): boolean {
    if (!this.open) return false;
    this.out.addRequest(req);
    this.scheduleFlush();
    return true;
  }

  private scheduleFlush(): void {
    if (this.flushScheduled) return;
    this.flushScheduled = true;
    setImmediate(this.flush);
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
