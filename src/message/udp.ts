// UDP with the same codecs and routes: one datagram = one frame. A datagram that is not exactly
// one frame (its header length disagrees with its size) is dropped and logged. A route
// handler's return value, or conn.send, goes back to the datagram's sender.
import type { Socket as DgramSocket, RemoteInfo } from 'node:dgram';
import { createSocket } from 'node:dgram';
import { isIPv6 } from 'node:net';
import type { Logger } from 'pino';
import { answerFields, isProgrammerError } from '../errors.js';
import { PeerLog } from '../throttled-count.js';
import {
  type Codec,
  createCodec,
  decodeDatagram,
  FLAG_ERROR,
  FLAG_REPLY,
  type Frame,
} from './codecs/index.js';
import { toBytes } from './conn.js';
import { defaultLogger } from './default-logger.js';
import { MessageError, ReplyError } from './errors.js';
import { checkTimeout, DEFAULT_REQUEST_TIMEOUT, PendingRequests, type RequestOptions } from './pending.js';
import {
  isThenable,
  type MessagePeer,
  type RouteHandler,
  Router,
  type RouteTable,
  replyParts,
} from './router.js';

/** The sender of a datagram, as a route handler sees it. `state` is fresh per datagram; close() does nothing. */
export type UdpPeer = MessagePeer;

export interface UdpStats {
  /** Datagrams that were not exactly one valid frame: dropped and logged. */
  malformed: number;
  /** Frames with no route and no fallback: dropped and logged. */
  unroutable: number;
  /** Replies that matched no waiting request (late or unknown): dropped. */
  lateReplies: number;
}

interface UdpRouting {
  codec?: string | Codec;
  maxBody?: number;
  routes?: RouteTable<UdpPeer> | Router<UdpPeer>;
  fallback?: RouteHandler<UdpPeer>;
  /** Default: warnings and errors on stderr. */
  logger?: Logger;
}

export type UdpMessageHandlerOptions = UdpRouting;

export interface UdpMessageHandler {
  /** Serves datagrams arriving on `socket` (bound by the caller); returns a function that stops. */
  (socket: DgramSocket): () => void;
  readonly codec: Codec;
  readonly stats: UdpStats;
}

/** Decodes, routes and answers datagrams for a server or a client. */
class DatagramRouter {
  readonly codec: Codec;
  readonly stats: UdpStats = { malformed: 0, unroutable: 0, lateReplies: 0 };
  private readonly router: Router<UdpPeer>;
  /** Lines a sender can cause datagram by datagram, counted per sender address. */
  readonly peerLog: PeerLog;

  constructor(
    opts: UdpRouting,
    readonly logger: Logger,
  ) {
    this.codec = createCodec(opts.codec ?? 'lars', { maxBody: opts.maxBody });
    this.router = new Router<UdpPeer>(opts.routes, opts.fallback);
    this.peerLog = new PeerLog(logger);
  }

  /** The datagram's frame, or undefined after logging why it was dropped. */
  decode(msg: Buffer, rinfo: RemoteInfo): Frame | undefined {
    const frame = decodeDatagram(this.codec, msg);
    if (typeof frame !== 'string') return frame;
    this.stats.malformed++;
    this.peerLog.warn({
      peer: rinfo.address,
      msg: 'malformed datagram dropped',
      fields: { remote: `${rinfo.address}:${rinfo.port}`, reason: frame, bytes: msg.length },
    });
    return undefined;
  }

