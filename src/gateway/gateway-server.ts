// The client side of one gateway process: every client connection is a message-layer connection
// (createMessageHandler) with a session (server/session.ts); each business message becomes a
// pending request (requests.ts) that a queue (queues/) carries to a worker (server/request-dispatch.ts);
// the reply is routed back by request id: by seq through the message layer, or in request order
// (server/in-order-answers.ts) for codecs without seq. Reserved msgids (protocol.ts) register
// names, relay to other clients and ask for the session id (server/client-names.ts).
import { type Codec, createCodec } from '../message/codecs/index.js';
import type { MessageConn } from '../message/conn.js';
import type { RouteReply } from '../message/router.js';
import { createMessageHandler, type MessageHandler } from '../message/server.js';
import { PeerLog, ThrottledCount } from '../throttled-count.js';
import type { Logger } from '../types.js';
import { GATEWAY_MSGID, isReserved } from './protocol.js';
import type { GatewayQueue, GatewayQueueEvents } from './queues/queue.js';
import { GatewayError, type OpenRequest, type Outcome, type ReplyValue, RequestTable } from './requests.js';
import { ClientNames } from './server/client-names.js';
import { InOrderAnswers } from './server/in-order-answers.js';
import { RequestDispatch } from './server/request-dispatch.js';
import { type Session, Sessions, sessionInfo } from './server/session.js';

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

export interface GatewayStats {
  sessions: number;
  pending: number;
  waiting: number;
  lateReplies: number;
  timeouts: number;
  retries: number;
  lostToCrashes: number;
  /** Requests sent again because the worker they went to had gone before taking them. */
  resent: number;
}

export class GatewayServer {
  readonly handler: MessageHandler;
  readonly codec: Codec;
  readonly requests: RequestTable;
  /** Called once per closed client connection (the daemon keeps per-IP counts). */
  onSessionClosed: (remoteAddress: string) => void = () => undefined;
  private readonly sessions: Sessions;
  private readonly dispatcher: RequestDispatch;
  private readonly names: ClientNames;
  /** Codecs without seq only. */
  private readonly inOrder: InOrderAnswers | undefined;
  private readonly late: ThrottledCount;
  private readonly timedOut: ThrottledCount;
  /** Refusals a client causes request by request, counted per client address. */
  private readonly peerLog: PeerLog;
  private readonly log: Logger;

