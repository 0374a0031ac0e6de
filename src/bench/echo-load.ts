// Echo mode, one load thread's share: each connection keeps `depth` requests in flight,
// compares every byte it reads with the reply expected next, and times each message from
// its write to the last byte of its reply (a failed connection: pipelined-connection.ts).
import type { Socket } from 'node:net';
import type { EchoCodec, EchoFramer } from './codec.js';
import type { LoadEngine, LoadShare } from './engine.js';
import { PayloadPattern } from './payload.js';
import { PipelinedConnection } from './pipelined-connection.js';

export class EchoLoad implements LoadEngine {
  private readonly conns: EchoConnection[] = [];

  constructor(share: LoadShare) {
    const pattern = new PayloadPattern(share.options.size);
    for (const id of share.connIds) this.conns.push(new EchoConnection(share, share.codec, pattern, id));
  }

  start(): void {
    for (const c of this.conns) c.open();
  }

  async stop(): Promise<void> {
    await Promise.all(this.conns.map((c) => c.stop()));
  }
}

class EchoConnection extends PipelinedConnection {
  private seq = 0;
  // The replies expected for the requests in flight, in the ring of sentAt.
  private readonly replies: Buffer[];
  private readonly bodyBytes: Uint32Array;
  /** Bytes of the head reply already matched. */
  private matched = 0;
  private readonly framer: EchoFramer;

  constructor(
    share: LoadShare,
    codec: EchoCodec,
    private readonly pattern: PayloadPattern,
    private readonly id: number,
  ) {
    super(share);
    const depth = share.options.depth;
    this.replies = new Array<Buffer>(depth);
    this.bodyBytes = new Uint32Array(depth);
    this.framer = codec.framer(depth);
  }

  protected send(socket: Socket): void {
    const body = this.pattern.body(this.id, this.seq++);
    const request = this.framer.encode(body);
    const slot = this.nextSlot();
    this.replies[slot] = this.framer.expectedReply(body, request);
    this.bodyBytes[slot] = body.length;
    this.sentAt[slot] = performance.now();
    this.inFlight += 1;
    socket.write(request);
  }

  protected onData(socket: Socket, chunk: Buffer): void {
    if (!this.running || socket !== this.socket) return;
    const tally = this.share.tally;
    let pos = 0;
    socket.cork();
    while (pos < chunk.length) {
      if (this.inFlight === 0) {
        this.lost(socket, { kind: 'verify', code: undefined });
        break;
      }
      const expected = this.replies[this.head]!;
      const n = Math.min(expected.length - this.matched, chunk.length - pos);
      if (chunk.compare(expected, this.matched, this.matched + n, pos, pos + n) !== 0) {
        this.lost(socket, { kind: 'verify', code: undefined });
        break;
      }
      pos += n;
      this.matched += n;
      if (this.matched === expected.length) {
        tally.latency.recordMs(performance.now() - this.sentAt[this.head]!);
        tally.done += 1;
        tally.bytes += this.bodyBytes[this.head]!;
        this.replies[this.head] = EMPTY;
        this.advance();
        this.matched = 0;
        this.send(socket);
      }
    }
    socket.uncork();
  }

  protected dropped(): void {
    this.matched = 0;
    this.replies.fill(EMPTY);
  }
}

const EMPTY = Buffer.alloc(0);
