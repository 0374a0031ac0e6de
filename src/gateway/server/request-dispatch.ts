// Hands pending requests to the queue: straight to a worker with room when nothing waits, else in
// arrival order once one has room (bounded: --max-waiting). A request lost with its worker is
// answered with an error, or (--retry-on-crash) sent once more under a new id.
import type { Logger } from '../../types.js';
import type { GatewayQueue } from '../queues/queue.js';
import { GatewayError, type PendingRequest, type RequestTable } from '../requests.js';

export interface RequestDispatchOptions {
  /** Requests waiting for a worker with room; one more is refused. */
  maxWaiting: number;
  /** Send a request lost with a crashed worker to another worker once (idempotent handlers only). */
  retryOnCrash: boolean;
  logger: Logger;
}

export class RequestDispatch {
  retries = 0;
  lostToCrashes = 0;
  resent = 0;
  private queue: GatewayQueue | undefined;
  /** Requests waiting for a worker with room, oldest first, from `waitHead`. */
  private waiting: PendingRequest[] = [];
  private waitHead = 0;

  constructor(
    private readonly requests: RequestTable,
    private readonly opts: RequestDispatchOptions,
  ) {}

  attach(queue: GatewayQueue): void {
    this.queue = queue;
  }

  /** Requests waiting for a worker. */
  get waitingCount(): number {
    return this.waiting.length - this.waitHead;
  }

  /** `justOpened`: `r` was opened in this call stack, so its whole timeout is left (no clock read). */
  submit(r: PendingRequest, justOpened = false): void {
    if (
      this.waitHead === this.waiting.length &&
      this.queue?.dispatch(justOpened ? r : this.requests.toSend(r))
    )
      return;
    // It waits: a view may not pin a large read buffer for that long.
    this.requests.ownBody(r);
    if (this.waiting.length - this.waitHead >= this.opts.maxWaiting) {
      this.requests.reject(
        r.id,
        new GatewayError(
          'refused',
          `gateway overloaded: ${this.opts.maxWaiting} requests already wait for a worker`,
        ),
      );
      return;
    }
    this.waiting.push(r);
  }

  /** A worker has room: send what waits, oldest first; skip what timed out meanwhile. */
  pump(): void {
    const now = Date.now(); // one clock read for the lot: a pump takes well under a millisecond
    while (this.waitHead < this.waiting.length) {
      const r = this.waiting[this.waitHead]!;
      if (this.requests.get(r.id) === r) {
        if (!this.queue?.dispatch(this.requests.toSend(r, now))) break;
      }
      this.waiting[this.waitHead++] = undefined as unknown as PendingRequest;
    }
    if (this.waitHead === this.waiting.length) {
      this.waiting = [];
      this.waitHead = 0;
    } else if (this.waitHead > 1024 && this.waitHead * 2 > this.waiting.length) {
      this.waiting = this.waiting.slice(this.waitHead);
      this.waitHead = 0;
    }
  }

  /** These requests reached no worker: each goes out again under its id (nobody can answer the old send). */
  resend(ids: number[]): void {
    for (const id of ids) {
      const r = this.requests.get(id);
      if (!r) continue;
      this.resent++;
      this.submit(r);
    }
  }

  /** These requests were with a worker that is gone. */
  lost(ids: number[], reason: string): void {
    const log = this.opts.logger;
    for (const id of ids) {
      const r = this.requests.get(id);
      if (!r) continue;
      this.lostToCrashes++;
      if (this.opts.retryOnCrash && r.attempts < 2) {
        const again = this.requests.reissue(id)!;
        this.retries++;
        log.warn(
          { msgid: r.msgid, session: r.session.id, reason },
          'worker lost a request; retrying it once',
        );
        this.submit(again);
      } else {
        log.warn({ msgid: r.msgid, session: r.session.id, reason }, 'worker lost a request; error sent');
        this.requests.reject(
          id,
          new GatewayError('worker-lost', `the worker died before replying (${reason})`),
        );
      }
    }
    this.pump();
  }
}
