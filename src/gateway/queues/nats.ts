// The NATS queue (--queue nats://HOST:PORT): gateways and workers are separate commands, maybe on
// different hosts, and meet only in NATS. Subjects, with P the --queue-prefix:
//   P.w.<worker>        requests for one worker, a batch per message (envelope-batch.ts): the gateway
//                       picks the worker with the fewest of its requests outstanding, per request
//   P.req               the same, before the gateway has heard of any worker: workers take them as one
//                       queue group, a batch at a time
//   P.rep.<gw>.<b>      a worker's acks, replies and errors for requests of batch <b> of gateway <gw>,
//                       a batch per message
//   P.hb / P.bye        worker heartbeats / a worker's goodbye (payload: the worker's id)
//   P.retiring          a worker takes no new requests (payload: its id); its goodbye follows
//   P.s.<gw>.<n>        a message for session <gw>:<n> (request; answered with a SEND_RESULT)
//   P.n.<name>          a message for the session holding <name> (subscribed while it does)
//   P.claim.<name>      a new registration of <name>: older holders drop it (newest wins)
//   P.store.<name>      stored messages (JetStream stream `P-store`, work-queue retention, file storage)
// A gateway knows which worker holds a request it addressed; one sent to the queue group it learns
// from the worker's ack (sent at the end of the worker's turn for each request it took and has not
// answered yet). A worker silent for DEAD_AFTER_MS (kill -9) has its requests reported lost; one
// taken by nobody times out. One NATS message per worker per event-loop turn each way, not three
// per request: NATS costs per message, not per byte.
import { randomBytes } from 'node:crypto';
import {
  AckPolicy,
  type Consumer,
  DiscardPolicy,
  JetStreamApiError,
  type JetStreamClient,
  jetstream,
  jetstreamManager,
  RetentionPolicy,
  StorageType,
} from '@nats-io/jetstream';
import { connect, type Msg, type NatsConnection, type Subscription } from '@nats-io/transport-node';
import type { Logger } from '../../types.js';
import type { DeliverResult } from '../business.js';
import { decodeEnvelope, type Envelope, encodeEnvelope, envelopeSize, KIND } from '../envelope.js';
import { decodeBatch, EnvelopeBatch } from '../envelope-batch.js';
import { parseTarget, type Target } from '../names.js';
import type { QueueSpec } from '../params.js';
import { WorkerRunner } from '../worker-runner.js';
import type {
  GatewayQueue,
  GatewayQueueEvents,
  GatewayQueueOptions,
  WorkerQueue,
  WorkerQueueOptions,
  WorkRequest,
} from './queue.js';

type NatsSpec = Extract<QueueSpec, { kind: 'nats' }>;

/** Workers publish a heartbeat this often, ms. */
const HEARTBEAT_MS = 500;
/** A worker silent this long is taken for dead, ms. */
const DEAD_AFTER_MS = 2000;
/** A delivery to another gateway waits this long for its answer, ms. */
const DELIVER_TIMEOUT_MS = 5000;
/** Store limits a worker uses if it has to create the stream before any gateway did. */
const DEFAULT_STORE = { maxPerName: 100, ttlMs: 300_000 };
/** A stored message not acked within this is handed out again (its gateway died mid-delivery), ms. */
const STORE_ACK_WAIT_MS = 10_000;
/** One fetch of stored messages waits at most this long, ms. */
const STORE_FETCH_MS = 1000;
/** After a registration, the store is checked once more this much later, ms. */
const STORE_RECHECK_MS = 1000;
/** A name's durable consumer is removed after this long unused, ms. */
const CONSUMER_IDLE_MS = 24 * 3600_000;
/** The answer a gateway gives when the target session is no longer there (the deliverer stores then). */
const GONE = 'gone';
/** After announcing its retirement a worker keeps taking what was already on its way this long, ms. */
const RETIRE_NOTICE_MS = 300;
/** A batch (one NATS message) is sent before it grows past this, bytes (NATS' default max_payload is 1 MiB). */
const BATCH_BYTES = 256 * 1024;
/** Room for the envelope's own fields on top of the largest client body, bytes. */
const HEADROOM = 4096;

