import type { Socket } from 'node:net';
import { MAX_TIMER_MS } from './timer-limit.js';

/** The open connections of one process, so a stop can wait for them and then cut the rest. */
export class ConnectionTracker {
  readonly sockets = new Set<Socket>();
  private emptyWaiters: (() => void)[] = [];
  /** The 'close' listener of every socket added here: one function per tracker, no closure or property per connection. */
  private readonly untrack: (this: Socket) => void;

  constructor() {
    const tracker = this;
    this.untrack = function (this: Socket) {
      tracker.forget(this);
    };
  }

  get size(): number {
    return this.sockets.size;
  }

  add(socket: Socket): void {
    this.sockets.add(socket);
    socket.on('close', this.untrack);
  }

  /**
   * Open connections still in use. A destroyed one, or one ended both ways, only waits for its
   * 'close' (later in this event-loop turn, or the next): it holds no handler any more.
   */
  inUse(): number {
    let n = 0;
    for (const s of this.sockets) if (!(s.destroyed || (s.readableEnded && s.writableEnded))) n++;
    return n;
  }

  /** `socket` closed. */
  forget(socket: Socket): void {
    if (!this.sockets.delete(socket)) return;
    if (this.sockets.size === 0 && this.emptyWaiters.length > 0)
      for (const w of this.emptyWaiters.splice(0)) w();
  }

  /**
   * Waits until every connection closed or `timeoutMs` passed (at most MAX_TIMER_MS), then
   * destroys what is left.
   * Resolves with the number of connections that had to be destroyed.
   */
  async drain(timeoutMs: number): Promise<number> {
    if (this.sockets.size > 0) {
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([
        new Promise<void>((r) => this.emptyWaiters.push(r)),
        new Promise<void>((r) => {
          timer = setTimeout(r, Math.min(timeoutMs, MAX_TIMER_MS));
        }),
      ]);
      clearTimeout(timer);
    }
    const left = this.sockets.size;
    for (const s of this.sockets) s.destroy();
    return left;
  }
}
