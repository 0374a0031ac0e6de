// The gateway's side of the NATS queue: requests go out in one batch per worker per event-loop
// turn, answers come back in batches, a worker silent for DEAD_AFTER_MS (kill -9) has its requests
// reported lost (one taken by nobody times out). Names and their stored messages: name-holders.ts.
import { type JetStreamClient, jetstream } from '@nats-io/jetstream';
import type { Msg, NatsConnection, Subscription } from '@nats-io/transport-node';
import type { DeliverResult } from '../../business.js';
import { type Envelope, envelopeSize, KIND } from '../../envelope.js';
import { decodeBatch, EnvelopeBatch } from '../../envelope-batch.js';
import type { Target } from '../../names.js';
import type { GatewayQueue, GatewayQueueEvents, GatewayQueueOptions, WorkRequest } from '../queue.js';
import { connectTo, DEFAULT_STORE, ensureStore, type NatsSpec } from './connect.js';
import { answerDelivery, deliverVia } from './delivery.js';
import { NameHolders } from './name-holders.js';
import { BATCH_BYTES, HEADROOM, HEARTBEAT_MS, lastToken, Subjects } from './protocol.js';
import { StoredMessages } from './stored-messages.js';
import { WorkerBook } from './worker-book.js';

/** A worker silent this long is taken for dead, ms. */
const DEAD_AFTER_MS = 2000;

interface Outgoing {
  batch: EnvelopeBatch;
  ids: number[];
}

export class NatsGatewayQueue implements GatewayQueue {
  private readonly js: JetStreamClient;
  private readonly subjects: Subjects;
  private readonly workerBook = new WorkerBook();
  private readonly names: NameHolders;
  private readonly subs: Subscription[] = [];
  private readonly watchdog: NodeJS.Timeout;
  /** Requests of this turn, not yet published, per worker ('' = the queue group). */
  private readonly outs = new Map<string, Outgoing>();
  private flushScheduled = false;
  private batchSeq = 0;
  /** Batches published that no worker has answered yet: a 503 (nobody subscribed) sends their requests again, or fails them. */
  private readonly unclaimed = new Map<number, { ids: number[]; worker: string; sentAt: number }>();

  private constructor(
    private readonly nc: NatsConnection,
    spec: NatsSpec,
    private readonly opts: GatewayQueueOptions,
    private readonly events: GatewayQueueEvents,
  ) {
    this.subjects = new Subjects(spec.prefix);
    this.js = jetstream(nc);
    this.names = new NameHolders(
      nc,
      this.subjects,
      new StoredMessages(nc, this.js, this.subjects, opts.logger),
      events,
    );
    const S = this.subjects;
    const me = opts.instance;
    this.subs.push(
      nc.subscribe(S.replies(me), { callback: (_e, m) => this.onReply(m) }),
      nc.subscribe(S.heartbeat, { callback: (_e, m) => this.workerBook.heartbeat(m.string()) }),
      nc.subscribe(S.retiring, { callback: (_e, m) => this.workerBook.retire(m.string()) }),
      nc.subscribe(S.bye, { callback: (_e, m) => this.workerGone(m.string(), 'worker said goodbye') }),
      nc.subscribe(S.sessions(me), { callback: (_e, m) => this.onSessionMessage(m) }),
      nc.subscribe(S.claims, { callback: (_e, m) => this.names.onClaim(m) }),
    );
    this.watchdog = setInterval(() => this.checkWorkers(), HEARTBEAT_MS);
    this.watchdog.unref();
  }

  static async open(
    spec: NatsSpec,
    opts: GatewayQueueOptions,
    events: GatewayQueueEvents,
  ): Promise<NatsGatewayQueue> {
    const nc = await connectTo(spec, `tcpdaemon-gateway-${opts.instance}`, opts.logger);
    const limits = {
      maxPerName: opts.storeMax ?? DEFAULT_STORE.maxPerName,
      ttlMs: opts.storeTtlMs ?? DEFAULT_STORE.ttlMs,
    };
    await ensureStore(nc, new Subjects(spec.prefix), limits, true, opts.logger);
    const q = new NatsGatewayQueue(nc, spec, opts, events);
    await nc.flush();
    return q;
  }

  get workers(): number {
    return this.workerBook.live;
  }

  /**
   * Into this turn's batch for the worker with the fewest outstanding requests (the queue group's
   * before any worker is known); batches are published once per event-loop turn (or when full).
   */
  dispatch(req: WorkRequest): boolean {
    const e: Envelope = {
      kind: KIND.request,
      id: req.id,
      msgid: req.msgid,
      session: req.session,
      timeoutMs: req.timeoutMs,
      body: req.body,
    };
    const worker = this.workerBook.pick();
    let out = this.outs.get(worker);
    if (!out) {
      out = { batch: new EnvelopeBatch(this.opts.maxBody + HEADROOM), ids: [] };
      this.outs.set(worker, out);
    }
    if (out.batch.length > 0 && out.batch.length + envelopeSize(e) > BATCH_BYTES) this.publish(worker, out);
    out.batch.add(e);
    out.ids.push(req.id);
    this.workerBook.sentTo(req.id, worker);
    if (!this.flushScheduled) {
      this.flushScheduled = true;
      setImmediate(this.flushRequests);
    }
    return true;
  }

