// Runs the business handler for request envelopes, whatever queue brought them: at most
// `maxConcurrent` at once (the rest wait in order), each answered exactly once with a reply or an
// error envelope, also when the handler throws, returns garbage, or outlives the request's deadline.
// A throw is logged here, once (the gateway sends the error frame without another line): as an
// answer (info, no stack) or, when it shows a bug (isProgrammerError), as a warning with its stack;
// counted per client address (PeerLog), so one client's failing requests cost a line per second.

import { coarseNow } from '../coarse-clock.js';
import { type Deadlined, DeadlineSlots } from '../deadline-ring.js';
import { answerFields, isProgrammerError } from '../errors.js';
import { ReplyError } from '../message/errors.js';
import { isThenable } from '../message/router.js';
import { PeerLog } from '../throttled-count.js';
import type { Logger } from '../types.js';
import {
  type BusinessHandler,
  type DeliverResult,
  type GatewayContext,
  type GatewayMessage,
  type GatewaySession,
  toReply,
} from './business.js';
import { type Envelope, KIND, type SessionInfo } from './envelope.js';

type RequestEnvelope = Extract<Envelope, { kind: 1 }>;

/** At least this much longer than the client's timeout the worker waits for its handler, ms. */
const WORKER_SLACK_MS = 100;
/** A handler deadline is noticed at most this late, ms (well within the slack). */
const DEADLINE_TOLERANCE_MS = 20;

/** Delivers ctx.send for the request it came with (the queue knows the way). */
export type SendFn = (target: string, msgid: number, body: Buffer) => Promise<DeliverResult>;

/** One request being handled: its context (the handler's `ctx`), its deadline, its one answer. */
class Job implements GatewayContext, Deadlined {
  done = false;
  expired = false;
  /** Made on first use of ctx.signal: most handlers never look at it. */
  controller: AbortController | undefined;
  /** Its place among the deadlines while it runs (key 0: none). */
  deadlineKey = 0;
  deadlineTicket = 0;

  constructor(
    readonly runner: WorkerRunner,
    readonly req: RequestEnvelope,
    readonly sendFn: SendFn,
    readonly answer: (e: Envelope) => void,
  ) {}

  get workerId(): number {
    return this.runner.workerId;
  }

  get logger(): Logger {
    return this.runner.logger;
  }

  get params(): Readonly<Record<string, string>> {
    return this.runner.params;
  }

  get signal(): AbortSignal {
    if (!this.controller) {
      this.controller = new AbortController();
      if (this.expired) this.controller.abort(new Error('request deadline passed'));
    }
    return this.controller.signal;
  }

  send(to: string, msgid: number, body?: Uint8Array | string): Promise<DeliverResult> {
    const bytes = body === undefined ? Buffer.alloc(0) : typeof body === 'string' ? Buffer.from(body) : body;
    return this.sendFn(String(to), msgid, Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes));
  }
}

export class WorkerRunner {
  /** Handlers running now. */
  active = 0;
  /** Requests answered since start. */
  served = 0;
  readonly workerId: number;
  readonly logger: Logger;
  readonly params: Readonly<Record<string, string>>;
  private readonly waiting: Job[] = [];
  private waitHead = 0;
  private idleWaiters: (() => void)[] = [];
  /** Lines a client can cause once per request (a handler's throw). */
  private readonly peerLog: PeerLog;
  private lastInfo: SessionInfo | undefined;
  private lastSession: GatewaySession | undefined;
  /** One timer for every running handler's deadline. */
  private readonly deadlines = new DeadlineSlots<Job>((job) => this.expire(job), {
    toleranceMs: DEADLINE_TOLERANCE_MS,
  });

  constructor(
    private readonly handler: BusinessHandler,
    private readonly opts: {
      workerId: number;
      logger: Logger;
      maxConcurrent: number;
      params: Readonly<Record<string, string>>;
    },
  ) {
    this.workerId = opts.workerId;
    this.logger = opts.logger;
    this.params = opts.params;
    this.peerLog = new PeerLog(opts.logger);
  }

  /** Requests waiting for a free slot. */
  get queued(): number {
    return this.waiting.length - this.waitHead;
  }

