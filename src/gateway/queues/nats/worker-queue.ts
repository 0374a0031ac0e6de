// The worker's side of the NATS queue: takes request batches addressed to it and from the queue
// group, runs them (worker-runner.ts), and answers per gateway batch once per event-loop turn,
// with an ack for each request taken and not answered yet (so the gateway knows who holds it).
import { randomBytes } from 'node:crypto';
import { type JetStreamClient, jetstream } from '@nats-io/jetstream';
import type { Msg, NatsConnection, Subscription } from '@nats-io/transport-node';
import type { DeliverResult } from '../../business.js';
import { type Envelope, KIND, SessionCache } from '../../envelope.js';
import { decodeBatch, EnvelopeBatch } from '../../envelope-batch.js';
import { parseTarget } from '../../names.js';
import { WorkerRunner } from '../../worker-runner.js';
import type { WorkerQueue, WorkerQueueOptions } from '../queue.js';
import { connectTo, DEFAULT_STORE, ensureStore, type NatsSpec } from './connect.js';
import { deliverVia } from './delivery.js';
import { BATCH_BYTES, HEADROOM, HEARTBEAT_MS, Subjects } from './protocol.js';

/** After announcing its retirement a worker keeps taking what was already on its way this long, ms. */
const RETIRE_NOTICE_MS = 300;

interface Answers {
  batch: EnvelopeBatch;
  unacked: Set<number>;
}

export class NatsWorkerQueue implements WorkerQueue {
  private readonly runner: WorkerRunner;
  /** The session of the last request decoded (a batch carries many of one session in a row). */
  private readonly sessions = new SessionCache();
  private readonly js: JetStreamClient;
  private readonly subjects: Subjects;
  private readonly id = `w${randomBytes(5).toString('hex')}`;
  private sub: Subscription | undefined;
  private direct: Subscription | undefined;
  private heartbeat: NodeJS.Timeout | undefined;
  /** Per reply subject (a gateway's batch): answers of this turn and requests taken, not yet acked. */
  private readonly outs = new Map<string, Answers>();
  private flushScheduled = false;
  private readonly maxEnvelope: number;

  private constructor(
    private readonly nc: NatsConnection,
    spec: NatsSpec,
    opts: WorkerQueueOptions,
  ) {
    this.js = jetstream(nc);
    this.subjects = new Subjects(spec.prefix);
    this.maxEnvelope = opts.maxBody + HEADROOM;
    this.runner = new WorkerRunner(opts.handler, {
      workerId: opts.workerId,
      logger: opts.logger,
      maxConcurrent: opts.maxConcurrent,
      params: opts.params ?? {},
    });
  }

  static async open(spec: NatsSpec, opts: WorkerQueueOptions): Promise<NatsWorkerQueue> {
    const nc = await connectTo(spec, `tcpdaemon-worker-${opts.workerId}`, opts.logger);
    await ensureStore(nc, new Subjects(spec.prefix), DEFAULT_STORE, false, opts.logger);
    const q = new NatsWorkerQueue(nc, spec, opts);
    q.start();
    await nc.flush();
    return q;
  }

  private start(): void {
    const S = this.subjects;
    const beat = () => this.nc.publish(S.heartbeat, this.id);
    beat();
    this.heartbeat = setInterval(beat, HEARTBEAT_MS);
    this.sub = this.nc.subscribe(S.group, {
      queue: S.workerGroup,
      callback: (_e, m) => this.onRequest(m),
    });
    this.direct = this.nc.subscribe(S.worker(this.id), { callback: (_e, m) => this.onRequest(m) });
  }

  private onRequest(m: Msg): void {
    const reply = m.reply;
    if (!reply) return;
    const out = this.outFor(reply);
    try {
      decodeBatch(
        m.data,
        (e) => {
          if (e.kind !== KIND.request) return;
          out.unacked.add(e.id);
          this.runner.run(e, this.send, (answer) => this.answer(reply, e.id, answer));
        },
        this.sessions,
      );
    } catch {
      // a malformed batch: what was decoded before runs; the rest ends in its timeout
    }
    this.scheduleFlush();
  }

  private readonly send = (to: string, msgid: number, body: Buffer): Promise<DeliverResult> => {
    const target = parseTarget(to);
    if (typeof target === 'string') return Promise.reject(new Error(target));
    return deliverVia(this.nc, this.js, this.subjects, target, msgid, body);
  };

  private outFor(reply: string): Answers {
    let out = this.outs.get(reply);
    if (!out) {
      out = { batch: new EnvelopeBatch(this.maxEnvelope), unacked: new Set() };
      this.outs.set(reply, out);
    }
    return out;
  }

  private answer(reply: string, id: number, answer: Envelope): void {
    const out = this.outFor(reply);
    out.unacked.delete(id);
    if (out.batch.length > BATCH_BYTES) this.publish(reply, out);
    try {
      out.batch.add(answer);
    } catch (err) {
      out.batch.add({ kind: KIND.error, id, message: `reply not sent: ${(err as Error).message}` });
    }
    this.scheduleFlush();
  }

  private scheduleFlush(): void {
    if (this.flushScheduled) return;
    this.flushScheduled = true;
    setImmediate(this.flush);
  }

  /** End of the turn: per gateway batch, one message with its answers and acks for what still runs. */
  private readonly flush = (): void => {
    this.flushScheduled = false;
    for (const [reply, out] of this.outs) {
      for (const id of out.unacked) out.batch.add({ kind: KIND.ack, id, worker: this.id });
      out.unacked.clear();
      this.publish(reply, out);
      this.outs.delete(reply);
    }
  };

  private publish(reply: string, out: Answers): void {
    const bytes = out.batch.take();
    if (bytes) this.nc.publish(reply, bytes);
  }

  counts(): { served: number; active: number } {
    return { served: this.runner.served, active: this.runner.active + this.runner.queued };
  }

  async retire(graceMs: number): Promise<void> {
    const deadline = new Promise<void>((r) => setTimeout(r, graceMs).unref());
    // Gateways stop addressing us; what is already on its way still arrives while we listen.
    this.nc.publish(this.subjects.retiring, this.id);
    await new Promise<void>((r) => setTimeout(r, Math.min(RETIRE_NOTICE_MS, graceMs)).unref());
    // Each step is bounded by the grace: with NATS unreachable a drain waits for a reconnect.
    await Promise.race([this.sub?.drain().catch(() => undefined), deadline]);
    await Promise.race([this.direct?.drain().catch(() => undefined), deadline]);
    await Promise.race([this.runner.idle(), deadline]);
    this.flush(); // the last answers, before the goodbye
    clearInterval(this.heartbeat);
    this.nc.publish(this.subjects.bye, this.id);
    await Promise.race([this.nc.drain().catch(() => undefined), deadline]);
  }
}
