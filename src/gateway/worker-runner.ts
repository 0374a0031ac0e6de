// Runs the business handler for request envelopes, whatever queue brought them: at most
// `maxConcurrent` at once (the rest wait in order), each answered exactly once with a reply or an
// error envelope, also when the handler throws, returns garbage, or outlives the request's deadline.
import type { Logger } from '../types.js';
import { type BusinessHandler, type DeliverResult, type GatewayContext, toReply } from './business.js';
import { type Envelope, KIND } from './envelope.js';

type RequestEnvelope = Extract<Envelope, { kind: 1 }>;

/** At least this much longer than the client's timeout the worker waits for its handler, ms. */
const WORKER_SLACK_MS = 100;

/** Delivers ctx.send for the request it came with (the queue knows the way). */
export type SendFn = (target: string, msgid: number, body: Buffer) => Promise<DeliverResult>;

interface Job {
  req: RequestEnvelope;
  send: SendFn;
  answer: (e: Envelope) => void;
}

export class WorkerRunner {
  /** Handlers running now. */
  active = 0;
  /** Requests answered since start. */
  served = 0;
  private readonly waiting: Job[] = [];
  private idleWaiters: (() => void)[] = [];

  constructor(
    private readonly handler: BusinessHandler,
    private readonly opts: {
      workerId: number;
      logger: Logger;
      maxConcurrent: number;
      params: Readonly<Record<string, string>>;
    },
  ) {}

  /** Requests waiting for a free slot. */
  get queued(): number {
    return this.waiting.length;
  }

  /** Runs (or queues) one request; `answer` is called exactly once with its reply or error envelope. */
  run(req: RequestEnvelope, send: SendFn, answer: (e: Envelope) => void): void {
    const job = { req, send, answer };
    if (this.active >= this.opts.maxConcurrent) this.waiting.push(job);
    else this.start(job);
  }

  /** Resolves once nothing runs and nothing waits. */
  idle(): Promise<void> {
    if (this.active === 0 && this.waiting.length === 0) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  private start(job: Job): void {
    const { req } = job;
    this.active++;
    let done = false;
    let expired = false;
    // Made on first use of ctx.signal: most handlers never look at it.
    let controller: AbortController | undefined;
    const finish = (answer: Envelope) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      job.answer(answer);
      this.active--;
      this.served++;
      const next = this.waiting.shift();
      if (next) this.start(next);
      else if (this.active === 0) for (const w of this.idleWaiters.splice(0)) w();
    };
    // The client's timeout is the gateway's; the worker stops waiting a little later, so that
    // its own error does not overtake the gateway's timeout error (it arrives late, and is dropped).
    const timer =
      req.timeoutMs === 0
        ? undefined
        : setTimeout(
            () => {
              expired = true;
              controller?.abort(new Error('request deadline passed'));
              finish({
                kind: KIND.error,
                id: req.id,
                message: `handler did not finish within ${req.timeoutMs} ms`,
              });
            },
            req.timeoutMs + Math.max(WORKER_SLACK_MS, req.timeoutMs / 10),
          );
    const ctx: GatewayContext = {
      workerId: this.opts.workerId,
      logger: this.opts.logger,
      params: this.opts.params,
      get signal() {
        if (!controller) {
          controller = new AbortController();
          if (expired) controller.abort(new Error('request deadline passed'));
        }
        return controller.signal;
      },
      send: (to, msgid, body) => {
        const bytes =
          body === undefined ? Buffer.alloc(0) : typeof body === 'string' ? Buffer.from(body) : body;
        return job.send(String(to), msgid, Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes));
      },
    };
    const msg = {
      msgid: req.msgid,
      body: req.body,
      session: {
        id: req.session.id,
        name: req.session.name === '' ? undefined : req.session.name,
        remoteAddress: req.session.remoteAddress,
        remotePort: req.session.remotePort,
      },
    };
    void this.invoke(msg, ctx, req).then(finish);
  }

  private async invoke(
    msg: Parameters<BusinessHandler>[0],
    ctx: GatewayContext,
    req: RequestEnvelope,
  ): Promise<Envelope> {
    try {
      const reply = toReply(await this.handler(msg, ctx), req.msgid);
      if (!reply) return { kind: KIND.none, id: req.id };
      return { kind: KIND.reply, id: req.id, msgid: reply.msgid, body: reply.body };
    } catch (err) {
      const message = err instanceof Error ? err.message : String(err);
      this.opts.logger.warn({ err, msgid: req.msgid, session: req.session.id }, 'business handler failed');
      return { kind: KIND.error, id: req.id, message: message || 'business handler failed' };
    }
  }
}
