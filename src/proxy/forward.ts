import { connect, isIP, type Socket } from 'node:net';
import { type ConnectionOptions, connect as tlsConnect } from 'node:tls';
import { type Deadlined, DeadlineSlots } from '../deadline-ring.js';
import { encodeProxyV1, encodeProxyV2 } from '../proxy-protocol/header.js';
import { peerLogOf } from '../throttled-count.js';
import type { Logger } from '../types.js';
import { BackendReader } from './backend-reader.js';
import type { Backend, BackendPool } from './pool.js';

/**
 * Splices one client connection to one backend:
 * - connects first, retrying the next healthy backend on a refused or slow connect, and
 *   reads nothing from the client meanwhile, so a retry is invisible to it;
 * - then pipes both ways: backpressure holds (a side that does not read stops the other
 *   side being read, so buffered bytes stay within the sockets' highWaterMarks plus one read:
 *   node's default is 16 KiB on Node 20 and 64 KiB from 22), and a FIN
 *   from either side is passed on while the other direction keeps flowing (half-close);
 * - a backend that breaks closes only this client; a client that goes closes the backend. A
 *   connection that breaks (RST, error) on one side is reset on the other, so a truncated
 *   reply never looks like a complete one (a FIN would).
 */

export interface ForwardOptions {
  /** Per connect attempt, ms. */
  connectTimeoutMs: number;
  /** Further backends tried after a failed connect, before the client is closed. */
  retries: number;
  /** Close both sides after this long without bytes either way, ms; 0 = leave the client socket's timeout as it is. */
  idleTimeoutMs: number;
  /** Send a PROXY header to the backend first. */
  sendProxy: 'v1' | 'v2' | undefined;
  /** TCP_NODELAY on the backend connection (the client's is the daemon's --tcp-nodelay). */
  noDelay: boolean;
  /** --backend-tls: TLS to the backends with these options (PEM text); the host is the default SNI name. */
  backendTls?: ConnectionOptions;
}

export const DEFAULT_FORWARD: Readonly<ForwardOptions> = Object.freeze({
  connectTimeoutMs: 3000,
  retries: 2,
  idleTimeoutMs: 0,
  sendProxy: undefined,
  noDelay: true,
});

/** Once the client is gone, how long the backend may take to take our last bytes, ms. */
const BACKEND_LINGER_MS = 10_000;

/** The client as the proxy should present it: after a PROXY header from a balancer in front, when one was read. */
export interface ClientPeer {
  address: string;
  port: number;
  /** Where the client connected to (a PROXY header's destination): the backend's PROXY header names it. Default: the client socket's local address. */
  localAddress?: string;
  localPort?: number;
}

/**
 * Where to log: the connection's env (its logger is built only when something is logged). A
 * daemon's env also counts lines per client (PeerLog); without one every line is written.
 */
export interface LogSource {
  readonly logger: Logger;
}

/** Logs a line a client can cause once per connection. */
function peerLine(
  log: LogSource,
  peer: ClientPeer,
  level: 'info' | 'warn',
  msg: string,
  fields: Record<string, unknown>,
): void {
  const peerLog = peerLogOf(log);
  if (peerLog) peerLog[level]({ peer: peer.address, msg, fields, source: log });
  else log.logger[level](fields, msg);
}

/** Closes with RST; a socket that has none (a unix socket) is destroyed. */
function reset(socket: Socket): void {
  try {
    socket.resetAndDestroy();
  } catch {
    socket.destroy();
  }
}

export type ForwardOutcome =
  | { kind: 'forwarded'; backend: string }
  | { kind: 'rejected'; reason: string }
  | { kind: 'client-gone' };

/**
 * Forwards `client` through `pool`. Resolves when both sockets are closed (or at once when
 * the client was rejected); never rejects.
 */
export function forward(
  client: Socket,
  peer: ClientPeer,
  pool: BackendPool,
  opts: ForwardOptions,
  log: LogSource,
): Promise<ForwardOutcome> {
  return new Promise((resolve) => forwardThen(client, peer, pool, opts, log, resolve));
}

