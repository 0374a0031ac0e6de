// The client side of one gateway process: every client connection is a message-layer connection
// (createMessageHandler); each business message becomes a pending request (requests.ts) that a
// queue (queues/) carries to a worker; the reply is routed back by request id. Reserved msgids
// (protocol.ts) register names, relay to other clients and ask for the session id.
import { type Codec, createCodec } from '../message/codecs/index.js';
import type { MessageConn } from '../message/conn.js';
import { FrameBatch } from '../message/frame-batch.js';
import type { RouteReply } from '../message/router.js';
import { createMessageHandler, type MessageHandler } from '../message/server.js';
import { PeerLog, ThrottledCount } from '../throttled-count.js';
import type { Logger } from '../types.js';
import type { DeliverResult } from './business.js';
import type { SessionInfo } from './envelope.js';
import { describeNameRule, isValidName, parseTarget, sessionId } from './names.js';
import { decodeRelay, GATEWAY_MSGID, isReserved } from './protocol.js';
import type { GatewayQueue, GatewayQueueEvents, WorkRequest } from './queues/queue.js';
import {
  GatewayError,
  type Outcome,
  type PendingRequest,
  type ReplyValue,
  RequestTable,
} from './requests.js';

export interface GatewayServerOptions {
  /** Prefix of this process's session ids (unique across gateways). */
  instance: string;
  /** Codec name (`seq` by default) as the message layer spells it. */
  codec: string;
  /** Largest body, bytes. */
  maxBody: number;
  /** From a client's message to its timeout error, ms. */
  requestTimeoutMs: number;
  /** Send a request lost with a crashed worker to another worker once (idempotent handlers only). */
  retryOnCrash: boolean;
  /**
   * Requests one connection may have outstanding (taken, not yet answered). At the bound the
   * connection is not read until an answer goes out, unless `refuseOverInflight`.
   */
  maxInflightPerConn: number;
  /** seq codec only: a request past the bound gets an error reply instead of waiting. */
  refuseOverInflight: boolean;
  /**
   * Bytes one session may hold in answers waiting for their turn and frames read past the bound,
   * each counted with its bookkeeping; past it the session is closed with a logged reason.
   */
  maxSessionBytes: number;
  /** Requests waiting for a worker with room, per gateway; one more is refused. */
  maxWaiting: number;
  logger: Logger;
}

const PENDING = Symbol('pending');

interface Slot {
  outcome: Outcome | typeof PENDING;
  /** What this finished answer is accounted in its session's `bytes`. */
  cost: number;
}

interface HeldFrame {
  msgid: number;
  /** A view into the socket's chunk (the chunk is one read, at most 64 KiB). */
  body: Buffer;
}

/**
 * Memory of one queued item beyond its body, bytes: the object, its array slot, the Buffer (or
 * error) holding the body. Measured on Node 20 (heap + external per item, 200k items): a held
 * frame 146, a finished answer 195; rounded up.
 */
const HELD_FRAME_COST = 160;
const ANSWER_COST = 224;

interface Session {
  readonly id: string;
  readonly conn: MessageConn;
  name: string | undefined;
  inflight: number;
  /** Codecs without seq: answers owed, in request order, from `lineHead` (pending or finished). */
  line: Slot[];
  lineHead: number;
  /** Codecs without seq: frames read past the in-flight bound, oldest first from `heldHead`. */
  held: HeldFrame[];
  heldHead: number;
  /** Accounted bytes of held frames and finished answers in `line`. */
  bytes: number;
  /** Inside admitHeld (its dispatches flush the line, which admits again). */
  admitting: boolean;
  /** What requests carry about the session; undefined after a name change (made again on use). */
  info: SessionInfo | undefined;
}

const kSession = 'gateway.session';

export interface GatewayStats {
  sessions: number;
  pending: number;
  waiting: number;
  lateReplies: number;
  timeouts: number;
  retries: number;
  lostToCrashes: number;
}

export class GatewayServer {
  readonly handler: MessageHandler;
  readonly codec: Codec;
  readonly requests: RequestTable;
  /** Called once per closed client connection (the daemon keeps per-IP counts). */
  onSessionClosed: (remoteAddress: string) => void = () => undefined;
  private queue: GatewayQueue | undefined;
  private readonly sessions = new Map<string, Session>();
  private readonly names = new Map<string, Session>();
  /** Requests waiting for a worker with room, oldest first, from `waitHead`. */
  private waiting: PendingRequest[] = [];
  private waitHead = 0;
  private lastSession = 0;
  private retries = 0;
  private lostToCrashes = 0;
  private readonly late: ThrottledCount;
  private readonly timedOut: ThrottledCount;
  /** Refusals a client causes request by request, counted per client address. */
  private readonly peerLog: PeerLog;
  private readonly overflowed: ThrottledCount;
  private readonly log: Logger;