  constructor(private readonly opts: GatewayServerOptions) {
    this.log = opts.logger;
    this.codec = createCodec(opts.codec, { maxBody: opts.maxBody });
    this.late = new ThrottledCount(this.log, 'late reply dropped (its request had timed out or was retried)');
    this.timedOut = new ThrottledCount(this.log, 'request timed out; error sent to the client');
    this.peerLog = new PeerLog(this.log);
    if (opts.refuseOverInflight && !this.codec.hasSeq) {
      throw new RangeError('refuseOverInflight needs the seq codec (the only one with error replies)');
    }
    this.requests = new RequestTable(opts.requestTimeoutMs, (r) =>
      this.timedOut.add({ msgid: r.msgid, session: r.session.id }),
    );
    this.sessions = new Sessions(opts.instance);
    this.dispatcher = new RequestDispatch(this.requests, {
      maxWaiting: opts.maxWaiting,
      retryOnCrash: opts.retryOnCrash,
      logger: this.log,
    });
    this.names = new ClientNames(opts.instance, this.sessions, this.log);
    this.inOrder = this.codec.hasSeq
      ? undefined
      : new InOrderAnswers({
          codec: this.codec,
          maxInflightPerConn: opts.maxInflightPerConn,
          maxSessionBytes: opts.maxSessionBytes,
          logger: this.log,
          dispatch: (s, msgid, body) => this.dispatch(s, msgid, body),
        });
    this.handler = createMessageHandler({
      codec: this.codec,
      fallback: (body, msgid, conn) => this.frame(conn, msgid, body),
      onConnect: (conn) => {
        this.sessions.open(conn);
      },
      onClose: (conn) => this.closeSession(conn),
      // seq codec: the message layer holds reading at our bound itself (or, to refuse, lets one
      // more reach us). Other codecs: our handler returns at once; InOrderAnswers holds reading,
      // and answers keep request order.
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
    lost: (ids, reason) => this.dispatcher.lost(ids, reason),
    undelivered: (ids) => this.dispatcher.resend(ids),
    capacity: () => this.dispatcher.pump(),
    push: (id, msgid, body) => this.names.push(id, msgid, body),
    nameTaken: (name, id) => this.names.taken(name, id),
    send: (target, msgid, body) => this.names.deliver(target, msgid, body),
  };

  /**
   * seq codec: replies come in bursts from a worker link; each would be its own write syscall on
   * its client socket. The socket stays corked until the burst's promise callbacks have run.
   * (Other codecs write a session's ready answers once per event-loop turn: InOrderAnswers.)
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
    this.dispatcher.attach(queue);
    this.names.attach(queue);
  }

  get stats(): GatewayStats {
    return {
      sessions: this.sessions.size,
      pending: this.requests.size,
      waiting: this.dispatcher.waitingCount,
      lateReplies: this.requests.lateReplies,
      timeouts: this.requests.timeouts,
      retries: this.dispatcher.retries,
      lostToCrashes: this.dispatcher.lostToCrashes,
      resent: this.dispatcher.resent,
    };
  }

  private closeSession(conn: MessageConn): void {
    const s = this.sessions.close(conn);
    if (!s) return;
    if (s.name !== undefined) this.names.drop(s);
    this.onSessionClosed(conn.remoteAddress);
  }

  /** Every client frame. Codecs without seq: past the in-flight bound the frame is held. */
  private frame(conn: MessageConn, msgid: number, body: Buffer): Promise<RouteReply> | RouteReply {
    const s = this.sessions.of(conn);
    if (this.inOrder?.holdIfFull(s, msgid, body)) return undefined;
    return this.dispatch(s, msgid, body);
  }

  private dispatch(s: Session, msgid: number, body: Buffer): Promise<RouteReply> | RouteReply {
    switch (msgid) {
      case GATEWAY_MSGID.register:
        return this.respond(s, this.names.register(s, body.toString('utf8')));
      case GATEWAY_MSGID.relay:
        return this.respond(s, this.names.relay(body));
      case GATEWAY_MSGID.session:
        return this.respond(s, { msgid: GATEWAY_MSGID.session, body: Buffer.from(s.id) });
      default:
        return this.request(s, msgid, body);
    }
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
    // bound limits what that pins); one that has to wait for a worker gets a copy if its read is much larger than itself (RequestTable.ownBody).
    const inOrder = this.inOrder;
    if (!inOrder) {
      return new Promise<RouteReply>((resolve, reject) => {
        const r = this.requests.open(msgid, body, sessionInfo(s), (o) => {
          s.inflight--;
          if (o instanceof GatewayError) reject(o);
          else resolve(o);
        });
        this.dispatcher.submit(r, true);
      });
    }
    const r = this.requests.open(msgid, body, sessionInfo(s), this.answered, s);
    inOrder.enqueue(s, r);
    this.dispatcher.submit(r, true);
    return undefined;
  }

  /** Codecs without seq: a request's outcome, into its place in its session's line (one function for all). */
  private readonly answered = (o: Outcome, r: OpenRequest): void => {
    const s = r.owner as Session;
    s.inflight--;
    this.inOrder!.finish(s, r, o);
  };

  /**
   * Sends what a client frame gets back. seq codec: through the message layer, which pairs it with
   * its request by seq (an error becomes an error reply). Other codecs: in request order.
   */
  private respond(s: Session, outcome: Outcome | Promise<Outcome>): Promise<RouteReply> | RouteReply {
    const inOrder = this.inOrder;
    if (!inOrder) {
      const toRoute = (o: Outcome): RouteReply => {
        if (o instanceof GatewayError) throw o;
        return o;
      };
      return outcome instanceof Promise ? outcome.then(toRoute) : toRoute(outcome);
    }
    const slot = inOrder.slot(s);
    if (outcome instanceof Promise) {
      void outcome.then((o) => inOrder.finish(s, slot, o));
    } else {
      inOrder.finish(s, slot, outcome);
    }
    return undefined;
  }
}