/**
 * forward() with a callback instead of a promise, for the daemon's handler: a connection then
 * costs no promise per step. `done` is called once, when both sockets are closed (or at once
 * when the client was rejected).
 */
export function forwardThen(
  client: Socket,
  peer: ClientPeer,
  pool: BackendPool,
  opts: ForwardOptions,
  log: LogSource,
  done: (outcome: ForwardOutcome) => void = ignore,
): void {
  const f = new Forwarding(client, peer, pool, opts, log, done);
  (client as Fwd)[kFwd] = f;
  // One 'close' listener for the connection's life: while connecting it gives up the attempt.
  client.on('close', onClientClose);
  f.tryNext();
}

/** The forwarding a socket belongs to (its client or its backend side): the shared listeners below find it here. */
const kFwd = Symbol('tcpdaemon.forwarding');
type Fwd = Socket & { [kFwd]?: Forwarding };

const NO_BACKEND_TRIED: ReadonlySet<string> = new Set();

/** Where a connection is. */
enum Phase {
  /** Waiting for a backend's connect (or TLS handshake). */
  Connecting,
  /** Piping both ways. */
  Spliced,
  /** Rejected, or given up because the client left: nothing more to do. */
  Over,
}

/**
 * One client connection's state: one object with the listeners below as shared functions
 * (`this` is a socket; kFwd leads here), instead of a dozen closures and `once` wrappers, and
 * the connect timeout in a shared deadline queue instead of a timer each.
 */
class Forwarding implements Deadlined {
  phase = Phase.Connecting;
  attempt = 0;
  /** Backends whose connect failed, once one did (the first pick excludes nothing). */
  tried: Set<string> | undefined;
  failures: string[] | undefined;
  /** The backend being connected to, then forwarded to. */
  b: Backend | undefined;
  /** Its TCP socket. */
  socket: Socket | undefined;
  /** --backend-tls: the TLSSocket over `socket`, once the handshake starts. */
  secured: Socket | undefined;
  /** What the bytes go through to the backend (`secured` under TLS, else `socket`). */
  backend: Socket | undefined;
  reader: BackendReader | undefined;
  startedMs = 0;
  /** Where the current connect attempt's deadline waits (connectDeadlines), until it settles. */
  deadlines: DeadlineQueue | undefined;
  /** Its place in that queue (DeadlineSlots). */
  deadlineKey = 0;
  deadlineTicket = 0;
  /** PROXY header bytes sent (not the client's). */
  header = 0;
  backendBroke: string | undefined;
  open = 2;
  /** The backend's bounded while to take our last bytes once the client is gone (cleared when it closes sooner). */
  linger: NodeJS.Timeout | undefined;

  constructor(
    readonly client: Socket,
    readonly peer: ClientPeer,
    readonly pool: BackendPool,
    readonly opts: ForwardOptions,
    readonly log: LogSource,
    readonly done: (outcome: ForwardOutcome) => void,
  ) {}

  tryNext(): void {
    const { client, pool, opts } = this;
    const b =
      this.attempt <= opts.retries && !client.destroyed
        ? pool.pick(this.peer.address, this.tried ?? NO_BACKEND_TRIED)
        : undefined;
    if (b === undefined) {
      this.giveUp();
      return;
    }
    this.b = b;
    this.startedMs = pool.meter ? performance.now() : 0;
    this.connect(b);
  }

  private connect(b: Backend): void {
    const { opts } = this;
    const a = b.address;
    const reader = new BackendReader(this.client);
    this.reader = reader;
    // TLS reads through the TLSSocket: the zero-copy reader (onread) sees only plain TCP.
    const onread = opts.backendTls ? undefined : reader.onread;
    const socket: Fwd =
      'path' in a
        ? connect({ path: a.path, allowHalfOpen: true, onread })
        : connect({ host: a.host, port: a.port, allowHalfOpen: true, noDelay: opts.noDelay, onread });
    socket[kFwd] = this;
    this.socket = socket;
    this.secured = undefined;
    socket.on('connect', onBackendConnect);
    socket.on('error', onBackendError);
    const q = deadlineQueue(opts.connectTimeoutMs);
    this.deadlines = q;
    q.add(this);
  }

