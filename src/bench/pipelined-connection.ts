// What the echo and request modes share: one connection that keeps `depth` requests in flight
// (times of the writes in a ring from `head`), is reopened after RETRY_MS when it fails, and
// counts a reply outstanding for more than STALL_MS at the stop as stalled. A mode says how a
// request is written and how the bytes read are matched against the replies expected.
import type { Socket } from 'node:net';
import { type DialFailure, dial, RETRY_MS, socketFailure } from './dial.js';
import { closeGently, type LoadShare } from './engine.js';
import { STALL_MS } from './tally.js';

export abstract class PipelinedConnection {
  protected socket: Socket | null = null;
  protected running = true;
  private retry: NodeJS.Timeout | undefined;
  /** performance.now() ms of each request in flight: a ring from `head`. */
  protected readonly sentAt: Float64Array;
  protected head = 0;
  protected inFlight = 0;

  constructor(protected readonly share: LoadShare) {
    this.sentAt = new Float64Array(share.options.depth);
  }

  /** Writes the next request on `socket`, recording it in the ring. */
  protected abstract send(socket: Socket): void;
  /** Reads replies out of `chunk`. */
  protected abstract onData(socket: Socket, chunk: Buffer): void;
  /** The connection is (re)opened: the mode's per-connection state starts over. */
  protected opened(): void {}
  /** The connection failed: what it had in flight is dropped. */
  protected abstract dropped(): void;

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
      this.opened();
      socket.on('data', (chunk: Buffer) => this.onData(socket, chunk));
      socket.on('error', (err) => this.lost(socket, socketFailure(err)));
      socket.on('end', () => this.lost(socket, { kind: 'eof', code: undefined }));
      socket.cork();
      for (let i = 0; i < this.share.options.depth; i++) this.send(socket);
      socket.uncork();
    });
  }

  /** The slot of the next request written: the ring entry after those in flight. */
  protected nextSlot(): number {
    return (this.head + this.inFlight) % this.sentAt.length;
  }

  /** The head reply is complete: the ring moves on. */
  protected advance(): void {
    this.head = (this.head + 1) % this.sentAt.length;
    this.inFlight -= 1;
  }

  /** An open connection failed: count it, drop what was in flight, reconnect later. */
  protected lost(socket: Socket, failure: DialFailure): void {
    if (socket !== this.socket) return;
    this.socket = null;
    socket.on('error', () => undefined);
    socket.destroy();
    if (this.running) this.fail(failure);
  }

  private fail(failure: DialFailure): void {
    this.head = 0;
    this.inFlight = 0;
    this.dropped();
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
