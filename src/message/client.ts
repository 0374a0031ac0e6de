// MessageClient: one framed connection to a server that reconnects by itself, with exponential
// backoff and jitter — also when the very first connect fails. Sends made while disconnected are
// queued up to a bound and go out after the next onConnect. Given a service instead of a host, it
// picks a host per call (service-calls.ts) and holds a connection per host picked.
import { isIP, connect as netConnect, type Socket } from 'node:net';
import { type ConnectionOptions, connect as tlsConnect } from 'node:tls';
import type { Logger } from 'pino';
import { checkServiceDiscovery, openServicePool, type ServiceDiscovery } from '../fleet/service-pool.js';
import { PeerLog } from '../throttled-count.js';
import { Backoff, type BackoffOptions } from './backoff.js';
import { type Codec, createCodec } from './codecs/index.js';
import {
  DEFAULT_MAX_IN_FLIGHT,
  DEFAULT_MAX_PENDING,
  DEFAULT_OUTPUT_CAP,
  MessageConn,
  type MessageStats,
  toBytes,
} from './conn.js';
import { defaultLogger } from './default-logger.js';
import { MessageError } from './errors.js';
import { runHook } from './hooks.js';
import { checkTimeout, DEFAULT_REQUEST_TIMEOUT, type RequestOptions } from './pending.js';
import { type RouteHandler, Router, type RouteTable } from './router.js';
import { ServiceCalls, type ServiceHost } from './service-calls.js';

export interface MessageClientOptions extends ServiceDiscovery {
  /**
   * Call this service instead of one host (with `discovery`, or `hosts`): each request() and send()
   * goes to a host picked by `strategy` among the service's live hosts, with passive (Lars) health
   * fed by each call's outcome; one connection per host picked. See docs/fleet-client.md.
   */
  service?: string;
  /** Service mode: further hosts tried for a call when a host cannot be connected to. Default 2. */
  retries?: number;
  /** Default 127.0.0.1. */
  host?: string;
  port?: number;
  /** A unix socket path instead of host and port. */
  path?: string;
  /** A codec name or a codec; must match the server's. Default `lars`. */
  codec?: string | Codec;
  /** Frames the server pushes, by msgid (replies to request() never reach routes). */
  routes?: RouteTable<MessageConn> | Router<MessageConn>;
  fallback?: RouteHandler<MessageConn>;
  /**
   * After every (re)connect, before anything queued is sent and before any frame is dispatched.
   * Send through its `conn` argument: client.send()/request() queue until it has finished.
   */
  onConnect?: (conn: MessageConn) => unknown;
  /** On every loss of a connection, with the reason. */
  onClose?: (conn: MessageConn, reason: string) => unknown;
  /** Ms for a connect to complete. Default 5000. */
  connectTimeout?: number;
  /** Reconnect after a failure or a loss (default), with these delays; false: give up, as Lars does. */
  reconnect?: boolean | BackoffOptions;
  /** Frames held while disconnected. Default 1024. */
  maxQueue?: number;
  /** Body bytes held while disconnected. Default 1 MiB. */
  maxQueueBytes?: number;
  /** request() default timeout, ms. Default 10000. */
  requestTimeout?: number;
  maxBody?: number;
  outputCap?: number;
  maxInFlight?: number;
  maxPending?: number;
  /** TCP_NODELAY. Default true. */
  noDelay?: boolean;
  /**
   * TLS to the server: node's tls.connect options (ca, cert, key, servername, ALPNProtocols, ...),
   * or true for the defaults (system CAs). servername defaults to `host` unless it is an IP. A
   * certificate that does not verify is a failed connect (retried like any other).
   */
  tls?: true | ConnectionOptions;
  /** Default: warnings and errors on stderr. */
  logger?: Logger;
}

export interface ClientStats extends MessageStats {
  /** Connections established (the first one and every reconnect). */
  connects: number;
  /** Connect attempts that failed or timed out. */
  failedConnects: number;
}

interface Queued {
  msgid: number;
  body: Uint8Array;
  /** Plain sends: the frame, encoded when queued (so a bad body fails at send()). */
  frame?: Buffer;
  request?: {
    options: RequestOptions;
    deadline: number;
    timer: NodeJS.Timeout | undefined;
    resolve: (body: Buffer) => void;
    reject: (err: Error) => void;
  };
}

/** Internal: the per-host clients of a service-mode client count into its stats. */
const SHARED_STATS = Symbol('sharedStats');
/** Internal: a per-host client of a service-mode client (its owner logs a failed connect). */
const SERVICE_LINK = Symbol('serviceLink');

