// Connect mode, one load thread's share: each loop connects, writes one body, reads and
// verifies its echo, closes (FIN) and waits for the close, then starts over. A cycle is
// counted when its socket has closed; latency runs from the connect call to the last
// echoed byte.
import type { Socket } from 'node:net';
import { CONNECT_TIMEOUT_MS, type DialFailure, dial, RETRY_MS, socketFailure } from './dial.js';
import { closeGently, type LoadEngine, type LoadShare } from './engine.js';
import { PayloadPattern } from './payload.js';

export class ConnectLoad implements LoadEngine {
  private readonly loops: ConnectLoop[] = [];

  constructor(share: LoadShare) {
    const pattern = new PayloadPattern(share.options.size);
    for (const id of share.connIds) this.loops.push(new ConnectLoop(share, pattern, id));
  }

  start(): void {
    for (const l of this.loops) l.next();
  }

  async stop(): Promise<void> {
    await Promise.all(this.loops.map((l) => l.stop()));
  }
}

class ConnectLoop {
  private running = true;
  private seq = 0;
  private socket: Socket | null = null;
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly share: LoadShare,
    private readonly pattern: PayloadPattern,
    private readonly id: number,
  ) {}

  next(): void {
    this.timer = undefined;
    if (!this.running) return;
    const started = performance.now();
    const body = this.pattern.body(this.id, this.seq++);
    dial(this.share.options.target, (failure, socket) => {
      if (failure) return this.fail(failure);
      if (!this.running) {
        socket.destroy();
        return;
      }
      this.socket = socket;
      let matched = 0;
      this.timer = setTimeout(
        () => this.lost(socket, { kind: 'timeout', code: 'echo timeout' }),
        CONNECT_TIMEOUT_MS,
      );
      socket.on('data', (chunk: Buffer) => {
        const n = Math.min(chunk.length, body.length - matched);
        if (n < chunk.length || chunk.compare(body, matched, matched + n) !== 0) {
          return this.lost(socket, { kind: 'verify', code: undefined });
        }
        matched += n;
        if (matched === body.length) {
          this.share.tally.latency.recordMs(performance.now() - started);
          socket.end();
        }
      });
      socket.on('error', (err) => this.lost(socket, socketFailure(err)));
      socket.on('end', () => {
        if (matched < body.length) this.lost(socket, { kind: 'eof', code: undefined });
      });
      socket.on('close', () => {
        if (socket !== this.socket) return;
        clearTimeout(this.timer);
        this.socket = null;
        if (!this.running) return;
        if (matched < body.length) return this.fail({ kind: 'eof', code: undefined });
        this.share.tally.done += 1;
        this.share.tally.bytes += body.length;
        this.next();
      });
      socket.write(body);
    });
  }

  private lost(socket: Socket, failure: DialFailure): void {
    if (socket !== this.socket) return;
    this.socket = null;
    clearTimeout(this.timer);
    socket.on('error', () => undefined);
    socket.destroy();
    this.fail(failure);
  }

  private fail(failure: DialFailure): void {
    if (!this.running) return;
    this.share.tally.error(failure.kind, failure.code);
    this.timer = setTimeout(() => this.next(), RETRY_MS);
  }

  stop(): Promise<void> {
    this.running = false;
    clearTimeout(this.timer);
    const socket = this.socket;
    this.socket = null;
    return socket ? closeGently(socket) : Promise.resolve();
  }
}
