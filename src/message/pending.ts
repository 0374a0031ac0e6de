// Requests waiting for their replies, on one connection (or one UDP client).
// With a seq codec a reply names its request by sequence number, so replies may come in any
// order. With every other codec replies come in request order: the oldest waiting request whose
// reply msgid matches takes the next such frame. A request that timed out keeps its place in
// that line (expired) so its late reply is dropped instead of being taken for a later request's.
import { MessageError } from './errors.js';

export interface RequestOptions {
  /** Milliseconds to wait for the reply; Infinity = forever. Default: the client's requestTimeout. */
  timeout?: number;
  /** Codecs without seq: the msgid the reply carries. Default: the request's own msgid. */
  replyMsgid?: number;
  /** MessageClient by service with the `hash` strategy: calls with the same key go to the same host. */
  key?: string;
}

export interface ReplyStats {
  /** Replies that matched no waiting request (late, after their timeout, or unknown): dropped. */
  lateReplies: number;
}

interface Waiter {
  replyMsgid: number;
  resolve: (body: Buffer) => void;
  reject: (err: Error) => void;
  timer: NodeJS.Timeout | undefined;
  expired: boolean;
}

export const DEFAULT_REQUEST_TIMEOUT = 10_000;

export function checkTimeout(ms: number): number {
  if (!(ms > 0)) throw new RangeError(`request timeout must be a positive number of ms, got ${ms}`);
  return ms;
}

export class PendingRequests {
  private readonly bySeq = new Map<number, Waiter>();
  /** In-order mode: waiters oldest first, from `head`. */
  private line: Waiter[] = [];
  private head = 0;
  private nextSeq = 1;

  constructor(
    /** True for a codec with seq (replies matched by seq); false = in order. */
    private readonly withSeq: boolean,
    /** Most requests waiting at once (expired in-order ones included). */
    private readonly limit: number,
    private readonly stats: ReplyStats,
  ) {}

  /** Waiting requests (in order mode, expired ones whose reply has not come are counted). */
  get size(): number {
    return this.withSeq ? this.bySeq.size : this.line.length - this.head;
  }

  /**
   * Registers a request about to be sent; `seq` goes on the wire (0 without a seq codec).
   * Throws MessageError ERR_MESSAGE_TOO_MANY_REQUESTS at the limit.
   */
  open(replyMsgid: number, timeoutMs: number): { seq: number; reply: Promise<Buffer> } {
    if (this.size >= this.limit) {
      throw new MessageError(
        'ERR_MESSAGE_TOO_MANY_REQUESTS',
        `${this.limit} requests are already waiting for replies`,
      );
    }
    let waiter!: Waiter;
    const reply = new Promise<Buffer>((resolve, reject) => {
      waiter = { replyMsgid, resolve, reject, timer: undefined, expired: false };
    });
    const seq = this.withSeq ? this.takeSeq() : 0;
    if (this.withSeq) this.bySeq.set(seq, waiter);
    else this.line.push(waiter);
    if (Number.isFinite(timeoutMs)) {
      waiter.timer = setTimeout(() => {
        waiter.expired = true;
        if (this.withSeq) this.bySeq.delete(seq);
        waiter.reject(new MessageError('ERR_MESSAGE_TIMEOUT', `no reply within ${timeoutMs} ms`));
      }, timeoutMs);
    }
    return { seq, reply };
  }

  /** A REPLY frame of a seq codec. False when no request waits for it (counted as late). */
  settleSeq(seq: number, body: Buffer, isError: boolean): boolean {
    const waiter = this.bySeq.get(seq);
    if (waiter === undefined) {
      this.stats.lateReplies++;
      return false;
    }
    this.bySeq.delete(seq);
    this.finish(waiter, body, isError);
    return true;
  }

  /** In order: true when the frame is the oldest waiting request's reply (taken, or dropped as late). */
  settleInOrder(msgid: number, body: Buffer): boolean {
    if (this.head === this.line.length) return false;
    const waiter = this.line[this.head]!;
    if (waiter.replyMsgid !== msgid) return false;
    this.line[this.head++] = undefined as unknown as Waiter;
    if (this.head === this.line.length) {
      this.line = [];
      this.head = 0;
    } else if (this.head >= 1024 && this.head * 2 >= this.line.length) {
      this.line = this.line.slice(this.head);
      this.head = 0;
    }
    if (waiter.expired) this.stats.lateReplies++;
    else this.finish(waiter, body, false);
    return true;
  }

  /** Withdraws the request just opened (it could not be sent) and fails it with `err`. */
  abandon(seq: number, err: Error): void {
    const waiter = this.withSeq ? this.bySeq.get(seq) : this.line.pop();
    if (waiter === undefined) return;
    if (this.withSeq) this.bySeq.delete(seq);
    clearTimeout(waiter.timer);
    waiter.reject(err);
  }

  /** Fails every waiting request (the connection is gone). */
  rejectAll(err: Error): void {
    const waiters = this.withSeq ? [...this.bySeq.values()] : this.line.slice(this.head);
    this.bySeq.clear();
    this.line = [];
    this.head = 0;
    for (const w of waiters) {
      if (w.expired) continue;
      clearTimeout(w.timer);
      w.reject(err);
    }
  }

  private finish(waiter: Waiter, body: Buffer, isError: boolean): void {
    clearTimeout(waiter.timer);
    if (isError) waiter.reject(new MessageError('ERR_MESSAGE_REMOTE', body.toString('utf8')));
    else waiter.resolve(body);
  }

  private takeSeq(): number {
    for (;;) {
      const seq = this.nextSeq;
      this.nextSeq = seq === 0xffffffff ? 1 : seq + 1;
      if (!this.bySeq.has(seq)) return seq;
    }
  }
}
