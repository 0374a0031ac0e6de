// Request mode, one load thread's share: each connection keeps `depth` requests in flight and
// cuts the bytes it reads into replies with the protocol's check (request-protocol.ts), in
// request order, each timed from its request's write to its last byte. A wrong reply counts as a
// verify error; the connection goes on if the check framed it, else it is closed and reopened
// after RETRY_MS, like a lost one. Bytes of an unfinished reply are kept up to --max-reply.
import type { Socket } from 'node:net';
import { type DialFailure, dial, RETRY_MS, socketFailure } from './dial.js';
import { closeGently, type LoadEngine, type LoadShare } from './engine.js';
import type { RequestProtocol } from './request-protocol.js';
import { STALL_MS } from './tally.js';

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

class RequestConnection {
  private socket: Socket | null = null;
  private running = true;
  private retry: NodeJS.Timeout | undefined;
  /** Requests written on this connection; the head in flight is request `seq - inFlight`. */
  private seq = 0;
  private inFlight = 0;
  /** performance.now() ms of each request in flight: a ring from `head`. */
  private readonly sentAt: Float64Array;
  private head = 0;
  /** Bytes of the head reply read so far, when a chunk ended inside it. */
  private partial: Buffer = EMPTY;
  private readonly maxReply: number;

  constructor(
    private readonly share: LoadShare,
    private readonly protocol: RequestProtocol,
    private readonly id: number,
  ) {
    this.sentAt = new Float64Array(share.options.depth);
    this.maxReply = share.options.request!.maxReply;
  }

  open(): void {
    this.retry = undefined;
    if (!this.running) return;
    dial(this.share.options.target, (failure, socket) => {
      if (failure) return this.fail(failure);
      if (!this.running) {
        socket.destroy();
        return;
      }
      this.socket = socket;
      this.seq = 0;
      socket.on('data', (chunk: Buffer) => this.onData(socket, chunk));
      socket.on('error', (err) => this.lost(socket, socketFailure(err)));
      socket.on('end', () => this.lost(socket, { kind: 'eof', code: undefined }));
      socket.cork();
      for (let i = 0; i < this.share.options.depth; i++) this.send(socket);
      socket.uncork();
    });
  }

  private send(socket: Socket): void {
    const request = this.protocol.request(this.seq++, this.id);
    this.sentAt[(this.head + this.inFlight) % this.sentAt.length] = performance.now();
    this.inFlight += 1;
    socket.write(request);
  }

  private onData(socket: Socket, chunk: Buffer): void {
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
        this.head = (this.head + 1) % this.sentAt.length;
        this.inFlight -= 1;
        this.send(socket);
      }
    } finally {
      socket.uncork();
    }
  }

  /** An open connection failed: count it, drop what was in flight, reconnect later. */
  private lost(socket: Socket, failure: DialFailure): void {
    if (socket !== this.socket) return;
    this.socket = null;
    socket.on('error', () => undefined);
    socket.destroy();
    if (this.running) this.fail(failure);
  }

  private fail(failure: DialFailure): void {
    this.head = 0;
    this.inFlight = 0;
    this.partial = EMPTY;
    if (!this.running) return;
    this.share.tally.error(failure.kind, failure.code);
    this.retry = setTimeout(() => this.open(), RETRY_MS);
  }

  /** Stops counting; a reply outstanding for more than STALL_MS counts as stalled. */
  stop(): Promise<void> {
    this.running = false;
    clearTimeout(this.retry);
    const socket = this.socket;
    if (!socket) return Promise.resolve();
    if (this.inFlight > 0 && performance.now() - this.sentAt[this.head]! > STALL_MS) {
      this.share.tally.error('stalled');
    }
    return closeGently(socket);
  }
}

const EMPTY = Buffer.alloc(0);
