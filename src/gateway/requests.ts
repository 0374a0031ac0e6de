// Request correlation in one gateway: every client request gets an id, a deadline and exactly one
// outcome (reply, error, timeout, worker loss). A reply whose id is no longer pending (it timed out,
// or was re-issued under a new id) is dropped and counted: it never reaches a later request.
import { ErrorReply } from '../message/errors.js';
import type { SessionInfo } from './envelope.js';

export interface ReplyValue {
  msgid: number;
  body: Buffer;
}

export type GatewayErrorCode = 'timeout' | 'worker-lost' | 'remote' | 'refused' | 'closed';

/** What a client is told instead of a reply; `message` goes into its error frame (not logged there). */
export class GatewayError extends ErrorReply {
  override name = 'GatewayError';
  constructor(
    readonly code: GatewayErrorCode,
    message: string,
  ) {
    super(message);
  }
}

export interface PendingRequest {
  /** The id of the current attempt (a retry gets a new one). */
  readonly id: number;
  readonly msgid: number;
  readonly body: Buffer;
  readonly session: SessionInfo;
  /** Attempts dispatched so far: 1, or 2 after a retry. */
  readonly attempts: number;
  /** Date.now() by which the client gets an answer, ms. */
  readonly deadline: number;
}

interface Entry extends PendingRequest {
  id: number;
  attempts: number;
  timer: NodeJS.Timeout;
  resolve: (value: ReplyValue | undefined) => void;
  reject: (err: GatewayError) => void;
}

const MAX_ID = 0xffffffff;

export class RequestTable {
  /** Replies (and errors) that came for no pending request: late, or for a re-issued attempt. */
  lateReplies = 0;
  /** Requests answered with a timeout error. */
  timeouts = 0;
  private readonly entries = new Map<number, Entry>();
  private lastId = 0;

  /** `timeoutMs`: from open to the timeout error, ms (> 0). `onTimeout` sees each one (logging). */
  constructor(
    private readonly timeoutMs: number,
    private readonly onTimeout: (req: PendingRequest) => void = () => undefined,
  ) {
    if (!(timeoutMs > 0 && timeoutMs <= 2 ** 31 - 1)) {
      throw new RangeError(`request timeout must be 1..${2 ** 31 - 1} ms, got ${timeoutMs}`);
    }
  }

  get size(): number {
    return this.entries.size;
  }

  /** Opens a request. `reply` resolves with the reply (undefined: the handler sent none) or rejects with a GatewayError. */
  open(
    msgid: number,
    body: Buffer,
    session: SessionInfo,
  ): { request: PendingRequest; reply: Promise<ReplyValue | undefined> } {
    let entry!: Entry;
    const reply = new Promise<ReplyValue | undefined>((resolve, reject) => {
      const id = this.nextId();
      entry = {
        id,
        msgid,
        body,
        session,
        attempts: 1,
        deadline: Date.now() + this.timeoutMs,
        resolve,
        reject,
        timer: setTimeout(() => this.expire(entry), this.timeoutMs),
      };
    });
    this.entries.set(entry.id, entry);
    return { request: entry, reply };
  }

  get(id: number): PendingRequest | undefined {
    return this.entries.get(id);
  }

  /** Settles `id` with its reply. False: nothing pending under `id` (counted as a late reply). */
  resolve(id: number, value: ReplyValue | undefined): boolean {
    const e = this.take(id);
    if (!e) return false;
    e.resolve(value);
    return true;
  }

  /** Settles `id` with an error. False: nothing pending under `id` (counted as a late reply). */
  reject(id: number, err: GatewayError): boolean {
    const e = this.take(id);
    if (!e) return false;
    e.reject(err);
    return true;
  }

  /**
   * Moves a pending request to a fresh id for one more attempt (its deadline is kept), so an
   * answer to the old attempt counts as late. Undefined when `id` is not pending.
   */
  reissue(id: number): PendingRequest | undefined {
    const e = this.entries.get(id);
    if (!e) return undefined;
    this.entries.delete(id);
    e.id = this.nextId();
    e.attempts++;
    this.entries.set(e.id, e);
    return e;
  }

  /** Rejects everything pending (the gateway is going away). */
  rejectAll(err: GatewayError): void {
    for (const id of [...this.entries.keys()]) this.reject(id, err);
  }

  private take(id: number): Entry | undefined {
    const e = this.entries.get(id);
    if (!e) {
      this.lateReplies++;
      return undefined;
    }
    this.entries.delete(id);
    clearTimeout(e.timer);
    return e;
  }

  private expire(e: Entry): void {
    if (this.entries.get(e.id) !== e) return;
    this.entries.delete(e.id);
    this.timeouts++;
    this.onTimeout(e);
    e.reject(new GatewayError('timeout', `request timed out after ${this.timeoutMs} ms`));
  }

  /** Ids wrap at 2^32 and skip ones still pending. */
  private nextId(): number {
    do {
      this.lastId = this.lastId >= MAX_ID ? 1 : this.lastId + 1;
    } while (this.entries.has(this.lastId));
    return this.lastId;
  }
}
