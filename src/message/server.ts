// createMessageHandler: a Tcpmain built from routes, so the message layer runs unchanged under
// every process model. Each process (worker) has its own handler and sees its own connections.

import { PeerLog, peerLogOf } from '../throttled-count.js';
import type { TcpdaemonEnv, Tcpmain } from '../types.js';
import { workerBus } from '../worker-bus.js';
import { type Codec, createCodec } from './codecs/index.js';
import {
  DEFAULT_MAX_IN_FLIGHT,
  DEFAULT_MAX_PENDING,
  DEFAULT_OUTPUT_CAP,
  MessageConn,
  type MessageStats,
  newStats,
  toBytes,
} from './conn.js';
import { runHook } from './hooks.js';
import { DEFAULT_REQUEST_TIMEOUT } from './pending.js';
import { type RouteHandler, Router, type RouteTable } from './router.js';

export interface MessageHandlerOptions {
  /** A codec name (`lars`, `seq`, `tdhb:W`, `u32be`, `line`) or a codec. Default `lars`. */
  codec?: string | Codec;
  /** msgid -> handler. A msgid given twice (pairs, Map) throws here. */
  routes?: RouteTable<MessageConn> | Router<MessageConn>;
  /** Gets frames whose msgid has no route; without it they are dropped and logged. */
  fallback?: RouteHandler<MessageConn>;
  /** Runs (and is awaited) before the connection's first message is dispatched. A throw closes it. */
  onConnect?: (conn: MessageConn) => unknown;
  /** Runs exactly once per connection, after it closed, with the reason. */
  onClose?: (conn: MessageConn, reason: string) => unknown;
  /** Largest body accepted or sent, bytes; for a codec given by name. Default 65527. */
  maxBody?: number;
  /** Bytes queued for a peer that does not read before it is closed. Default 8 MiB. */
  outputCap?: number;
  /** Async route handlers running at once per connection (seq codec only). Default 64. */
  maxInFlight?: number;
  /** conn.request(): replies awaited at once per connection. Default 1024. */
  maxPending?: number;
  /** conn.request() default timeout, ms. Default 10000. */
  requestTimeout?: number;
  /** TCP_NODELAY on every connection, as Lars does. Default true. */
  noDelay?: boolean;
  /**
   * Which handler of the same module in the other workers broadcastAll() reaches: give each handler
   * of a module its own name when a module has several. Default 'default'.
   */
  name?: string;
}

export interface MessageHandler extends Tcpmain {
  readonly codec: Codec;
  /** This process's open connections by id. */
  readonly connections: ReadonlyMap<string, MessageConn>;
  readonly stats: MessageStats;
  /** Sends one frame to every open connection of this process (that `filter` accepts); returns how many. */
  broadcast(msgid: number, body?: Uint8Array | string, filter?: (conn: MessageConn) => boolean): number;
  /**
   * Sends one frame to every open connection of every worker of the daemon (through the worker
   * bus: env.broadcast). Resolves once it left this worker; rejects with BroadcastFullError when
   * this worker's bus is at its bound.
   */
  broadcastAll(msgid: number, body?: Uint8Array | string): Promise<void>;
}

function positive(name: string, value: number | undefined, fallback: number): number {
  if (value === undefined) return fallback;
  if (!Number.isSafeInteger(value) || value < 1)
    throw new RangeError(`${name} must be a positive integer, got ${value}`);
  return value;
}

export function createMessageHandler(options: MessageHandlerOptions = {}): MessageHandler {
  const codec = createCodec(options.codec ?? 'lars', { maxBody: options.maxBody });
  const router = new Router<MessageConn>(options.routes, options.fallback);
  const outputCap = positive('outputCap', options.outputCap, DEFAULT_OUTPUT_CAP);
  const maxInFlight = positive('maxInFlight', options.maxInFlight, DEFAULT_MAX_IN_FLIGHT);
  const maxPending = positive('maxPending', options.maxPending, DEFAULT_MAX_PENDING);
  const requestTimeout = options.requestTimeout ?? DEFAULT_REQUEST_TIMEOUT;
  const { onConnect, onClose } = options;
  const noDelay = options.noDelay ?? true;
  const connections = new Map<string, MessageConn>();
  const stats = newStats();
  // Served by the daemon, env carries its PeerLog; called by hand, this handler keeps its own.
  let ownPeerLog: PeerLog | undefined;
  const peerLogFor = (env: TcpdaemonEnv): PeerLog => {
    const daemons = peerLogOf(env);
    if (daemons) return daemons;
    ownPeerLog ??= new PeerLog(env.logger);
    return ownPeerLog;
  };

  const serve = (socket: Parameters<Tcpmain>[0], env: TcpdaemonEnv): Promise<void> => {
    const logger = env.logger;
    if (noDelay) socket.setNoDelay(true);
    const conn = new MessageConn(socket, {
      id: env.connectionId,
      codec,
      router,
      logger,
      state: env.state,
      remoteAddress: env.remoteAddress,
      remotePort: env.remotePort,
      peerLog: peerLogFor(env),
      outputCap,
      maxInFlight,
      maxPending,
      requestTimeout,
      stats,
    });
    connections.set(conn.id, conn);
    const onAbort = () => conn.close('shutdown');
    env.signal.addEventListener('abort', onAbort, { once: true });
    if (env.signal.aborted) onAbort();

    const done = conn.closed.then(async (reason) => {
      connections.delete(conn.id);
      env.signal.removeEventListener('abort', onAbort);
      logger.debug({ reason }, 'message connection closed');
      if (onClose !== undefined) await runHook('onClose', logger, () => onClose(conn, reason));
    });

    const connected = onConnect === undefined ? true : runHook('onConnect', logger, () => onConnect(conn));
    const begin = (ok: boolean) => (ok ? conn.start() : conn.destroy('onConnect hook failed'));
    if (typeof connected === 'boolean') begin(connected);
    else void connected.then(begin);
    return done;
  };

  const broadcast = (msgid: number, body?: Uint8Array | string, filter?: (conn: MessageConn) => boolean) => {
    const frame = codec.encode(msgid, toBytes(body));
    let sent = 0;
    for (const conn of connections.values()) {
      if (!conn.isOpen || (filter !== undefined && !filter(conn))) continue;
      conn.sendEncoded(frame);
      sent++;
    }
    return sent;
  };

  // Every worker's handler of this name hears what any of them broadcasts to all.
  const topic = `tcpdaemon.message.${options.name ?? 'default'}`;
  workerBus.subscribe(topic, (data) => {
    broadcast(data.readInt32LE(0), data.subarray(4));
  });
  const broadcastAll = (msgid: number, body?: Uint8Array | string) => {
    const bytes = toBytes(body);
    const data = Buffer.allocUnsafe(4 + bytes.length);
    data.writeInt32LE(msgid, 0);
    data.set(bytes, 4);
    return workerBus.publish(topic, data);
  };

  return Object.assign(serve, { codec, connections, stats, broadcast, broadcastAll });
}