  constructor(private readonly opts: GatewayServerOptions) {
    this.log = opts.logger;
    this.codec = createCodec(opts.codec, { maxBody: opts.maxBody });
    this.late = new ThrottledCount(this.log, 'late reply dropped (its request had timed out or was retried)');
    this.timedOut = new ThrottledCount(this.log, 'request timed out; error sent to the client');
    this.peerLog = new PeerLog(this.log);
    this.overflowed = new ThrottledCount(
      this.log,
      'session closed: its queued answers and frames passed --max-session-bytes',
    );
    if (opts.refuseOverInflight && !this.codec.hasSeq) {
      throw new RangeError('refuseOverInflight needs the seq codec (the only one with error replies)');
    }
    this.requests = new RequestTable(opts.requestTimeoutMs, (r) =>
      this.timedOut.add({ msgid: r.msgid, session: r.session.id }),
    );
    this.handler = createMessageHandler({
      codec: this.codec,
      fallback: (body, msgid, conn) => this.frame(conn, msgid, body),
      onConnect: (conn) => this.open(conn),
      onClose: (conn) => this.closeSession(conn),
      // seq codec: the message layer holds reading at our bound itself (or, to refuse, lets one
      // more reach us). Other codecs: our handler returns at once; `frame` holds reading, and
      // answers keep request order in `line`.
      maxInFlight: opts.maxInflightPerConn + (opts.refuseOverInflight ? 1 : 0),
    });
  }

  /** A config reload: new bounds for what comes from now on. */
  setLimits(limits: Pick<GatewayServerOptions, 'maxSessionBytes' | 'maxWaiting'>): void {
    Object.assign(this.opts, limits);
  }

  /** The queue's callbacks; pass them when opening the queue, then `attach` it. */
  readonly events: GatewayQueueEvents = {
    reply: (id, msgid, body) => {
      if (this.codec.hasSeq) this.corkFor(id);
      const value: ReplyValue | undefined = body === undefined ? undefined : { msgid, body };
      if (!this.requests.resolve(id, value)) this.late.add({ id });
    },
    fail: (id, message) => {
      if (this.codec.hasSeq) this.corkFor(id);
      if (!this.requests.reject(id, new GatewayError('remote', message))) this.late.add({ id });
    },
    lost: (ids, reason) => this.onLost(ids, reason),
    capacity: () => this.pump(),
    push: (id, msgid, body) => this.push(id, msgid, body),
    nameTaken: (name, id) => this.nameTaken(name, id),
    send: (target, msgid, body) => this.deliver(target, msgid, body),
  };

  /**
   * seq codec: replies come in bursts from a worker link; each would be its own write syscall on
   * its client socket. The socket stays corked until the burst's promise callbacks have run.
   * (Other codecs write a session's ready answers once per event-loop turn: flushDirty.)
   */
  private corkFor(id: number): void {
    const r = this.requests.get(id);
    const s = r && this.sessions.get(r.session.id);
    if (!s || this.corked.has(s) || !s.conn.isOpen) return;
    s.conn.socket.cork();
    this.corked.add(s);
    if (this.corked.size === 1) setImmediate(this.uncorkAll);
  }

  private readonly corked = new Set<Session>();
  private readonly uncorkAll = (): void => {
    for (const s of this.corked) s.conn.socket.uncork();
    this.corked.clear();
  };

  attach(queue: GatewayQueue): void {
    this.queue = queue;
  }

  get stats(): GatewayStats {
    return {
      sessions: this.sessions.size,
      pending: this.requests.size,
      waiting: this.waiting.length - this.waitHead,
      lateReplies: this.requests.lateReplies,
      timeouts: this.requests.timeouts,
      retries: this.retries,
      lostToCrashes: this.lostToCrashes,
    };
  }

  // ---- connections

  private open(conn: MessageConn): void {
    const s: Session = {
      id: sessionId(this.opts.instance, ++this.lastSession),
      conn,
      name: undefined,
      inflight: 0,
      line: [],
      lineHead: 0,
      held: [],
      heldHead: 0,
      bytes: 0,
      admitting: false,
      info: undefined,
    };
    conn.state[kSession] = s;
    this.sessions.set(s.id, s);
  }

  private session(conn: MessageConn): Session {
    return conn.state[kSession] as Session;
  }

