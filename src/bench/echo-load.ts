// Echo mode, one load thread's share: each connection keeps `depth` requests in flight,
// compares every byte it reads with the reply expected next, and times each message from
// its write to the last byte of its reply. A failed connection is counted and reopened
// after RETRY_MS until the run stops.
import type { Socket } from 'node:net';
import type { EchoCodec, EchoFramer } from './codec.js';
import { type DialFailure, dial, RETRY_MS, socketFailure } from './dial.js';
import { closeGently, type LoadEngine, type LoadShare } from './engine.js';
import { PayloadPattern } from './payload.js';
import { STALL_MS } from './tally.js';

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

class EchoConnection {
  private socket: Socket | null = null;
  private running = true;
  private seq = 0;
  private retry: NodeJS.Timeout | undefined;
  // FIFO of requests in flight, at most `depth`: ring buffers indexed from `head`.
  private readonly replies: Buffer[];
  private readonly bodyBytes: Uint32Array;
  /** performance.now() ms at write */
  private readonly sentAt: Float64Array;
  private head = 0;
  private inFlight = 0;
  /** Bytes of the head reply already matched. */
  private matched = 0;
  private readonly framer: EchoFramer;

  constructor(
    private readonly share: LoadShare,
    codec: EchoCodec,
    private readonly pattern: PayloadPattern,
    private readonly id: number,
  ) {
    const depth = share.options.depth;
    this.replies = new Array<Buffer>(depth);
    this.bodyBytes = new Uint32Array(depth);
    this.sentAt = new Float64Array(depth);
    this.framer = codec.framer(depth);
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
      socket.on('data', (chunk: Buffer) => this.onData(socket, chunk));
      socket.on('error', (err) => this.lost(socket, socketFailure(err)));
      socket.on('end', () => this.lost(socket, { kind: 'eof', code: undefined }));
      socket.cork();
      for (let i = 0; i < this.share.options.depth; i++) this.send(socket);
      socket.uncork();
    });
  }

  private send(socket: Socket): void {
    const body = this.pattern.body(this.id, this.seq++);
    const request = this.framer.encode(body);
    const slot = (this.head + this.inFlight) % this.replies.length;
    this.replies[slot] = this.framer.expectedReply(body, request);
    this.bodyBytes[slot] = body.length;
    this.sentAt[slot] = performance.now();
    this.inFlight += 1;
    socket.write(request);
  }

  private onData(socket: Socket, chunk: Buffer): void {
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
        this.head = (this.head + 1) % this.replies.length;
        this.inFlight -= 1;
        this.matched = 0;
        this.send(socket);
      }
    }
    socket.uncork();
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
    this.matched = 0;
    this.replies.fill(EMPTY);
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
