// Request correlation in one gateway: every client request gets an id, a deadline and exactly one
// outcome (reply, error, timeout, worker loss). A reply whose id is no longer pending (it timed out,
// or was re-issued under a new id) is dropped and counted: it never reaches a later request.
// Deadlines share one timer (deadline-ring.ts): no timer or promise per request.

import { coarseNow } from '../coarse-clock.js';
import { DeadlineRing } from '../deadline-ring.js';
import { ReplyError } from '../message/errors.js';
import type { SessionInfo } from './envelope.js';
import { PENDING, type Slot } from './server/session.js';

export interface ReplyValue {
  msgid: number;
  body: Buffer;
}

export type GatewayErrorCode = 'timeout' | 'worker-lost' | 'remote' | 'refused' | 'closed';

/**
 * What a client is told instead of a reply; `message` goes into its error frame (an answer, not a
 * failure: no stack in the log). A 'remote' error was logged by the worker whose handler threw it.
 */
export class GatewayError extends ReplyError {
  override name = 'GatewayError';
  constructor(
    override readonly code: GatewayErrorCode,
    message: string,
  ) {
    super(message, { logged: code === 'remote' });
  }
}

/** What one request gets: a reply, nothing (the handler sent none), or an error. */
export type Outcome = ReplyValue | undefined | GatewayError;

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
  /** What was left of the client's timeout when it was last sent (toSend), ms; the whole timeout at open. */
  readonly timeoutMs: number;
  /** Whatever `open` was given as its owner (the gateway: the client's session). */
  readonly owner: unknown;
}

/**
 * An open request is also its answer's place in its session's line (codecs without seq), so a
 * request costs one object, not a request, a slot and a callback.
 */
export type OpenRequest = PendingRequest & Slot;

interface Entry extends PendingRequest, Slot {
  id: number;
  attempts: number;
  body: Buffer;
  timeoutMs: number;
  done: (outcome: Outcome, req: OpenRequest) => void;
  /** Its place in the deadline ring until it settles. */
  deadlineTicket: number;
}

const MAX_ID = 0xffffffff;
/** A waiting request's body view may pin a read buffer of up to this many times its length, plus PINNED_SLACK bytes. */
const PINNED_PER_BODY = 4;
const PINNED_SLACK = 1024;
/** A timeout error comes at most this late, ms. */
const DEADLINE_TOLERANCE_MS = 10;

export class RequestTable {
  /** Replies (and errors) that came for no pending request: late, or for a re-issued attempt. */
  lateReplies = 0;
  /** Requests answered with a timeout error. */
  timeouts = 0;
  /** Requests settled with their reply (or none, when the handler sent none). */
  replied = 0;
  /** Requests settled with an error (the worker's, a lost worker, the gateway stopping). */
  failed = 0;
  /** --metrics: each reply's time since the request opened, seconds (rounded to the ms clock). */
  onRoundTrip: ((seconds: number) => void) | undefined;
  private readonly entries = new Map<number, Entry>();
  /** Keyed by request id. */
  private readonly deadlines = new DeadlineRing((id) => this.expire(id), {
    toleranceMs: DEADLINE_TOLERANCE_MS,
  });
  private lastId = 0;
  /** The ids went past 2^32 once: from then on a new id skips the ones still pending. */
  private wrapped = false;

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

  /**
   * Opens a request; `done` is called exactly once, later (never from inside open), with its reply,
   * undefined (the handler sent none) or a GatewayError, and the request. `done` may be one
   * function for every request, finding what it needs in `owner`.
   */
  open(
    msgid: number,
    body: Buffer,
    session: SessionInfo,
    done: (outcome: Outcome, req: OpenRequest) => void,
    owner?: unknown,
  ): OpenRequest {
    const deadline = coarseNow() + this.timeoutMs;
    const entry: Entry = {
      id: this.nextId(),
      msgid,
      body,
      session,
      attempts: 1,
      deadline,
      timeoutMs: this.timeoutMs,
      done,
      owner,
      outcome: PENDING,
      cost: 0,
      deadlineTicket: 0,
    };
    entry.deadlineTicket = this.deadlines.add(entry.id, deadline);
    this.entries.set(entry.id, entry);
    return entry;
  }

  get(id: number): PendingRequest | undefined {
    return this.entries.get(id);
  }

  /** Settles `id` with its reply. False: nothing pending under `id` (counted as a late reply). */
  resolve(id: number, value: ReplyValue | undefined): boolean {
    const e = this.take(id);
    if (!e) return false;
    this.replied++;
    if (this.onRoundTrip) this.onRoundTrip((Date.now() - (e.deadline - this.timeoutMs)) / 1000);
    e.done(value, e);
    return true;
  }

  /** Settles `id` with an error. False: nothing pending under `id` (counted as a late reply). */
  reject(id: number, err: GatewayError): boolean {
    const e = this.take(id);
    if (!e) return false;
    this.failed++;
    e.done(err, e);
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
    this.deadlines.remove(e.deadlineTicket, id);
    e.id = this.nextId();
    e.attempts++;
    this.entries.set(e.id, e);
    e.deadlineTicket = this.deadlines.add(e.id, e.deadline);
    return e;
  }

  /**
   * `r` (a request of this table) ready for a queue: its timeout set to what is left of its
   * deadline (at least 1 ms). The entry itself, not an object per request: a queue encodes or
   * copies what it sends at once. `now`: the clock (Date.now()) when the caller read it once
   * for several requests.
   */
  toSend(r: PendingRequest, now = Date.now()): PendingRequest {
    const e = r as Entry;
    e.timeoutMs = Math.max(1, e.deadline - now);
    return e;
  }

  /**
   * `r` (a request of this table) is going to wait: it keeps its own copy of its body when the
   * body's view pins a read buffer much larger than itself (a read is shrunk to the bytes read,
   * so the usual read of a few frames is pinned as it is: at most 4 times the body and 1 KiB).
   */
  ownBody(r: PendingRequest): void {
    const e = r as Entry;
    if (e.body.buffer.byteLength > PINNED_PER_BODY * e.body.length + PINNED_SLACK)
      e.body = Buffer.from(e.body);
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
    this.deadlines.remove(e.deadlineTicket, id);
    return e;
  }

  private expire(id: number): void {
    const e = this.entries.get(id);
    if (e === undefined) return;
    this.entries.delete(id);
    this.timeouts++;
    this.onTimeout(e);
    e.done(new GatewayError('timeout', `request timed out after ${this.timeoutMs} ms`), e);
  }

  /** Ids wrap at 2^32 and then skip ones still pending (before that, none can be). */
  private nextId(): number {
    do {
      if (this.lastId >= MAX_ID) {
        this.lastId = 1;
        this.wrapped = true;
      } else this.lastId++;
    } while (this.wrapped && this.entries.has(this.lastId));
    return this.lastId;
  }
}