export class MessageClient {
  readonly codec: Codec;
  readonly stats: ClientStats;
  /** Service mode (opts.service or opts.hosts); undefined for a client of one host. */
  private readonly calls: ServiceCalls | undefined;
  private readonly router: Router<MessageConn>;
  private readonly logger: Logger;
  private readonly backoff: Backoff | undefined;
  private readonly connectTimeout: number;
  private readonly requestTimeout: number;
  private readonly maxQueue: number;
  private readonly maxQueueBytes: number;
  private readonly target: string;
  /** What the server can make us log, counted (see PeerLog). */
  private readonly peerLog: PeerLog;
  private started = false;
  private stopped = false;
  private connecting: Socket | undefined;
  private current: MessageConn | undefined;
  private ready = false;
  private queue: Queued[] = [];
  private queueBytes = 0;
  private reconnectTimer: NodeJS.Timeout | undefined;
  private waiters: { resolve: () => void; reject: (err: Error) => void }[] = [];
  private seq = 0;

  constructor(private readonly opts: MessageClientOptions) {
    const byService = opts.service !== undefined || opts.hosts !== undefined || opts.discovery !== undefined;
    if (
      !byService &&
      opts.path === undefined &&
      !(Number.isInteger(opts.port) && opts.port! > 0 && opts.port! < 65536)
    ) {
      throw new RangeError(
        `MessageClient needs a port (1-65535), a path or a service, got port ${opts.port}`,
      );
    }
    this.stats = (opts as { [SHARED_STATS]?: ClientStats })[SHARED_STATS] ?? {
      lateReplies: 0,
      unroutable: 0,
      connects: 0,
      failedConnects: 0,
    };
    this.codec = createCodec(opts.codec ?? 'lars', { maxBody: opts.maxBody });
    this.router = new Router<MessageConn>(opts.routes, opts.fallback);
    this.target = byService
      ? `service ${opts.service ?? '(hosts)'}`
      : (opts.path ?? `${opts.host ?? '127.0.0.1'}:${opts.port}`);
    this.logger = (opts.logger ?? defaultLogger('message-client')).child({ target: this.target });
    this.peerLog = new PeerLog(this.logger);
    this.backoff =
      opts.reconnect === false ? undefined : new Backoff(opts.reconnect === true ? {} : opts.reconnect);
    this.connectTimeout = checkTimeout(opts.connectTimeout ?? 5000);
    this.requestTimeout = checkTimeout(opts.requestTimeout ?? DEFAULT_REQUEST_TIMEOUT);
    this.maxQueue = opts.maxQueue ?? 1024;
    this.maxQueueBytes = opts.maxQueueBytes ?? 1024 * 1024;
    this.calls = byService ? this.serviceCalls() : undefined;
  }

  private serviceCalls(): ServiceCalls {
    const opts = this.opts;
    checkServiceDiscovery(opts, 'MessageClient');
    const logger = this.logger;
    return new ServiceCalls({
      service: opts.service ?? '(hosts)',
      codec: this.codec,
      requestTimeout: this.requestTimeout,
      retries: opts.retries ?? 2,
      logger,
      open: () => openServicePool(opts, logger),
      makeClient: (host, tls, lost) => {
        const onClose = opts.onClose;
        return new MessageClient({
          ...opts,
          service: undefined,
          hosts: undefined,
          discovery: undefined,
          host: host.host,
          port: host.port,
          path: undefined,
          codec: this.codec,
          routes: this.router,
          fallback: undefined,
          reconnect: false,
          tls: opts.tls ?? (tls ? true : undefined),
          logger: opts.logger ?? defaultLogger('message-client'),
          onClose: (conn, reason) => {
            lost(reason);
            return onClose?.(conn, reason);
          },
          [SHARED_STATS]: this.stats,
          [SERVICE_LINK]: true,
        } as MessageClientOptions);
      },
    });
  }

  /** Connected and past onConnect: sends go straight to the socket. */
  get connected(): boolean {
    if (this.calls) return this.calls.connected;
    return this.ready && this.current?.isOpen === true;
  }

  /** The live connection, if any (service mode: none; each host has its own). */
  get conn(): MessageConn | undefined {
    return this.current;
  }

  /** Service mode: the service's hosts, their health and this client's connections; [] otherwise. */
  hosts(): ServiceHost[] {
    return this.calls?.hosts() ?? [];
  }

  /** Frames queued while disconnected. */
  get queued(): number {
    if (this.calls) return this.calls.queued;
    return this.queue.length;
  }

  /**
   * Starts connecting (in the background; calling again does not start a second connection).
   * Resolves once connected and past onConnect. Rejects only if close() comes first, or when
   * reconnect is false and the connect fails. Service mode: once connected to one of the
   * service's hosts; rejects with ERR_MESSAGE_NO_HOST when none is live or none can be reached.
   */
  connect(): Promise<void> {
    if (this.stopped) return Promise.reject(new MessageError('ERR_MESSAGE_CLOSED', 'client is closed'));
    if (this.calls) return this.calls.connect();
    if (!this.started) {
      this.started = true;
      this.attempt();
    }
    if (this.connected) return Promise.resolve();
    return new Promise((resolve, reject) => this.waiters.push({ resolve, reject }));
  }

