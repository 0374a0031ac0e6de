// Request mode, one load thread's share: each connection keeps `depth` requests in flight and
// cuts the bytes it reads into replies with the protocol's check (request-protocol.ts), in
// request order, each timed from its request's write to its last byte. A wrong reply counts as a
// verify error; the connection goes on if the check framed it, else it is closed and reopened
// after RETRY_MS, like a lost one (pipelined-connection.ts). Bytes of an unfinished reply are
// kept up to --max-reply.
import type { Socket } from 'node:net';
import type { LoadEngine, LoadShare } from './engine.js';
import { PipelinedConnection } from './pipelined-connection.js';
import type { RequestProtocol } from './request-protocol.js';

export class RequestLoad implements LoadEngine {
  private readonly conns: RequestConnection[];

  constructor(share: LoadShare, protocol: RequestProtocol) {
    this.conns = share.connIds.map((id) => new RequestConnection(share, protocol, id));
  }

  start(): void {
    for (const c of this.conns) c.open();
  }

  async stop(): Promise<void> {
    await Promise.all(this.conns.map((c) => c.stop()));
  }
}

class RequestConnection extends PipelinedConnection {
  /** Requests written on this connection; the head in flight is request `seq - inFlight`. */
  private seq = 0;
  /** Bytes of the head reply read so far, when a chunk ended inside it. */
  private partial: Buffer = EMPTY;
  private readonly maxReply: number;

  constructor(
    share: LoadShare,
    private readonly protocol: RequestProtocol,
    private readonly id: number,
  ) {
    super(share);
    this.maxReply = share.options.request!.maxReply;
  }

  protected override opened(): void {
    this.seq = 0;
  }

  protected send(socket: Socket): void {
    const request = this.protocol.request(this.seq++, this.id);
    this.sentAt[this.nextSlot()] = performance.now();
    this.inFlight += 1;
    socket.write(request);
  }

  protected onData(socket: Socket, chunk: Buffer): void {
    if (!this.running || socket !== this.socket) return;
    const data = this.partial.length > 0 ? Buffer.concat([this.partial, chunk]) : chunk;
    this.partial = EMPTY;
    const tally = this.share.tally;
    let pos = 0;
    socket.cork();
    try {
      while (pos < data.length) {
        if (this.inFlight === 0) {
          this.lost(socket, { kind: 'verify', code: undefined }); // bytes no request asked for
          return;
        }
        const view = data.subarray(pos);
        const verdict = this.protocol.check(view, this.seq - this.inFlight, this.id);
        if (!verdict.done) {
          if (view.length >= this.maxReply) {
            this.lost(socket, { kind: 'verify', code: undefined });
            return;
          }
          this.partial = Buffer.from(view); // a copy: the chunk is not kept alive
          return;
        }
        if (!verdict.ok && !this.protocol.wrongRepliesFramed) {
          this.lost(socket, { kind: 'verify', code: undefined });
          return;
        }
        pos += verdict.used;
        if (verdict.ok) {
          tally.latency.recordMs(performance.now() - this.sentAt[this.head]!);
          tally.done += 1;
          tally.bytes += verdict.used;
        } else {
          tally.error('verify');
        }
        this.advance();
        this.send(socket);
      }
    } finally {
      socket.uncork();
    }
  }

  protected dropped(): void {
    this.partial = EMPTY;
  }
}

const EMPTY = Buffer.alloc(0);
