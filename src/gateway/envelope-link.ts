// One socket carrying envelopes, framed with the message layer's u32be codec. Used at both ends
// of the embedded queue's gateway <-> worker links.
import type { Socket } from 'node:net';
import { type Codec, createCodec } from '../message/codecs/index.js';
import type { Logger } from '../types.js';
import { decodeEnvelope, type Envelope, encodeEnvelope } from './envelope.js';

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
  private corked = false;

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
    socket.on('data', (chunk: Buffer) => {
      socket.cork();
      decoder.push(chunk);
      socket.uncork();
    });
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
   * False when the link is closed (the envelope is dropped). Envelopes sent in one tick leave in
   * one write: a syscall per request would cost more than the request itself.
   */
  send(e: Envelope): boolean {
    if (!this.open) return false;
    if (!this.corked) {
      this.corked = true;
      this.socket.cork();
      process.nextTick(this.uncork);
    }
    this.socket.write(this.codec.encode(0, encodeEnvelope(e)));
    return true;
  }

  private readonly uncork = (): void => {
    this.corked = false;
    this.socket.uncork();
  };

  /** Graceful: what was written goes out first. */
  end(reason: string): void {
    this.reason ??= reason;
    this.socket.end();
  }

  destroy(reason: string): void {
    if (this.reason === undefined) this.logger.warn({ reason }, 'queue link closed');
    this.reason ??= reason;
    this.socket.destroy();
  }
}