  /**
   * Sends one frame. Connected: as conn.send (true = below the high-water mark). Disconnected:
   * queued (returns false). Throws MessageError ERR_MESSAGE_QUEUE_FULL when the queue is at its
   * bound, ERR_MESSAGE_CLOSED after close(); RangeError when the codec cannot carry the body.
   */
  send(msgid: number, body?: Uint8Array | string): boolean {
    if (this.stopped) throw new MessageError('ERR_MESSAGE_CLOSED', 'client is closed');
    if (this.calls) return this.calls.send(msgid, body);
    if (this.connected && this.queue.length === 0) return this.current!.send(msgid, body);
    const bytes = toBytes(body);
    const frame = this.codec.encode(msgid, bytes);
    this.enqueue({ msgid, body: bytes, frame });
    return false;
  }

  /**
   * Sends a request and resolves with the reply's body (see MessageConn#request). Disconnected,
   * it is queued and its timeout already runs. Rejects with MessageError: ERR_MESSAGE_TIMEOUT,
   * ERR_MESSAGE_REMOTE, ERR_MESSAGE_CLOSED (connection lost before the reply; requests are not
   * resent), ERR_MESSAGE_QUEUE_FULL, ERR_MESSAGE_TOO_MANY_REQUESTS. Service mode: sent to a
   * host picked for it (another one is tried when a host cannot be connected to); ERR_MESSAGE_NO_HOST
   * when the service has no live host or none of those tried could be reached.
   */
  request(msgid: number, body?: Uint8Array | string, options: RequestOptions = {}): Promise<Buffer> {
    if (this.stopped) return Promise.reject(new MessageError('ERR_MESSAGE_CLOSED', 'client is closed'));
    if (this.calls) return this.calls.request(msgid, body, options);
    const withTimeout = { ...options, timeout: options.timeout ?? this.requestTimeout };
    if (this.connected && this.queue.length === 0) return this.current!.request(msgid, body, withTimeout);
    let timeout: number;
    const bytes = toBytes(body);
    try {
      timeout = checkTimeout(withTimeout.timeout);
      this.codec.encode(msgid, bytes);
    } catch (err) {
      return Promise.reject(err);
    }
    return new Promise<Buffer>((resolve, reject) => {
      const item: Queued = {
        msgid,
        body: bytes,
        request: { options: withTimeout, deadline: Date.now() + timeout, timer: undefined, resolve, reject },
      };
      try {
        this.enqueue(item);
      } catch (err) {
        reject(err);
        return;
      }
      if (Number.isFinite(timeout)) {
        item.request!.timer = setTimeout(() => {
          this.dequeue(item);
          reject(
            new MessageError(
              'ERR_MESSAGE_TIMEOUT',
              `no reply within ${timeout} ms (never sent: disconnected)`,
            ),
          );
        }, timeout);
      }
    });
  }

  /** Stops reconnecting, fails what is queued, ends the connection; resolves once it has closed. */
  async close(): Promise<void> {
    if (this.calls) {
      this.stopped = true;
      await this.calls.close();
      return;
    }
    if (!this.stopped) {
      this.stopped = true;
      clearTimeout(this.reconnectTimer);
      this.connecting?.destroy();
      this.connecting = undefined;
      const closedError = () => new MessageError('ERR_MESSAGE_CLOSED', 'client is closed');
      for (const item of this.queue) {
        clearTimeout(item.request?.timer);
        item.request?.reject(closedError());
      }
      this.queue = [];
      this.queueBytes = 0;
      for (const w of this.waiters.splice(0)) w.reject(closedError());
    }
    const conn = this.current;
    if (conn !== undefined) {
      conn.close('client closed');
      await conn.closed;
    }
  }

  private enqueue(item: Queued): void {
    if (this.queue.length >= this.maxQueue || this.queueBytes + item.body.length > this.maxQueueBytes) {
      throw new MessageError(
        'ERR_MESSAGE_QUEUE_FULL',
        `not connected to ${this.target} and the send queue is full (${this.queue.length} frames, ${this.queueBytes} bytes; bounds ${this.maxQueue} frames, ${this.maxQueueBytes} bytes)`,
      );
    }
    this.queue.push(item);
    this.queueBytes += item.body.length;
  }

  private dequeue(item: Queued): void {
    const i = this.queue.indexOf(item);
    if (i < 0) return;
    this.queue.splice(i, 1);
    this.queueBytes -= item.body.length;
  }