  /** Runs the frame's route; its return value (or error, with seq) goes back to `send`. */
  dispatch(frame: Frame, rinfo: RemoteInfo, send: (frame: Buffer) => void): void {
    const { codec, peerLog } = this;
    const handler = this.router.get(frame.msgid);
    if (handler === undefined) {
      this.stats.unroutable++;
      peerLog.warn({
        peer: rinfo.address,
        msg: 'no route for msgid; datagram dropped',
        fields: { msgid: frame.msgid, remote: `${rinfo.address}:${rinfo.port}` },
      });
      return;
    }
    const peer: UdpPeer = {
      id: `udp:${rinfo.address}:${rinfo.port}`,
      state: {},
      remoteAddress: rinfo.address,
      remotePort: rinfo.port,
      send: (msgid, body) => {
        send(codec.encode(msgid, toBytes(body)));
        return true;
      },
      close: () => {},
    };
    const isRequest = codec.hasSeq && frame.seq !== 0;
    const fail = (err: unknown) => {
      // As a stream connection's (conn.ts): an error reply without a stack, a bug with it.
      if (err instanceof ReplyError)
        peerLog.debug({
          peer: rinfo.address,
          msg: 'error reply sent',
          fields: { msgid: frame.msgid, remote: peer.id, reason: err.message },
        });
      else if (isRequest && !isProgrammerError(err))
        peerLog.info({
          peer: rinfo.address,
          msg: 'route handler failed',
          fields: { msgid: frame.msgid, remote: peer.id, ...answerFields(err) },
        });
      else
        peerLog.warn({
          peer: rinfo.address,
          msg: 'route handler failed',
          fields: { err, msgid: frame.msgid, remote: peer.id },
        });
      if (!isRequest) return;
      const text = Buffer.from(err instanceof Error ? err.message : String(err));
      send(codec.encode(frame.msgid, text.subarray(0, codec.maxBody), frame.seq, FLAG_REPLY | FLAG_ERROR));
    };
    const answer = (value: unknown) => {
      try {
        const parts = replyParts(value);
        if (parts === undefined) return;
        const id = parts.msgid ?? frame.msgid;
        send(
          isRequest ? codec.encode(id, parts.bytes, frame.seq, FLAG_REPLY) : codec.encode(id, parts.bytes),
        );
      } catch (err) {
        fail(err);
      }
    };
    try {
      const result = handler(frame.body, frame.msgid, peer);
      if (isThenable(result)) result.then(answer, fail);
      else answer(result);
    } catch (err) {
      fail(err);
    }
  }
}

export function createUdpMessageHandler(options: UdpMessageHandlerOptions = {}): UdpMessageHandler {
  const routing = new DatagramRouter(options, options.logger ?? defaultLogger('udp-message-server'));
  const attach = (socket: DgramSocket) => {
    const onMessage = (msg: Buffer, rinfo: RemoteInfo) => {
      const frame = routing.decode(msg, rinfo);
      if (frame === undefined) return;
      if ((frame.flags & FLAG_REPLY) !== 0) {
        routing.stats.lateReplies++;
        return;
      }
      routing.dispatch(frame, rinfo, (out) =>
        socket.send(out, rinfo.port, rinfo.address, (err) => {
          if (err)
            routing.peerLog.warn({
              peer: rinfo.address,
              msg: 'udp reply not sent',
              fields: {
                code: (err as NodeJS.ErrnoException).code,
                err: err.message,
                remote: `${rinfo.address}:${rinfo.port}`,
              },
            });
        }),
      );
    };
    socket.on('message', onMessage);
    return () => {
      socket.off('message', onMessage);
    };
  };
  return Object.assign(attach, { codec: routing.codec, stats: routing.stats });
}

export interface UdpMessageClientOptions extends UdpRouting {
  /** Default 127.0.0.1. */
  host?: string;
  port: number;
  /** request() default timeout, ms. Default 10000. */
  requestTimeout?: number;
  /** Requests waiting for replies at once. Default 1024. */
  maxPending?: number;
}

/** A UDP socket connected to one server: send, request (use the seq codec: datagrams can be lost or reordered). */
export class UdpMessageClient {
  private readonly routing: DatagramRouter;
  private readonly pending: PendingRequests;
  private readonly requestTimeout: number;
  private socket: DgramSocket | undefined;
  private closed = false;