  /** The TCP connect is up: forward, or (TLS) start the handshake. */
  tcpConnected(socket: Socket): void {
    const { opts } = this;
    if (!opts.backendTls) {
      this.connected(socket);
      return;
    }
    // HAProxy's order: the PROXY header in the clear, then the handshake.
    const header = proxyHeader(opts, this.client, this.peer);
    if (header) socket.write(header);
    const a = this.b!.address;
    const host = 'path' in a ? undefined : a.host;
    const secured: Fwd = tlsConnect({
      servername: host !== undefined && isIP(host) === 0 ? host : undefined,
      ...opts.backendTls,
      socket, // allowHalfOpen comes from it
    });
    secured[kFwd] = this;
    this.secured = secured;
    secured.on('secureConnect', onBackendSecure);
    secured.on('error', onBackendError);
  }

  /** `backend` (the TCP socket, or the TLSSocket) is ready for the client's bytes. */
  connected(backend: Socket): void {
    this.settle();
    const { client, pool } = this;
    if (client.destroyed) {
      this.phase = Phase.Over;
      this.socket!.on('error', ignore);
      backend.destroy();
      this.socket!.destroy();
      this.done({ kind: 'client-gone' });
      return;
    }
    pool.connected(this.b!, this.startedMs);
    this.phase = Phase.Spliced;
    this.backend = backend;
    this.splice(backend);
  }

  /** This connect attempt failed (`reason`): try the next backend. */
  connectFailed(reason: string): void {
    this.settle();
    const { socket, secured } = this;
    socket!.off('connect', onBackendConnect);
    secured?.off('secureConnect', onBackendSecure);
    socket!.on('error', ignore);
    socket!.destroy();
    secured?.on('error', ignore);
    secured?.destroy();
    this.reader = undefined;
    this.socket = this.secured = undefined;
    const b = this.b!;
    if (this.tried === undefined) this.tried = new Set([b.id]);
    else this.tried.add(b.id);
    if (this.client.destroyed) {
      this.phase = Phase.Over;
      this.done({ kind: 'client-gone' }); // not the backend's failure
      return;
    }
    const retrying = this.attempt < this.opts.retries;
    this.pool.connectFailed(b, retrying);
    if (this.failures === undefined) this.failures = [];
    this.failures.push(`${b.id}: ${reason}`);
    this.log.logger.debug({ backend: b.id, reason, attempt: this.attempt }, 'backend connect failed');
    this.attempt++;
    this.tryNext();
  }

  /** The connect attempt is over: its deadline no longer applies. */
  private settle(): void {
    this.deadlines?.settle(this);
    this.deadlines = undefined;
  }

  private giveUp(): void {
    const { client, pool } = this;
    this.phase = Phase.Over;
    if (client.destroyed) {
      this.done({ kind: 'client-gone' });
      return;
    }
    const failures = this.failures ?? [];
    const reason =
      failures.length === 0
        ? this.b === undefined && pool.size === 0
          ? 'no backend configured'
          : 'no healthy backend'
        : `all ${failures.length} connect attempts failed (${failures.join('; ')})`;
    pool.rejectedClient();
    peerLine(this.log, this.peer, 'warn', 'client closed: no backend could take it', { reason });
    client.destroy();
    this.done({ kind: 'rejected', reason });
  }