  private readonly flushRequests = (): void => {
    this.flushScheduled = false;
    for (const [worker, out] of this.outs) this.publish(worker, out);
    this.outs.clear();
  };

  private publish(worker: string, out: Outgoing): void {
    const bytes = out.batch.take();
    if (!bytes) return;
    this.batchSeq = this.batchSeq >= 0x7fffffff ? 1 : this.batchSeq + 1;
    this.unclaimed.set(this.batchSeq, { ids: out.ids, worker, sentAt: Date.now() });
    out.ids = [];
    this.nc.publish(worker === '' ? this.subjects.group : this.subjects.worker(worker), bytes, {
      reply: this.subjects.reply(this.opts.instance, this.batchSeq),
    });
  }

  private onReply(m: Msg): void {
    const seq = Number(lastToken(m.subject));
    const batch = this.unclaimed.get(seq);
    this.unclaimed.delete(seq);
    if (m.headers?.code === 503) {
      if (batch && batch.worker !== '') {
        // Addressed to a worker that is no longer subscribed: it is gone. Nobody took this batch,
        // so its requests go to another worker. What it took before is lost with it; its batches
        // still unanswered end on their own (a 503 of theirs, an answer, or the sweep).
        const unanswered = new Set<number>();
        for (const b of this.unclaimed.values())
          if (b.worker === batch.worker) for (const id of b.ids) unanswered.add(id);
        this.workerGone(
          batch.worker,
          `worker ${batch.worker} is no longer subscribed`,
          unanswered,
          batch.ids,
        );
        return;
      }
      for (const id of batch?.ids ?? []) {
        if (!this.workerBook.outstanding(id)) continue;
        this.workerBook.forget(id);
        this.events.fail(id, 'no worker is connected to the queue');
      }
      return;
    }
    try {
      decodeBatch(m.data, (e) => this.onAnswer(e));
    } catch (err) {
      this.opts.logger.warn({ err: (err as Error).message }, 'bad envelope from a worker; dropped');
    }
  }

  private onAnswer(e: Envelope): void {
    if (e.kind === KIND.ack) {
      this.workerBook.acked(e.id, e.worker);
    } else if (e.kind === KIND.reply) {
      this.workerBook.forget(e.id);
      this.events.reply(e.id, e.msgid, e.body);
    } else if (e.kind === KIND.none) {
      this.workerBook.forget(e.id);
      this.events.reply(e.id, 0, undefined);
    } else if (e.kind === KIND.error) {
      this.workerBook.forget(e.id);
      this.events.fail(e.id, e.message);
    }
  }

  private checkWorkers(): void {
    const now = Date.now();
    for (const [seq, b] of this.unclaimed) {
      if (now - b.sentAt <= DEAD_AFTER_MS) continue;
      this.unclaimed.delete(seq);
      // Taken by nobody (the queue group: the worker died before its turn ended): its requests end
      // in their timeout. Addressed to a worker since gone: lost with it. A live worker still
      // holds its requests until it answers or goes silent.
      if (b.worker === '' || this.workerBook.isLive(b.worker)) continue;
      const lost = b.ids.filter((id) => this.workerBook.outstanding(id));
      for (const id of lost) this.workerBook.forget(id);
      if (lost.length > 0) this.events.lost(lost, `worker ${b.worker} went before answering`);
    }
    for (const [w, silentMs] of this.workerBook.silent(now, DEAD_AFTER_MS)) {
      this.workerGone(w, `worker ${w} silent for ${silentMs} ms`);
    }
  }

  /**
   * `w` is gone: what it held is lost, except `keep` (held until answered or swept). `undelivered`
   * (a batch that reached nobody) and this turn's batch for it, not sent yet, go to other workers.
   */
  private workerGone(w: string, reason: string, keep?: Set<number>, undelivered: number[] = []): void {
    const unsent = this.outs.get(w);
    this.outs.delete(w);
    const again = [...undelivered, ...(unsent?.ids ?? [])].filter((id) => this.workerBook.outstanding(id));
    for (const id of again) this.workerBook.forget(id);
    const ids = this.workerBook.gone(w, keep);
    if (ids.length > 0) this.events.lost(ids, reason);
    if (again.length > 0) this.events.undelivered(again);
  }

  private onSessionMessage(m: Msg): void {
    const sessionId = `${this.opts.instance}:${lastToken(m.subject)}`;
    answerDelivery(m, (msgid, body) => this.events.push(sessionId, msgid, body));
  }

  register(name: string, sessionId: string): Promise<void> {
    return this.names.register(name, sessionId);
  }

  unregister(name: string, sessionId: string): void {
    this.names.unregister(name, sessionId);
  }

  deliver(target: Target, msgid: number, body: Buffer): Promise<DeliverResult> {
    return deliverVia(this.nc, this.js, this.subjects, target, msgid, body);
  }

  async close(): Promise<void> {
    clearInterval(this.watchdog);
    this.names.releaseAll();
    await this.nc.drain().catch(() => undefined);
  }
}
