// Connect mode, one load thread's share, closed loop: each loop runs one ConnectCycle after
// the other (a failed one is retried after RETRY_MS). The open loop of --rate is
// paced-connect-load.ts; both are made of the same cycle.
import type { Socket } from 'node:net';
import { CONNECT_TIMEOUT_MS, type DialFailure, dial, RETRY_MS, socketFailure } from './dial.js';
import { closeGently, type LoadEngine, type LoadShare } from './engine.js';
import { PayloadPattern } from './payload.js';
import { STALL_MS } from './tally.js';

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
  private cycle: ConnectCycle | null = null;
  private retry: NodeJS.Timeout | undefined;

  constructor(
    private readonly share: LoadShare,
    private readonly pattern: PayloadPattern,
    private readonly id: number,
  ) {}

  next(): void {
    if (!this.running) return;
    const body = this.pattern.body(this.id, this.seq++);
    this.cycle = new ConnectCycle(this.share, body, performance.now(), (ok) => {
      this.cycle = null;
      if (ok) this.next();
      else this.retry = setTimeout(() => this.next(), RETRY_MS);
    });
  }

  stop(): Promise<void> {
    this.running = false;
    clearTimeout(this.retry);
    return this.cycle ? this.cycle.stop() : Promise.resolve();
  }
}

/**
 * One connect, write of `body`, verified echo, close (FIN) and wait for the close; it starts
 * when constructed. It counts itself in the share's tally: latency from `startedMs`
 * (performance.now() ms) to the last echoed byte, then `done` and `bytes` once the socket has
 * closed, or one error. `ended(ok)` is called once, when the cycle is over, unless stop() came
 * first.
 */
export class ConnectCycle {
  private running = true;
  private socket: Socket | null = null;
  private timer: NodeJS.Timeout | undefined;
  private matched = 0;
  /** performance.now() ms of the write; undefined until connected. */
  private writtenAt: number | undefined;

  constructor(
    private readonly share: LoadShare,
    private readonly body: Buffer,
    private readonly startedMs: number,
    private readonly ended: (ok: boolean) => void,
  ) {
    dial(share.options.target, (failure, socket) => {
      if (failure) return this.fail(failure);
      if (!this.running) {
        socket.destroy();
        return;
      }
      this.use(socket);
    });
  }

  private use(socket: Socket): void {
    const { body } = this;
    this.socket = socket;
    this.timer = setTimeout(
      () => this.lost(socket, { kind: 'timeout', code: 'echo timeout' }),
      CONNECT_TIMEOUT_MS,
    );
    socket.on('data', (chunk: Buffer) => {
      const n = Math.min(chunk.length, body.length - this.matched);
      if (n < chunk.length || chunk.compare(body, this.matched, this.matched + n) !== 0) {
        return this.lost(socket, { kind: 'verify', code: undefined });
      }
      this.matched += n;
      if (this.matched === body.length) {
        this.share.tally.latency.recordMs(performance.now() - this.startedMs);
        socket.end();
      }
    });
    socket.on('error', (err) => this.lost(socket, socketFailure(err)));
    socket.on('end', () => {
      if (this.matched < body.length) this.lost(socket, { kind: 'eof', code: undefined });
    });
    socket.on('close', () => {
      if (socket !== this.socket) return;
      clearTimeout(this.timer);
      this.socket = null;
      if (!this.running) return;
      if (this.matched < body.length) return this.fail({ kind: 'eof', code: undefined });
      this.running = false;
      this.share.tally.done += 1;
      this.share.tally.bytes += body.length;
      this.ended(true);
    });
    this.writtenAt = performance.now();
    socket.write(body);
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
    this.running = false;
    this.share.tally.error(failure.kind, failure.code);
    this.ended(false);
  }

  /** Ends the cycle where it is; an echo missing STALL_MS after its write counts as `stalled`. */
  stop(): Promise<void> {
    if (!this.running) return Promise.resolve();
    this.running = false;
    clearTimeout(this.timer);
    const socket = this.socket;
    this.socket = null;
    if (
      socket &&
      this.matched < this.body.length &&
      this.writtenAt !== undefined &&
      performance.now() - this.writtenAt > STALL_MS
    ) {
      this.share.tally.error('stalled', undefined);
    }
    return socket ? closeGently(socket) : Promise.resolve();
  }
}