  /** Pipes both ways; `done` once both sockets are closed. */
  private splice(backend: Fwd): void {
    const { client, opts } = this;
    // Our FIN to the client must wait for the backend's, whatever the server was created with.
    client.allowHalfOpen = true;
    const bytes = opts.backendTls ? undefined : proxyHeader(opts, client, this.peer); // TLS: sent before the handshake
    if (bytes) {
      this.header = bytes.length;
      backend.write(bytes);
    }
    if (opts.idleTimeoutMs > 0) {
      client.setTimeout(opts.idleTimeoutMs);
      client.on('timeout', onIdleTimeout);
    }
    // client -> backend with backpressure: the client is not read while the backend holds more
    // than its highWaterMark unsent; the client's FIN is passed on. Lighter than stream.pipe.
    client.on('data', onData);
    client.resume(); // a socket handed over paused (pauseOnConnect) does not start on 'data' alone
    backend.on('drain', onDrain);
    client.on('end', onEnd);
    if (opts.backendTls) {
      backend.on('data', onData);
      backend.resume();
    }
    // backend -> client (plain TCP): the reader writes each read on, and stops reading while client is full
    client.on('drain', onDrain);
    backend.on('end', onEnd);
    if (!opts.backendTls) backend.resume();
    client.on('error', ignore); // the connection's owner logs it; we close the backend on 'close'
    // 'error' stays onBackendError: from now on it records why the backend broke.
    backend.on('close', onBackendClose);
  }

  /** The client's 'close' after the splice. */
  clientClosed(): void {
    const { client } = this;
    const backend = this.backend!;
    if (!backend.destroyed) {
      const broke = client.errored as NodeJS.ErrnoException | null;
      if (broke) {
        // The client's connection broke (RST): the backend must not take what it got for all.
        peerLine(this.log, this.peer, 'info', 'client broke the connection; backend connection reset', {
          backend: this.b!.id,
          reason: broke.code ?? broke.message,
        });
        reset(backend);
      } else if (!backend.readableEnded)
        backend.destroy(); // nobody to deliver to
      // It sent its FIN and only needs to take our last bytes: give it a bounded while.
      else {
        this.linger = setTimeout(destroySocket, BACKEND_LINGER_MS, backend);
        this.linger.unref();
      }
    }
    if (--this.open === 0) this.finished();
  }

  backendClosed(): void {
    const { client } = this;
    const backend = this.backend!;
    if (this.linger !== undefined) clearTimeout(this.linger); // it held the backend for 10 s
    this.reader?.release();
    this.pool.released(
      this.b!,
      Math.max(0, backend.bytesWritten - this.header),
      backend.bytesRead,
      this.backendBroke !== undefined,
    );
    if (this.backendBroke !== undefined) {
      if (!client.destroyed) {
        peerLine(this.log, this.peer, 'info', 'backend broke the connection; client connection reset', {
          backend: this.b!.id,
          reason: this.backendBroke,
        });
        // What the client got so far is not the whole reply: an RST says so, a FIN would not.
        reset(client);
      }
    } else if (!client.destroyed) {
      // The backend is gone both ways: deliver what it sent, then close; what the client
      // still sends has nowhere to go.
      client.off('data', onData);
      client.pause();
      passFin(client);
      if (client.writableFinished) client.destroy();
      else if (!client.destroyed) client.on('finish', destroyThis);
    }
    if (--this.open === 0) this.finished();
  }

  private finished(): void {
    this.phase = Phase.Over;
    this.done({ kind: 'forwarded', backend: this.b!.id });
  }
}

// The listeners of every forwarded connection: shared functions, `this` is the socket.

function onClientClose(this: Fwd): void {
  const f = this[kFwd]!;
  if (f.phase === Phase.Connecting) f.connectFailed('client closed while connecting');
  else if (f.phase === Phase.Spliced) f.clientClosed();
}

function onBackendConnect(this: Fwd): void {
  const f = this[kFwd]!;
  if (f.phase === Phase.Connecting && f.socket === this) f.tcpConnected(this);
}

function onBackendSecure(this: Fwd): void {
  const f = this[kFwd]!;
  if (f.phase === Phase.Connecting && f.secured === this) f.connected(this);
}

function onBackendError(this: Fwd, err: NodeJS.ErrnoException): void {
  const f = this[kFwd]!;
  if (f.phase === Phase.Connecting) {
    if (f.socket === this || f.secured === this) f.connectFailed(err.code ?? err.message);
  } else if (f.phase === Phase.Spliced && f.backend === this) {
    f.backendBroke = err.code ?? err.message;
  }
}