  private attempt(): void {
    if (this.stopped) return;
    const tls = this.opts.tls;
    const host = this.opts.host ?? '127.0.0.1';
    const target = this.opts.path !== undefined ? { path: this.opts.path } : { host, port: this.opts.port! };
    const socket: Socket = tls
      ? tlsConnect({
          ...target,
          ...(isIP(host) === 0 && this.opts.path === undefined ? { servername: host } : {}),
          ...(tls === true ? {} : tls),
        })
      : netConnect(target);
    this.connecting = socket;
    const timer = setTimeout(() => {
      socket.destroy(new Error(`connect timeout after ${this.connectTimeout} ms`));
    }, this.connectTimeout);
    // close() destroys a connecting socket without an error: the timer must go with it.
    socket.once('close', () => clearTimeout(timer));
    const onError = (err: Error) => {
      clearTimeout(timer);
      this.connecting = undefined;
      this.connectFailed(err);
    };
    socket.once('error', onError);
    socket.once(tls ? 'secureConnect' : 'connect', () => {
      clearTimeout(timer);
      socket.off('error', onError);
      this.connecting = undefined;
      this.onSocketConnected(socket);
    });
  }

  private connectFailed(err: NodeJS.ErrnoException): void {
    if (this.stopped) return;
    this.stats.failedConnects++;
    const why = err.code ?? err.message;
    if (this.backoff === undefined) {
      if ((this.opts as { [SERVICE_LINK]?: boolean })[SERVICE_LINK] !== true)
        this.logger.error({ reason: why }, 'connect failed; not reconnecting');
      this.stopped = true;
      for (const w of this.waiters.splice(0)) w.reject(err);
      return;
    }
    this.scheduleReconnect(`connect failed: ${why}`);
  }

  private scheduleReconnect(why: string): void {
    if (this.stopped) return;
    if (this.backoff === undefined) {
      this.stopped = true;
      return;
    }
    const delay = this.backoff.next();
    this.logger.warn({ reason: why, delayMs: delay }, 'reconnecting');
    this.reconnectTimer = setTimeout(() => this.attempt(), delay);
  }

  private onSocketConnected(socket: Socket): void {
    if (this.stopped) {
      socket.destroy();
      return;
    }
    if (this.opts.noDelay ?? true) socket.setNoDelay(true);
    this.stats.connects++;
    const conn = new MessageConn(socket, {
      id: `client-${++this.seq}`,
      codec: this.codec,
      router: this.router,
      logger: this.logger,
      state: {},
      remoteAddress: this.opts.path !== undefined ? 'unix' : (socket.remoteAddress ?? ''),
      remotePort: socket.remotePort ?? 0,
      peerLog: this.peerLog,
      outputCap: this.opts.outputCap ?? DEFAULT_OUTPUT_CAP,
      maxInFlight: this.opts.maxInFlight ?? DEFAULT_MAX_IN_FLIGHT,
      maxPending: this.opts.maxPending ?? DEFAULT_MAX_PENDING,
      requestTimeout: this.requestTimeout,
      stats: this.stats,
    });
    this.current = conn;
    this.ready = false;
    void conn.closed.then((reason) => this.lost(conn, reason));
    const { onConnect } = this.opts;
    const hooked = onConnect === undefined ? true : runHook('onConnect', this.logger, () => onConnect(conn));
    const begin = (ok: boolean) => {
      if (!ok) {
        conn.destroy('onConnect hook failed');
        return;
      }
      if (this.current !== conn || !conn.isOpen) return;
      this.backoff?.reset();
      this.flush(conn);
      this.ready = true;
      conn.start();
      for (const w of this.waiters.splice(0)) w.resolve();
    };
    if (typeof hooked === 'boolean') begin(hooked);
    else void hooked.then(begin);
  }

  /** Sends what was queued while disconnected, oldest first; stops (keeping the rest) if the connection drops. */
  private flush(conn: MessageConn): void {
    const items = this.queue;
    this.queue = [];
    this.queueBytes = 0;
    for (let i = 0; i < items.length; i++) {
      const item = items[i]!;
      if (!conn.isOpen) {
        for (const rest of items.slice(i)) this.enqueue(rest);
        return;
      }
      const req = item.request;
      if (req === undefined) {
        conn.sendEncoded(item.frame!);
        continue;
      }
      clearTimeout(req.timer);
      const timeout = Math.max(1, req.deadline - Date.now());
      conn.request(item.msgid, item.body, { ...req.options, timeout }).then(req.resolve, req.reject);
    }
  }

  private lost(conn: MessageConn, reason: string): void {
    if (this.current === conn) {
      this.current = undefined;
      this.ready = false;
    }
    const { onClose } = this.opts;
    if (onClose !== undefined) void runHook('onClose', this.logger, () => onClose(conn, reason));
    if (!this.stopped) this.scheduleReconnect(`connection lost: ${reason}`);
  }
}