  /** Runs (or queues) one request; `answer` is called exactly once with its reply or error envelope. */
  run(req: RequestEnvelope, send: SendFn, answer: (e: Envelope) => void): void {
    const job = new Job(this, req, send, answer);
    if (this.active >= this.opts.maxConcurrent) this.waiting.push(job);
    else this.start(job);
  }

  /** Resolves once nothing runs and nothing waits. */
  idle(): Promise<void> {
    if (this.active === 0 && this.queued === 0) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  private start(job: Job): void {
    const { req } = job;
    this.active++;
    // The client's timeout is the gateway's; the worker stops waiting a little later, so that
    // its own error does not overtake the gateway's timeout error (it arrives late, and is dropped).
    if (req.timeoutMs !== 0) {
      const wait = req.timeoutMs + Math.max(WORKER_SLACK_MS, req.timeoutMs / 10);
      this.deadlines.add(job, coarseNow() + wait);
    }
    const msg: GatewayMessage = { msgid: req.msgid, body: req.body, session: this.sessionOf(req.session) };
    let result: unknown;
    try {
      result = this.handler(msg, job);
    } catch (err) {
      this.finish(job, this.failed(err, req));
      return;
    }
    if (isThenable(result)) {
      result.then(
        (value) => this.finish(job, this.replied(value, req)),
        (err: unknown) => this.finish(job, this.failed(err, req)),
      );
    } else {
      // Answered after this call returns, as a promise's callback would be: the caller never sees
      // its answer arrive from inside run().
      queueMicrotask(() => this.finish(job, this.replied(result, req)));
    }
  }

  /**
   * The handler's view of a request's session, made once for a run of requests that share their
   * SessionInfo (the queue's decoder reuses it for a session's requests in a row).
   */
  private sessionOf(info: SessionInfo): GatewaySession {
    if (info !== this.lastInfo) {
      this.lastInfo = info;
      this.lastSession = {
        id: info.id,
        name: info.name === '' ? undefined : info.name,
        remoteAddress: info.remoteAddress,
        remotePort: info.remotePort,
      };
    }
    return this.lastSession!;
  }

  private replied(value: unknown, req: RequestEnvelope): Envelope {
    let reply: ReturnType<typeof toReply>;
    try {
      reply = toReply(value, req.msgid);
    } catch (err) {
      return this.failed(err, req);
    }
    if (!reply) return { kind: KIND.none, id: req.id };
    return { kind: KIND.reply, id: req.id, msgid: reply.msgid, body: reply.body };
  }

  private failed(err: unknown, req: RequestEnvelope): Envelope {
    const message = err instanceof Error ? err.message : String(err);
    const peer = req.session.remoteAddress || 'unknown';
    const where = { msgid: req.msgid, session: req.session.id };
    if (err instanceof ReplyError)
      this.peerLog.debug({ peer, msg: 'error reply sent', fields: { ...where, reason: message } });
    else if (isProgrammerError(err))
      this.peerLog.warn({ peer, msg: 'business handler failed', fields: { err, ...where } });
    else
      this.peerLog.info({ peer, msg: 'business handler failed', fields: { ...where, ...answerFields(err) } });
    return { kind: KIND.error, id: req.id, message: message || 'business handler failed' };
  }

  private expire(job: Job): void {
    job.expired = true;
    job.controller?.abort(new Error('request deadline passed'));
    this.finish(job, {
      kind: KIND.error,
      id: job.req.id,
      message: `handler did not finish within ${job.req.timeoutMs} ms`,
    });
  }

  private finish(job: Job, answer: Envelope): void {
    if (job.done) return;
    job.done = true;
    this.deadlines.remove(job);
    job.answer(answer);
    this.active--;
    this.served++;
    if (this.waitHead < this.waiting.length) {
      const next = this.waiting[this.waitHead]!;
      this.waiting[this.waitHead++] = undefined as unknown as Job;
      if (this.waitHead === this.waiting.length) {
        this.waiting.length = 0;
        this.waitHead = 0;
      }
      this.start(next);
    } else if (this.active === 0) for (const w of this.idleWaiters.splice(0)) w();
  }
}