const ms2ns = (ms: number) => ms * 1_000_000;

async function connectTo(spec: NatsSpec, name: string, logger: Logger): Promise<NatsConnection> {
  const nc = await connect({
    servers: spec.servers,
    name,
    maxReconnectAttempts: -1,
    reconnectTimeWait: 500,
    ...(spec.tls ? { tls: spec.tls } : {}),
  });
  void (async () => {
    for await (const s of nc.status()) {
      if (s.type === 'disconnect' || s.type === 'reconnect') logger.warn({ nats: s.type }, `NATS ${s.type}`);
    }
  })();
  return nc;
}

/** Creates the store stream if missing (`update` also brings its limits to these). */
async function ensureStore(
  nc: NatsConnection,
  prefix: string,
  limits: { maxPerName: number; ttlMs: number },
  update: boolean,
): Promise<void> {
  const jsm = await jetstreamManager(nc);
  const config = {
    name: `${prefix}-store`,
    subjects: [`${prefix}.store.>`],
    retention: RetentionPolicy.Workqueue,
    storage: StorageType.File,
    max_msgs_per_subject: limits.maxPerName,
    discard: DiscardPolicy.New,
    discard_new_per_subject: true,
    max_age: ms2ns(limits.ttlMs),
  };
  try {
    await jsm.streams.info(config.name);
    if (update) await jsm.streams.update(config.name, config);
  } catch (err) {
    if (!(err instanceof JetStreamApiError) || err.code !== 10059) throw err;
    await jsm.streams.add(config);
  }
}

function isNoResponders(err: unknown): boolean {
  return (
    (err as { isNoResponders?: () => boolean }).isNoResponders?.() === true ||
    (err as Error).name === 'NoRespondersError'
  );
}

/**
 * Delivers to a session (anywhere) or to a name (live when someone holds it, else stored). Shared by
 * gateways (client relay to other gateways) and workers (ctx.send).
 */
async function deliverVia(
  nc: NatsConnection,
  js: JetStreamClient,
  prefix: string,
  target: Target,
  msgid: number,
  body: Buffer,
): Promise<DeliverResult> {
  const to = target.kind === 'session' ? target.sessionId : target.name;
  const payload = encodeEnvelope({ kind: KIND.send, id: 0, msgid, target: to, body });
  const subject =
    target.kind === 'session' ? `${prefix}.s.${target.instance}.${target.n}` : `${prefix}.n.${target.name}`;
  try {
    const answer = decodeEnvelope(
      Buffer.from((await nc.request(subject, payload, { timeout: DELIVER_TIMEOUT_MS })).data),
    );
    if (answer.kind !== KIND.sendResult) throw new Error('unexpected answer to a delivery');
    if (answer.ok) return 'delivered';
    if (answer.text !== GONE || target.kind === 'session')
      throw new Error(answer.text === GONE ? `no session ${to}` : answer.text);
  } catch (err) {
    if (!isNoResponders(err)) throw err;
    if (target.kind === 'session') throw new Error(`no session ${to}`);
  }
  try {
    await js.publish(`${prefix}.store.${to}`, payload);
  } catch (err) {
    if (err instanceof JetStreamApiError && err.code === 10077) throw new Error(`store for '${to}' is full`);
    throw err;
  }
  return 'stored';
}

// ---------------------------------------------------------------- gateway side

interface Holder {
  sessionId: string;
  sub: Subscription;
  /** Live messages wait here until the stored ones are out, so the name sees them in order. */
  held: { msgid: number; body: Buffer; reply: (ok: boolean) => void }[] | undefined;
}