  private closeSession(conn: MessageConn): void {
    const s = this.session(conn);
    if (!s) return;
    this.sessions.delete(s.id);
    s.held = [];
    s.heldHead = 0;
    if (s.name !== undefined) this.dropName(s);
    this.onSessionClosed(conn.remoteAddress);
  }

  private info(s: Session): SessionInfo {
    s.info ??= {
      id: s.id,
      name: s.name ?? '',
      remoteAddress: s.conn.remoteAddress,
      remotePort: s.conn.remotePort,
    };
    return s.info;
  }

  // ---- frames and requests

  /**
   * Every client frame. Codecs without seq: past the in-flight bound (answers owed, finished or
   * not) the frame is held and the connection is not read until answers go out (admitHeld).
   */
  private frame(conn: MessageConn, msgid: number, body: Buffer): Promise<RouteReply> | RouteReply {
    const s = this.session(conn);
    if (
      !this.codec.hasSeq &&
      (s.heldHead < s.held.length || s.line.length - s.lineHead >= this.opts.maxInflightPerConn)
    ) {
      s.held.push({ msgid, body });
      s.conn.owe(1);
      if (!s.conn.held) s.conn.hold();
      this.account(s, body.length + HELD_FRAME_COST);
      return undefined;
    }
    return this.dispatch(s, msgid, body);
  }

  private dispatch(s: Session, msgid: number, body: Buffer): Promise<RouteReply> | RouteReply {
    switch (msgid) {
      case GATEWAY_MSGID.register:
        return this.register(s, body);
      case GATEWAY_MSGID.relay:
        return this.relay(s, body);
      case GATEWAY_MSGID.session:
        return this.respond(s, { msgid: GATEWAY_MSGID.session, body: Buffer.from(s.id) });
      default:
        return this.request(s, msgid, body);
    }
  }

  /** Answers went out: dispatch held frames while there is room; read again once none is held. */
  private admitHeld(s: Session): void {
    if (s.admitting || s.heldHead === s.held.length) return;
    s.admitting = true;
    try {
      while (
        s.heldHead < s.held.length &&
        s.line.length - s.lineHead < this.opts.maxInflightPerConn &&
        s.conn.isOpen
      ) {
        const f = s.held[s.heldHead]!;
        s.held[s.heldHead++] = undefined as unknown as HeldFrame;
        s.bytes -= f.body.length + HELD_FRAME_COST;
        this.dispatch(s, f.msgid, f.body);
        s.conn.owe(-1);
      }
    } finally {
      s.admitting = false;
    }
    if (s.heldHead === s.held.length) {
      s.held = [];
      s.heldHead = 0;
      s.conn.release();
    }
  }

  /** Adds to a session's queued bytes; past --max-session-bytes the session is closed (logged once). */
  private account(s: Session, bytes: number): void {
    s.bytes += bytes;
    if (s.bytes <= this.opts.maxSessionBytes || !s.conn.isOpen) return;
    this.overflowed.add({ session: s.id, bytes: s.bytes, limit: this.opts.maxSessionBytes });
    s.conn.destroy(`session queue over ${this.opts.maxSessionBytes} bytes`);
  }

  private request(s: Session, msgid: number, body: Buffer): Promise<RouteReply> | RouteReply {
    if (isReserved(msgid)) {
      return this.respond(s, new GatewayError('refused', `msgid ${msgid} is reserved`));
    }
    if (this.opts.refuseOverInflight && s.inflight >= this.opts.maxInflightPerConn) {
      this.peerLog.warn({
        peer: s.conn.remoteAddress,
        msg: 'request refused: too many in flight',
        fields: { session: s.id, limit: this.opts.maxInflightPerConn },
        logger: s.conn.logger,
      });
      return this.respond(
        s,
        new GatewayError(
          'refused',
          `too many requests in flight on this connection (limit ${this.opts.maxInflightPerConn})`,
        ),
      );
    }
    s.inflight++;
    // The body stays a view into the socket's chunk while the request is in flight (the in-flight
    // bound limits what that pins); one that has to wait for a worker gets a copy (submit).
    if (this.codec.hasSeq) {
      return new Promise<RouteReply>((resolve, reject) => {
        const r = this.requests.open(msgid, body, this.info(s), (o) => {
          s.inflight--;
          if (o instanceof GatewayError) reject(o);
          else resolve(o);
        });
        this.submit(r);
      });
    }
    const slot = this.slot(s);
    const r = this.requests.open(msgid, body, this.info(s), (o) => {
      s.inflight--;
      this.finish(s, slot, o);
    });
    this.submit(r);
    return undefined;
  }