function onBackendClose(this: Fwd): void {
  const f = this[kFwd]!;
  if (f.backend === this) f.backendClosed();
}

/** Either direction's bytes: written on, and the source paused while the other side is full. */
function onData(this: Fwd, chunk: Buffer): void {
  const f = this[kFwd]!;
  const dst = this === f.client ? f.backend! : f.client;
  if (!dst.write(chunk)) this.pause();
}

/** A side took its queued bytes: the other side is read again. */
function onDrain(this: Fwd): void {
  const f = this[kFwd]!;
  (this === f.client ? f.backend! : f.client).resume();
}

/** A side's FIN: passed on to the other side. */
function onEnd(this: Fwd): void {
  const f = this[kFwd]!;
  passFin(this === f.client ? f.backend! : f.client);
}

function onIdleTimeout(this: Fwd): void {
  const f = this[kFwd]!;
  peerLine(f.log, f.peer, 'info', 'idle timeout; connection closed', {
    backend: f.b?.id,
    idleMs: f.opts.idleTimeoutMs,
  });
  this.destroy();
}

function destroyThis(this: Socket): void {
  this.destroy();
}

function destroySocket(socket: Socket): void {
  socket.destroy();
}

/**
 * The connect timeouts of every forwarding in this process: per timeout value, a DeadlineSlots ring
 * (each attempt waits as long as the one before it, so the order of arrival is the order of
 * expiry) with one timer, instead of a timer per connect. An attempt that settles leaves the
 * ring; the timer, when it fires, times out what is due (which may add to the ring) and arms
 * itself for the next waiting attempt.
 */
class DeadlineQueue {
  readonly #ring: DeadlineSlots<Forwarding>;

  constructor(readonly timeoutMs: number) {
    // A connecting socket keeps the process alive itself: the timer does not.
    this.#ring = new DeadlineSlots<Forwarding>((f) => this.#expire(f), {
      now: () => performance.now(),
      toleranceMs: 1,
      unref: true,
    });
  }

  /** Times `f`'s current connect attempt out after timeoutMs, unless settle() comes first. */
  add(f: Forwarding): void {
    this.#ring.add(f, performance.now() + this.timeoutMs);
  }

  /** `f`'s connect attempt connected or failed. */
  settle(f: Forwarding): void {
    this.#ring.remove(f);
  }

  #expire(f: Forwarding): void {
    if (f.phase === Phase.Connecting) f.connectFailed(`connect timed out after ${this.timeoutMs} ms`);
  }
}

/** The process's connect deadline queues, one per timeout value (a reload may change it). */
const connectDeadlines = new Map<number, DeadlineQueue>();

function deadlineQueue(timeoutMs: number): DeadlineQueue {
  let q = connectDeadlines.get(timeoutMs);
  if (q === undefined) {
    q = new DeadlineQueue(timeoutMs);
    connectDeadlines.set(timeoutMs, q);
  }
  return q;
}

/** The PROXY header for the backend (--send-proxy), or undefined. */
function proxyHeader(opts: ForwardOptions, client: Socket, peer: ClientPeer): Buffer | undefined {
  if (opts.sendProxy === undefined) return undefined;
  const src = { address: peer.address, port: peer.port };
  const dst = {
    address: peer.localAddress ?? client.localAddress ?? '',
    port: peer.localPort ?? client.localPort ?? 0,
  };
  return Buffer.from(opts.sendProxy === 'v1' ? encodeProxyV1(src, dst) : encodeProxyV2(src, dst));
}

/**
 * Sends our FIN on `dst`. When its peer's FIN is already in and nothing waits to be sent,
 * both directions are done: close() sends the FIN itself, which saves a shutdown(2) and an
 * event-loop turn per connection. Otherwise end(), and the other direction keeps flowing.
 */
function passFin(dst: Socket): void {
  if (dst.destroyed) return;
  if (dst.readableEnded && dst.writableLength === 0) dst.destroy();
  else dst.end();
}

function ignore(): void {}