export class NatsGatewayQueue implements GatewayQueue {
  private readonly js: JetStreamClient;
  private readonly prefix: string;
  /** Request id -> the worker that acked it ('' until acked). */
  private readonly sent = new Map<number, string>();
  private readonly byWorker = new Map<string, Set<number>>();
  private readonly lastSeen = new Map<string, number>();
  private readonly holders = new Map<string, Holder>();
  private readonly subs: Subscription[] = [];
  private readonly watchdog: NodeJS.Timeout;
  /** Workers that announced their retirement: sent nothing new. */
  private readonly retiring = new Set<string>();
  /** Requests of this turn, not yet published, per worker ('' = the queue group). */
  private readonly outs = new Map<string, { batch: EnvelopeBatch; ids: number[] }>();
  private flushScheduled = false;
  private batchSeq = 0;
  /** Batches published that no worker has answered yet: a 503 (nobody subscribed) fails or loses their requests. */
  private readonly unclaimed = new Map<number, { ids: number[]; worker: string; sentAt: number }>();

  private constructor(
    private readonly nc: NatsConnection,
    spec: NatsSpec,
    private readonly opts: GatewayQueueOptions,
    private readonly events: GatewayQueueEvents,
  ) {
    this.prefix = spec.prefix;
    this.js = jetstream(nc);
    const P = this.prefix;
    const me = opts.instance;
    this.subs.push(
      nc.subscribe(`${P}.rep.${me}.*`, { callback: (_e, m) => this.onReply(m) }),
      nc.subscribe(`${P}.hb`, {
        callback: (_e, m) => {
          this.lastSeen.set(m.string(), Date.now());
        },
      }),
      nc.subscribe(`${P}.retiring`, {
        callback: (_e, m) => {
          this.retiring.add(m.string());
        },
      }),
      nc.subscribe(`${P}.bye`, { callback: (_e, m) => this.workerGone(m.string(), 'worker said goodbye') }),
      nc.subscribe(`${P}.s.${me}.*`, { callback: (_e, m) => this.onSessionMessage(m) }),
      nc.subscribe(`${P}.claim.*`, { callback: (_e, m) => this.onClaim(m) }),
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
    await ensureStore(nc, spec.prefix, limits, true);
    const q = new NatsGatewayQueue(nc, spec, opts, events);
    await nc.flush();
    return q;
  }

  get workers(): number {
    return this.lastSeen.size;
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
    const worker = this.pickWorker();
    let out = this.outs.get(worker);
    if (!out) {
      out = { batch: new EnvelopeBatch(this.opts.maxBody + HEADROOM), ids: [] };
      this.outs.set(worker, out);
    }
    if (out.batch.length > 0 && out.batch.length + envelopeSize(e) > BATCH_BYTES) this.publish(worker, out);
    out.batch.add(e);
    out.ids.push(req.id);
    this.sent.set(req.id, worker);
    if (worker !== '') this.holdsOf(worker).add(req.id);
    if (!this.flushScheduled) {
      this.flushScheduled = true;
      setImmediate(this.flushRequests);
    }
    return true;
  }

  /**
   * The live, not retiring worker with the fewest requests of ours outstanding (each request
   * counts at once, so a burst spreads over idle workers); '' when none is known.
   */
  private pickWorker(): string {
    let best = '';
    let least = Number.POSITIVE_INFINITY;
    for (const w of this.lastSeen.keys()) {
      if (this.retiring.has(w)) continue;
      const n = this.byWorker.get(w)?.size ?? 0;
      if (n < least) {
        best = w;
        least = n;
      }
    }
    return best;
  }

  private holdsOf(worker: string): Set<number> {
    let set = this.byWorker.get(worker);
    if (!set) {
      set = new Set<number>();
      this.byWorker.set(worker, set);
    }
    return set;
  }

  private readonly flushRequests = (): void => {
    this.flushScheduled = false;
    for (const [worker, out] of this.outs) this.publish(worker, out);
    this.outs.clear();
  };

  private publish(worker: string, out: { batch: EnvelopeBatch; ids: number[] }): void {
    const bytes = out.batch.take();
    if (!bytes) return;
    this.batchSeq = this.batchSeq >= 0x7fffffff ? 1 : this.batchSeq + 1;
    this.unclaimed.set(this.batchSeq, { ids: out.ids, worker, sentAt: Date.now() });
    out.ids = [];
    this.nc.publish(worker === '' ? `${this.prefix}.req` : `${this.prefix}.w.${worker}`, bytes, {
      reply: `${this.prefix}.rep.${this.opts.instance}.${this.batchSeq}`,
    });
  }

  private onReply(m: Msg): void {
    const seq = Number(m.subject.slice(m.subject.lastIndexOf('.') + 1));
    const batch = this.unclaimed.get(seq);
    this.unclaimed.delete(seq);
    if (m.headers?.code === 503) {
      if (batch && batch.worker !== '') {
        // Addressed to a worker that is no longer subscribed: it is gone.
        this.workerGone(batch.worker, `worker ${batch.worker} is no longer subscribed`);
        return;
      }
      for (const id of batch?.ids ?? []) {
        if (!this.sent.has(id)) continue;
        this.forget(id);
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
      if (this.sent.get(e.id) !== '') return; // answered already, or addressed to that worker
      this.sent.set(e.id, e.worker);
      this.holdsOf(e.worker).add(e.id);
      if (!this.lastSeen.has(e.worker)) this.lastSeen.set(e.worker, Date.now());
      return;
    }
    if (e.kind === KIND.reply) {
      this.forget(e.id);
      this.events.reply(e.id, e.msgid, e.body);
    } else if (e.kind === KIND.none) {
      this.forget(e.id);
      this.events.reply(e.id, 0, undefined);
    } else if (e.kind === KIND.error) {
      this.forget(e.id);
      this.events.fail(e.id, e.message);
    }
  }

  private forget(id: number): void {
    const w = this.sent.get(id);
    this.sent.delete(id);
    if (w) this.byWorker.get(w)?.delete(id);
  }

  private checkWorkers(): void {
    const now = Date.now();
    // Taken by nobody (the worker died before its turn ended): its requests end in their timeout.
    for (const [seq, b] of this.unclaimed) if (now - b.sentAt > DEAD_AFTER_MS) this.unclaimed.delete(seq);
    for (const [w, seen] of this.lastSeen) {
      if (now - seen > DEAD_AFTER_MS) this.workerGone(w, `worker ${w} silent for ${now - seen} ms`);
    }
  }

  private workerGone(w: string, reason: string): void {
    this.lastSeen.delete(w);
    this.retiring.delete(w);
    const ids = this.byWorker.get(w);
    this.byWorker.delete(w);
    if (!ids || ids.size === 0) return;
    for (const id of ids) this.sent.delete(id);
    this.events.lost([...ids], reason);
  }

  private onSessionMessage(m: Msg): void {
    const n = m.subject.slice(m.subject.lastIndexOf('.') + 1);
    const sessionId = `${this.opts.instance}:${n}`;
    this.answerDelivery(m, (msgid, body) => this.events.push(sessionId, msgid, body));
  }

  /** Decodes a SEND envelope, writes it with `push`, answers delivered / GONE / the error. */
  private answerDelivery(m: Msg, push: (msgid: number, body: Buffer) => boolean): void {
    let ok = false;
    let text = GONE;
    try {
      const e = decodeEnvelope(Buffer.from(m.data));
      if (e.kind !== KIND.send) throw new Error('not a delivery');
      ok = push(e.msgid, e.body);
      if (ok) text = 'delivered';
    } catch (err) {
      text = (err as Error).message;
    }
    m.respond(encodeEnvelope({ kind: KIND.sendResult, id: 0, ok, text }));
  }

  private onClaim(m: Msg): void {
    const name = m.subject.slice(m.subject.lastIndexOf('.') + 1);
    const claimant = m.string();
    const h = this.holders.get(name);
    if (!h || h.sessionId === claimant) return;
    this.release(name, h);
    this.events.nameTaken(name, h.sessionId);
  }

  async register(name: string, sessionId: string): Promise<void> {
    const before = this.holders.get(name);
    if (before) this.release(name, before);
    const P = this.prefix;
    this.nc.publish(`${P}.claim.${name}`, sessionId);
    const h: Holder = { sessionId, sub: undefined as unknown as Subscription, held: [] };
    h.sub = this.nc.subscribe(`${P}.n.${name}`, {
      callback: (_e, m) =>
        this.answerDelivery(m, (msgid, body) => {
          if (this.holders.get(name) !== h) return false;
          if (h.held) {
            h.held.push({ msgid, body, reply: () => undefined });
            return true;
          }
          return this.events.push(sessionId, msgid, body);
        }),
    });
    this.holders.set(name, h);
    await this.nc.flush();
    await this.drainStore(name, h);
    this.releaseHeld(h);
    // Once more a little later: a sender that found the name offline just before we subscribed
    // may still have been storing its message.
    setTimeout(() => void this.drainStore(name, h).catch(() => undefined), STORE_RECHECK_MS).unref();
  }

  /**
   * Hands what is stored for `name` to `h`'s session, oldest first. Each fetch runs to its end:
   * a message it brings after the session is gone is nak'ed (available again at once), never left
   * in a dropped inbox until its ack wait passes.
   */
  private async drainStore(name: string, h: Holder): Promise<void> {
    const consumer = await this.storeConsumer(name);
    for (let round = 0; round < 100 && this.holders.get(name) === h; round++) {
      const { num_pending: pending } = await consumer.info();
      if (pending === 0) return;
      const batch = await consumer.fetch({ max_messages: Math.min(pending, 256), expires: STORE_FETCH_MS });
      for await (const sm of batch) {
        let pushed = false;
        try {
          const e = decodeEnvelope(Buffer.from(sm.data));
          pushed =
            e.kind === KIND.send &&
            this.holders.get(name) === h &&
            this.events.push(h.sessionId, e.msgid, e.body);
        } catch (err) {
          this.opts.logger.warn({ name, err: (err as Error).message }, 'bad stored message; dropped');
          sm.term();
          continue;
        }
        if (pushed) sm.ack();
        else sm.nak();
      }
    }
  }

  /** The stored messages are out: live ones held meanwhile follow, in order. */
  private releaseHeld(h: Holder): void {
    const held = h.held;
    if (!held) return;
    h.held = undefined;
    for (const m of held) this.events.push(h.sessionId, m.msgid, m.body);
  }

  private async storeConsumer(name: string): Promise<Consumer> {
    const jsm = await jetstreamManager(this.nc);
    const stream = `${this.prefix}-store`;
    const durable = `n_${name}`;
    try {
      await jsm.consumers.info(stream, durable);
    } catch {
      await jsm.consumers.add(stream, {
        durable_name: durable,
        filter_subject: `${this.prefix}.store.${name}`,
        ack_policy: AckPolicy.Explicit,
        ack_wait: ms2ns(STORE_ACK_WAIT_MS),
        inactive_threshold: ms2ns(CONSUMER_IDLE_MS),
      });
    }
    return this.js.consumers.get(stream, durable);
  }

  private release(name: string, h: Holder): void {
    if (this.holders.get(name) === h) this.holders.delete(name);
    // drain, not unsubscribe: a message already on its way still gets its answer (GONE, so the
    // sender stores it) instead of being dropped here and timing out there.
    h.sub.drain().catch(() => undefined);
  }

  unregister(name: string, sessionId: string): void {
    const h = this.holders.get(name);
    if (h && h.sessionId === sessionId) this.release(name, h);
  }

  deliver(target: Target, msgid: number, body: Buffer): Promise<DeliverResult> {
    return deliverVia(this.nc, this.js, this.prefix, target, msgid, body);
  }

  async close(): Promise<void> {
    clearInterval(this.watchdog);
    for (const [name, h] of this.holders) this.release(name, h);
    await this.nc.drain().catch(() => undefined);
  }
}

// ---------------------------------------------------------------- worker side

export class NatsWorkerQueue implements WorkerQueue {
  private readonly runner: WorkerRunner;
  private readonly js: JetStreamClient;
  private readonly id = `w${randomBytes(5).toString('hex')}`;
  private sub: Subscription | undefined;
  private direct: Subscription | undefined;
  private heartbeat: NodeJS.Timeout | undefined;
  /** Per reply subject (a gateway's batch): answers of this turn and requests taken, not yet acked. */
  private readonly outs = new Map<string, { batch: EnvelopeBatch; unacked: Set<number> }>();
  private flushScheduled = false;
  private readonly maxEnvelope: number;

  private constructor(
    private readonly nc: NatsConnection,
    private readonly spec: NatsSpec,
    opts: WorkerQueueOptions,
  ) {
    this.js = jetstream(nc);
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
    await ensureStore(nc, spec.prefix, DEFAULT_STORE, false);
    const q = new NatsWorkerQueue(nc, spec, opts);
    q.start();
    await nc.flush();
    return q;
  }

  private start(): void {
    const P = this.spec.prefix;
    const beat = () => this.nc.publish(`${P}.hb`, this.id);
    beat();
    this.heartbeat = setInterval(beat, HEARTBEAT_MS);
    this.sub = this.nc.subscribe(`${P}.req`, {
      queue: `${P}-workers`,
      callback: (_e, m) => this.onRequest(m),
    });
    this.direct = this.nc.subscribe(`${P}.w.${this.id}`, { callback: (_e, m) => this.onRequest(m) });
  }

  private onRequest(m: Msg): void {
    const reply = m.reply;
    if (!reply) return;
    const out = this.outFor(reply);
    try {
      decodeBatch(m.data, (e) => {
        if (e.kind !== KIND.request) return;
        out.unacked.add(e.id);
        this.runner.run(e, this.send, (answer) => this.answer(reply, e.id, answer));
      });
    } catch {
      // a malformed batch: what was decoded before runs; the rest ends in its timeout
    }
    this.scheduleFlush();
  }

  private readonly send = (to: string, msgid: number, body: Buffer): Promise<DeliverResult> => {
    const target = parseTarget(to);
    if (typeof target === 'string') return Promise.reject(new Error(target));
    return deliverVia(this.nc, this.js, this.spec.prefix, target, msgid, body);
  };

  private outFor(reply: string): { batch: EnvelopeBatch; unacked: Set<number> } {
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

  private publish(reply: string, out: { batch: EnvelopeBatch }): void {
    const bytes = out.batch.take();
    if (bytes) this.nc.publish(reply, bytes);
  }

  counts(): { served: number; active: number } {
    return { served: this.runner.served, active: this.runner.active + this.runner.queued };
  }

  async retire(graceMs: number): Promise<void> {
    const deadline = new Promise<void>((r) => setTimeout(r, graceMs).unref());
    // Gateways stop addressing us; what is already on its way still arrives while we listen.
    this.nc.publish(`${this.spec.prefix}.retiring`, this.id);
    await new Promise<void>((r) => setTimeout(r, Math.min(RETIRE_NOTICE_MS, graceMs)).unref());
    await this.sub?.drain().catch(() => undefined);
    await this.direct?.drain().catch(() => undefined);
    await Promise.race([this.runner.idle(), deadline]);
    this.flush(); // the last answers, before the goodbye
    clearInterval(this.heartbeat);
    this.nc.publish(`${this.spec.prefix}.bye`, this.id);
    await this.nc.drain().catch(() => undefined);
  }
}