  /**
   * Sends what a client frame gets back. seq codec: through the message layer, which pairs it with
   * its request by seq (an error becomes an error reply). Other codecs: in request order, from the
   * session's line, so requests of one connection still run at once on several workers.
   */
  private respond(s: Session, outcome: Outcome | Promise<Outcome>): Promise<RouteReply> | RouteReply {
    if (this.codec.hasSeq) {
      const toRoute = (o: Outcome): RouteReply => {
        if (o instanceof GatewayError) throw o;
        return o;
      };
      return outcome instanceof Promise ? outcome.then(toRoute) : toRoute(outcome);
    }
    const slot = this.slot(s);
    if (outcome instanceof Promise) {
      void outcome.then((o) => this.finish(s, slot, o));
    } else {
      this.finish(s, slot, outcome);
    }
    return undefined;
  }

  /** Codecs without seq: the place in line of an answer to come. */
  private slot(s: Session): Slot {
    const slot: Slot = { outcome: PENDING, cost: 0 };
    s.line.push(slot);
    s.conn.owe(1);
    return slot;
  }

  /**
   * An answer is ready. First in line: its session is written at the end of this event-loop turn
   * (with every other answer ready by then, in one write); else it waits, accounted, for its turn.
   */
  private finish(s: Session, slot: Slot, o: Outcome): void {
    slot.outcome = o;
    if (s.line[s.lineHead] !== slot) {
      slot.cost =
        ANSWER_COST + (o === undefined ? 0 : o instanceof GatewayError ? o.message.length : o.body.length);
      this.account(s, slot.cost);
      return;
    }
    this.dirty.add(s);
    if (!this.flushScheduled) {
      this.flushScheduled = true;
      setImmediate(this.flushDirty);
    }
  }

  /** Sessions whose first answer in line is ready. */
  private dirty = new Set<Session>();
  private flushScheduled = false;
  /** Answers of one session are encoded here back to back, then written with one socket write. */
  private readonly out = new FrameBatch();

  private readonly flushDirty = (): void => {
    this.flushScheduled = false;
    const ready = this.dirty;
    this.dirty = new Set();
    for (const s of ready) this.flushLine(s);
  };

  /** Writes the answers at the head of the line that are ready, then admits held frames. */
  private flushLine(s: Session): void {
    let paid = 0;
    this.out.open(s);
    try {
      while (s.lineHead < s.line.length) {
        const slot = s.line[s.lineHead]!;
        if (slot.outcome === PENDING) break;
        s.line[s.lineHead++] = undefined as unknown as Slot;
        s.bytes -= slot.cost;
        this.write(s, slot.outcome);
        paid++;
      }
      this.sendBatch(s);
    } finally {
      this.out.close();
    }
    // After the write: the last one paid may let the peer's FIN end the connection.
    if (paid > 0) s.conn.owe(-paid);
    if (s.lineHead === s.line.length) {
      s.line = [];
      s.lineHead = 0;
    }
    this.admitHeld(s);
  }

  private sendBatch(s: Session): void {
    const bytes = this.out.take();
    if (bytes !== undefined && s.conn.isOpen) s.conn.sendEncoded(bytes);
  }

  /** Codecs without seq: a reply frame; an error notice (msgid -1); without msgids an error closes. */
  private write(s: Session, o: Outcome): void {
    if (o === undefined || !s.conn.isOpen) return;
    if (!(o instanceof GatewayError)) {
      try {
        this.append(s, o.msgid, o.body);
        return;
      } catch (err) {
        o = new GatewayError('refused', `reply not sent: ${(err as Error).message}`);
      }
    }
    if (this.codec.hasMsgid) {
      const text = Buffer.from(o.message);
      const max = this.codec.maxBody;
      this.append(s, GATEWAY_MSGID.error, text.length > max ? text.subarray(0, max) : text);
      return;
    }
    this.sendBatch(s);
    this.log.warn(
      { session: s.id, reason: o.message },
      'request failed; closing the connection (its codec has no error frame)',
    );
    s.conn.close(`request failed: ${o.message}`);
  }

  /** Into the session's batch; a frame bigger than the batch's slab goes by itself. Throws RangeError as codec.encode. */
  private append(s: Session, msgid: number, body: Uint8Array): void {
    if (this.out.append(this.codec, msgid, body, 0, 0)) return;
    this.sendBatch(s);
    if (this.out.append(this.codec, msgid, body, 0, 0)) return;
    s.conn.sendEncoded(this.codec.encode(msgid, body));
  }

  private work(r: PendingRequest): WorkRequest {
    return {
      id: r.id,
      msgid: r.msgid,
      body: r.body,
      session: r.session,
      timeoutMs: Math.max(1, r.deadline - Date.now()),
    };
  }