  constructor(private readonly opts: UdpMessageClientOptions) {
    this.routing = new DatagramRouter(opts, opts.logger ?? defaultLogger('udp-message-client'));
    this.requestTimeout = checkTimeout(opts.requestTimeout ?? DEFAULT_REQUEST_TIMEOUT);
    this.pending = new PendingRequests(
      this.routing.codec.hasSeq,
      opts.maxPending ?? 1024,
      this.routing.stats,
    );
  }

  get codec(): Codec {
    return this.routing.codec;
  }

  get stats(): UdpStats {
    return this.routing.stats;
  }

  /** Binds an ephemeral port and connects it to the server (only its datagrams are received). */
  async connect(): Promise<void> {
    if (this.closed) throw new MessageError('ERR_MESSAGE_CLOSED', 'client is closed');
    if (this.socket !== undefined) return;
    const host = this.opts.host ?? '127.0.0.1';
    const socket = createSocket(isIPv6(host) ? 'udp6' : 'udp4');
    this.socket = socket;
    socket.on('message', this.onMessage);
    // A connected UDP socket reports ICMP port unreachable as ECONNREFUSED; the next send may still work.
    socket.on('error', (err) => this.routing.logger.warn({ err }, 'udp socket error'));
    await new Promise<void>((resolve, reject) => {
      socket.once('error', reject);
      socket.connect(this.opts.port, host, () => {
        socket.off('error', reject);
        resolve();
      });
    });
  }

  /** Sends one datagram (seq 0). Throws ERR_MESSAGE_CLOSED before connect() or after close(). */
  send(msgid: number, body?: Uint8Array | string): boolean {
    this.write(this.routing.codec.encode(msgid, toBytes(body)));
    return true;
  }

  /** As MessageConn#request; a lost datagram shows as ERR_MESSAGE_TIMEOUT. */
  request(msgid: number, body?: Uint8Array | string, options: RequestOptions = {}): Promise<Buffer> {
    let opened: { seq: number; reply: Promise<Buffer> };
    try {
      if (this.socket === undefined || this.closed) throw this.closedError();
      opened = this.pending.open(
        this.routing.codec.hasMsgid ? (options.replyMsgid ?? msgid) : 0,
        checkTimeout(options.timeout ?? this.requestTimeout),
      );
    } catch (err) {
      return Promise.reject(err);
    }
    try {
      this.write(this.routing.codec.encode(msgid, toBytes(body), opened.seq, 0));
    } catch (err) {
      this.pending.abandon(opened.seq, err as Error);
    }
    return opened.reply;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.pending.rejectAll(new MessageError('ERR_MESSAGE_CLOSED', 'client closed before the reply'));
    const socket = this.socket;
    if (socket !== undefined) await new Promise<void>((resolve) => socket.close(() => resolve()));
  }

  private closedError(): MessageError {
    return new MessageError(
      'ERR_MESSAGE_CLOSED',
      this.closed ? 'client is closed' : 'not connected: call connect() first',
    );
  }

  private write(frame: Buffer): void {
    if (this.socket === undefined || this.closed) throw this.closedError();
    this.socket.send(frame, (err) => {
      if (err) this.routing.logger.warn({ err }, 'udp send failed');
    });
  }

  private readonly onMessage = (msg: Buffer, rinfo: RemoteInfo): void => {
    const { routing } = this;
    const frame = routing.decode(msg, rinfo);
    if (frame === undefined) return;
    if (routing.codec.hasSeq) {
      if ((frame.flags & FLAG_REPLY) !== 0) {
        this.pending.settleSeq(frame.seq, frame.body, (frame.flags & FLAG_ERROR) !== 0);
        return;
      }
    } else if (this.pending.size > 0 && this.pending.settleInOrder(frame.msgid, frame.body)) {
      return;
    }
    routing.dispatch(frame, rinfo, (out) => {
      if (!this.closed) this.write(out);
    });
  };
}
