// The NATS queue (--queue nats://HOST:PORT): gateways and workers are separate commands, maybe on
// different hosts, and meet only in NATS. Subjects, with P the --queue-prefix:
//   P.req               requests; workers take them as one queue group
//   P.rep.<gw>.<id>     a worker's ack, reply or error for request <id> of gateway <gw>
//   P.hb / P.bye        worker heartbeats / a worker's goodbye (payload: the worker's id)
//   P.s.<gw>.<n>        a message for session <gw>:<n> (request; answered with a SEND_RESULT)
//   P.n.<name>          a message for the session holding <name> (subscribed while it does)
//   P.claim.<name>      a new registration of <name>: older holders drop it (newest wins)
//   P.store.<name>      stored messages (JetStream stream `P-store`, work-queue retention, file storage)
// A gateway learns which worker holds a request from its ack; a worker silent for DEAD_AFTER_MS
// (kill -9) has its acked requests reported lost. Requests never acked just time out.
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
import { decodeEnvelope, type Envelope, encodeEnvelope, KIND } from '../envelope.js';
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

  dispatch(req: WorkRequest): boolean {
    const payload = encodeEnvelope({
      kind: KIND.request,
      id: req.id,
      msgid: req.msgid,
      session: req.session,
      timeoutMs: req.timeoutMs,
      body: req.body,
    });
    this.sent.set(req.id, '');
    this.nc.publish(`${this.prefix}.req`, payload, {
      reply: `${this.prefix}.rep.${this.opts.instance}.${req.id}`,
    });
    return true;
  }

  private onReply(m: Msg): void {
    const id = Number(m.subject.slice(m.subject.lastIndexOf('.') + 1));
    if (m.headers?.code === 503) {
      this.forget(id);
      this.events.fail(id, 'no worker is connected to the queue');
      return;
    }
    let e: Envelope;
    try {
      e = decodeEnvelope(Buffer.from(m.data));
    } catch (err) {
      this.opts.logger.warn({ err: (err as Error).message }, 'bad envelope from a worker; dropped');
      return;
    }
    if (e.kind === KIND.ack) {
      if (!this.sent.has(id)) return;
      this.sent.set(id, e.worker);
      const set = this.byWorker.get(e.worker) ?? new Set<number>();
      this.byWorker.set(e.worker, set);
      set.add(id);
      if (!this.lastSeen.has(e.worker)) this.lastSeen.set(e.worker, Date.now());
      return;
    }
    this.forget(id);
    if (e.kind === KIND.reply) this.events.reply(id, e.msgid, e.body);
    else if (e.kind === KIND.none) this.events.reply(id, 0, undefined);
    else if (e.kind === KIND.error) this.events.fail(id, e.message);
  }

  private forget(id: number): void {
    const w = this.sent.get(id);
    this.sent.delete(id);
    if (w) this.byWorker.get(w)?.delete(id);
  }

  private checkWorkers(): void {
    const now = Date.now();
    for (const [w, seen] of this.lastSeen) {
      if (now - seen > DEAD_AFTER_MS) this.workerGone(w, `worker ${w} silent for ${now - seen} ms`);
    }
  }

  private workerGone(w: string, reason: string): void {
    this.lastSeen.delete(w);
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
  private heartbeat: NodeJS.Timeout | undefined;

  private constructor(
    private readonly nc: NatsConnection,
    private readonly spec: NatsSpec,
    opts: WorkerQueueOptions,
  ) {
    this.js = jetstream(nc);
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
  }

  private onRequest(m: Msg): void {
    if (!m.reply) return;
    let e: Envelope;
    try {
      e = decodeEnvelope(Buffer.from(m.data));
    } catch {
      return;
    }
    if (e.kind !== KIND.request) return;
    const reply = m.reply;
    this.nc.publish(reply, encodeEnvelope({ kind: KIND.ack, id: e.id, worker: this.id }));
    this.runner.run(
      e,
      (to, msgid, body) => {
        const target = parseTarget(to);
        if (typeof target === 'string') return Promise.reject(new Error(target));
        return deliverVia(this.nc, this.js, this.spec.prefix, target, msgid, body);
      },
      (answer) => {
        try {
          this.nc.publish(reply, encodeEnvelope(answer));
        } catch (err) {
          this.nc.publish(
            reply,
            encodeEnvelope({
              kind: KIND.error,
              id: e.id,
              message: `reply not sent: ${(err as Error).message}`,
            }),
          );
        }
      },
    );
  }

  counts(): { served: number; active: number } {
    return { served: this.runner.served, active: this.runner.active + this.runner.queued };
  }

  async retire(graceMs: number): Promise<void> {
    const deadline = new Promise<void>((r) => setTimeout(r, graceMs).unref());
    await this.sub?.drain().catch(() => undefined);
    await Promise.race([this.runner.idle(), deadline]);
    clearInterval(this.heartbeat);
    this.nc.publish(`${this.spec.prefix}.bye`, this.id);
    await this.nc.drain().catch(() => undefined);
  }
}