  private submit(r: PendingRequest): void {
    if (this.waitHead === this.waiting.length && this.queue?.dispatch(this.work(r))) return;
    this.requests.ownBody(r.id);
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
  private pump(): void {
    while (this.waitHead < this.waiting.length) {
      const r = this.waiting[this.waitHead]!;
      if (this.requests.get(r.id) === r) {
        if (!this.queue?.dispatch(this.work(r))) break;
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

  private onLost(ids: number[], reason: string): void {
    for (const id of ids) {
      const r = this.requests.get(id);
      if (!r) continue;
      this.lostToCrashes++;
      if (this.opts.retryOnCrash && r.attempts < 2) {
        const again = this.requests.reissue(id)!;
        this.retries++;
        this.log.warn(
          { msgid: r.msgid, session: r.session.id, reason },
          'worker lost a request; retrying it once',
        );
        this.submit(again);
      } else {
        this.log.warn({ msgid: r.msgid, session: r.session.id, reason }, 'worker lost a request; error sent');
        this.requests.reject(
          id,
          new GatewayError('worker-lost', `the worker died before replying (${reason})`),
        );
      }
    }
    this.pump();
  }

  // ---- names, relay, delivery

  private register(s: Session, body: Buffer): Promise<RouteReply> | RouteReply {
    return this.respond(s, this.registerName(s, body.toString('utf8')));
  }

  private async registerName(s: Session, name: string): Promise<Outcome> {
    const ok: Outcome = { msgid: GATEWAY_MSGID.register, body: Buffer.from(s.id) };
    if (!isValidName(name)) {
      return new GatewayError('refused', `cannot register '${name}': ${describeNameRule()}`);
    }
    if (s.name === name) return ok;
    if (s.name !== undefined) this.dropName(s);
    try {
      await this.queue!.register(name, s.id);
    } catch (err) {
      return new GatewayError('refused', `cannot register '${name}': ${(err as Error).message}`);
    }
    if (!this.sessions.has(s.id)) return undefined;
    const before = this.names.get(name);
    if (before && before !== s) this.rename(before, undefined);
    this.rename(s, name);
    this.names.set(name, s);
    this.log.debug({ session: s.id, name }, 'name registered');
    return ok;
  }

  private rename(s: Session, name: string | undefined): void {
    s.name = name;
    s.info = undefined;
  }

  private dropName(s: Session): void {
    const name = s.name!;
    this.rename(s, undefined);
    if (this.names.get(name) === s) this.names.delete(name);
    this.queue?.unregister(name, s.id);
  }

  private nameTaken(name: string, id: string): void {
    const s = this.sessions.get(id);
    if (!s || s.name !== name) return;
    this.rename(s, undefined);
    if (this.names.get(name) === s) this.names.delete(name);
    s.conn.send(GATEWAY_MSGID.error, `name '${name}' was registered by another session`);
    this.log.info({ session: id, name }, 'name taken over by a newer registration');
  }

  private relay(s: Session, body: Buffer): Promise<RouteReply> | RouteReply {
    const frame = decodeRelay(body);
    if (typeof frame === 'string') return this.respond(s, new GatewayError('refused', frame));
    return this.respond(
      s,
      this.deliver(frame.target, frame.msgid, Buffer.from(frame.body)).then(
        (result): Outcome => ({ msgid: GATEWAY_MSGID.relay, body: Buffer.from(result) }),
        (err: Error) => new GatewayError('refused', err.message),
      ),
    );
  }

  /** To a client here when it is here, else through the queue (another gateway, or the store). */
  async deliver(targetText: string, msgid: number, body: Buffer): Promise<DeliverResult> {
    const target = parseTarget(targetText);
    if (typeof target === 'string') throw new Error(target);
    if (target.kind === 'session' && target.instance === this.opts.instance) {
      if (this.push(target.sessionId, msgid, body)) return 'delivered';
      throw new Error(`no session ${target.sessionId}`);
    }
    if (target.kind === 'name') {
      const s = this.names.get(target.name);
      if (s && this.push(s.id, msgid, body)) return 'delivered';
    }
    if (!this.queue) throw new Error('the gateway is not connected to its queue');
    return this.queue.deliver(target, msgid, body);
  }

  /** Writes to a session here; false when it is not here or closing. Throws RangeError for a body the codec cannot carry. */
  push(id: string, msgid: number, body: Buffer): boolean {
    const s = this.sessions.get(id);
    if (!s?.conn.isOpen) return false;
    s.conn.send(msgid, body);
    return true;
  }
}
