// The connection path: every model hands each accepted socket to ConnectionRunner#serve,
// which applies the socket options and runs the handler under the handler contract (README, "The handler").
import { Socket } from 'node:net';
import type { TLSSocket } from 'node:tls';
import { closedBy } from './close-reasons.js';
import type { ConnectionTracker } from './connection-tracker.js';
import { packedAddress, packedPeer, packedPort, readPeer } from './peer-name.js';
import { readProxyHeader } from './proxy-protocol/header.js';
import { endsWhenSettled, useSocketIterator } from './socket-iterator.js';
import { kPeerLog, PeerLog } from './throttled-count.js';
import type { TlsAcceptor, TlsTerminator } from './tls/terminator.js';
import type { Logger, ModelName, TcpdaemonEnv, Tcpmain, TlsFacts } from './types.js';
import { type BusListener, workerBus } from './worker-bus.js';

export interface RunnerOptions {
  model: ModelName;
  workerId: number;
  /** Replaceable (reload): a connection keeps the handler it started with. */
  tcpmain: Tcpmain;
  logger: Logger;
  /** Aborted when the process starts stopping. */
  signal: AbortSignal;
  tracker: ConnectionTracker;
  params: Readonly<Record<string, string>>;
  /** Seconds; 0 = none. */
  idleTimeout: number;
  tcpNodelay: boolean;
  /** Seconds; undefined = OS default close. */
  tcpLinger: number | undefined;
  /** True when listening on a unix socket (peers have no address). */
  unix: boolean;
  /** Connection ids are `${prefix}-${n}`; default String(workerId). Workers add their spawn number. */
  connectionIdPrefix?: string;
  /** --proxy-protocol: read a PROXY header first (within timeoutMs); a connection without one is closed. */
  proxyProtocol?: { timeoutMs: number };
  /** Bytes written but not yet sent above which a connection is closed (peer not reading); 0 or absent = no limit. */
  maxOutputBuffer?: number;
  /** --tls-cert: the handshake runs after the PROXY header; the handler gets the TLSSocket. */
  tls?: TlsTerminator;
}

/** The peer as the handler should see it (after a PROXY header, when one is read). */
export interface Peer {
  address: string;
  port: number;
  /** Where it connected to (a PROXY header's destination); default: the socket's local address. */
  localAddress?: string;
  localPort?: number;
}

const kEnv = Symbol('tcpdaemon.env');
/** Set on a socket closed for --max-output-buffer: its handler's end says nothing more. */
const kOverflowed = Symbol('tcpdaemon.overflowed');
/** On a raw socket in its TLS handshake: the peer its PROXY header named (absent without one). */
const kPeer = Symbol('tcpdaemon.peer');
/** On a raw socket in its TLS handshake: its peer as packedPeer() read it (absent when node read it). */
const kPacked = Symbol('tcpdaemon.packedPeer');
type ServedSocket = Socket & {
  [kEnv]?: ConnectionEnv;
  [kOverflowed]?: true;
  [kPeer]?: Peer;
  [kPacked]?: number;
};

/** Errors that mean the peer went away, not that the handler is broken. */
const PEER_ERRORS = new Set([
  'ECONNRESET',
  'EPIPE',
  'ETIMEDOUT',
  'ECONNABORTED',
  'ERR_STREAM_PREMATURE_CLOSE',
]);

export function isPeerError(err: unknown): boolean {
  return PEER_ERRORS.has((err as NodeJS.ErrnoException | undefined)?.code ?? '');
}

class ConnectionEnv implements TcpdaemonEnv {
  #logger: Logger | undefined;
  #state: Record<string, unknown> | undefined;
  #tls: TlsFacts | undefined;
  #address: string | undefined;

  constructor(
    private readonly runner: ConnectionRunner,
    private readonly socket: Socket,
    private readonly seq: number,
    /** packedPeer()'s answer; -1: `address` and `port` are the peer. */
    private readonly packed: number,
    address: string,
    private readonly port: number,
    /** The accepted TCP socket (under TLS, `socket` is the TLSSocket over it). */
    private readonly raw: Socket,
    private readonly peer: Peer | undefined,
  ) {
    if (packed < 0) this.#address = address;
  }

  // A packed peer becomes a string when someone asks (a log line, the handler).
  get remoteAddress(): string {
    this.#address ??= packedAddress(this.packed);
    return this.#address;
  }
  get remotePort(): number {
    return this.packed >= 0 ? packedPort(this.packed) : this.port;
  }

  // Read on demand: a getsockname per connection only for handlers that look.
  get localAddress(): string {
    return this.peer?.localAddress ?? (this.runner.opts.unix ? 'unix' : (this.raw.localAddress ?? ''));
  }
  get localPort(): number {
    return this.peer?.localPort ?? this.raw.localPort ?? 0;
  }

  get model(): ModelName {
    return this.runner.opts.model;
  }
  get workerId(): number {
    return this.runner.opts.workerId;
  }
  get connectionId(): string {
    return `${this.runner.opts.connectionIdPrefix ?? this.runner.opts.workerId}-${this.seq}`;
  }
  get signal(): AbortSignal {
    return this.runner.opts.signal;
  }
  get params(): Readonly<Record<string, string>> {
    return this.runner.opts.params;
  }
  // Built on first use: most connections never log, and a child logger costs memory.
  get logger(): Logger {
    this.#logger ??= this.runner.opts.logger.child({
      conn: this.connectionId,
      remote: this.runner.opts.unix ? 'unix' : `${this.remoteAddress}:${this.remotePort}`,
    });
    return this.#logger;
  }
  get state(): Record<string, unknown> {
    this.#state ??= {};
    return this.#state;
  }
  // Built on first use: nothing is spent on it by a plain TCP connection or a handler that never asks.
  get tls(): TlsFacts | undefined {
    if (!(this.socket as Partial<TLSSocket>).encrypted) return undefined;
    this.#tls ??= tlsFacts(this.socket as TLSSocket);
    return this.#tls;
  }
  broadcast(data: Uint8Array | string): Promise<void> {
    return workerBus.publish(HANDLER_TOPIC, data);
  }
  onBroadcast(listener: BusListener): () => void {
    const stop = workerBus.subscribe(HANDLER_TOPIC, listener);
    this.socket.once('close', stop);
    return () => {
      this.socket.off('close', stop);
      stop();
    };
  }
  /** What the peer can make us log, counted per peer (see PeerLog). */
  get [kPeerLog](): PeerLog {
    return this.runner.peerLog;
  }
  get maxOutputBuffer(): number {
    return this.runner.opts.maxOutputBuffer ?? 0;
  }
  /** The connection path logs at debug. */
  get debugging(): boolean {
    return this.runner.debug;
  }
}

function tlsFacts(socket: TLSSocket): TlsFacts {
  const peer = socket.getPeerCertificate();
  const hasPeer = peer !== null && Object.keys(peer).length > 0;
  const servername = (socket as TLSSocket & { servername?: string | false }).servername;
  return Object.freeze({
    protocol: socket.getProtocol(),
    cipher: socket.getCipher().name,
    alpn: typeof socket.alpnProtocol === 'string' ? socket.alpnProtocol : null,
    servername: typeof servername === 'string' ? servername : null,
    authorized: socket.authorized,
    authorizationError: socket.authorizationError ? String(socket.authorizationError) : null,
    peerSubject: hasPeer ? distinguishedName(peer.subject) : null,
    peerFingerprint256: hasPeer ? peer.fingerprint256 : null,
  });
}

/** `{ CN: 'alice', O: 'x' }` as 'CN=alice, O=x'. */
function distinguishedName(subject: object | undefined): string {
  if (!subject) return '';
  return Object.entries(subject as Record<string, string | string[] | undefined>)
    .map(([k, v]) => `${k}=${Array.isArray(v) ? v.join('+') : v}`)
    .join(', ');
}

/** The bus topic of env.broadcast / env.onBroadcast (the message layer uses topics of its own). */
const HANDLER_TOPIC = 'tcpdaemon.env';

export class ConnectionRunner {
  /** Lines a peer can cause once per connection (lost, timed out, header refused): counted per peer. */
  readonly peerLog: PeerLog;
  private seq = 0;
  /** The logger writes debug lines (read once, and on a level change: the connection path asks per connection). */
  debug: boolean;

  /** What the TLS terminator hands each finished handshake to: one for all connections. */
  private readonly tlsAcceptor: TlsAcceptor;

  constructor(readonly opts: RunnerOptions) {
    this.debug = opts.logger.isLevelEnabled('debug');
    this.peerLog = new PeerLog(opts.logger);
    const runner = this;
    this.tlsAcceptor = {
      secured(socket, raw) {
        raiseWriteMark(socket, runner.opts.maxOutputBuffer ?? 0);
        runner.run(socket, raw, (raw as ServedSocket)[kPeer]);
      },
      remote(raw) {
        if (runner.opts.unix) return 'unix';
        const { [kPeer]: peer, [kPacked]: packed } = raw as ServedSocket;
        if (peer) return `${peer.address}:${peer.port}`;
        if (packed !== undefined) return `${packedAddress(packed)}:${packedPort(packed)}`;
        return `${raw.remoteAddress}:${raw.remotePort}`;
      },
    };
    opts.tls?.deliverTo(this.tlsAcceptor);
  }

  /** The logger's level changed (config reload): per-connection debug lines follow it. */
  levelChanged(): void {
    this.debug = this.opts.logger.isLevelEnabled('debug');
  }

  /** Serves one accepted socket; never throws. */
  serve(socket: Socket, peer?: Peer): void {
    const { opts } = this;
    opts.tracker.add(socket);
    if (opts.proxyProtocol && peer === undefined) {
      readProxyHeader(socket, opts.proxyProtocol).then((r) => {
        if (r.ok) {
          const to = r.header.destination;
          this.secure(socket, {
            address: r.remoteAddress,
            port: r.remotePort,
            localAddress: to?.address,
            localPort: to?.port,
          });
        } else {
          const remote = opts.unix ? 'unix' : `${socket.remoteAddress}:${socket.remotePort}`;
          this.peerLog.warn({
            peer: opts.unix ? 'unix' : (socket.remoteAddress ?? ''),
            msg: 'PROXY header refused; connection closed',
            fields: { remote },
            // Short texts, a few carrying a value the peer sent: keys past PeerLog's bound count together.
            group: { reason: r.reason },
          });
        }
      });
      return;
    }
    this.secure(socket, peer);
  }

  /** With --tls-cert, the handshake (HAProxy's order: after the PROXY header); then the handler. */
  private secure(raw: Socket, peer: Peer | undefined): void {
    const { tls } = this.opts;
    if (!tls) {
      this.run(raw, raw, peer);
      return;
    }
    // No 'error' listener of ours on `raw`: the TLSSocket node wraps it in takes its errors (a
    // failed handshake reaches the terminator's tlsClientError, a later error the TLSSocket's).
    if (this.opts.tcpNodelay) raw.setNoDelay(true); // before the handshake: its flights go out at once
    if (peer) (raw as ServedSocket)[kPeer] = peer;
    // Read now (env.remoteAddress needs it anyway), so a handshake that fails after the peer reset
    // still logs where it came from: the addon's number, or node's read, which node keeps.
    else if (!this.opts.unix) {
      const packed = packedPeer(raw);
      if (packed >= 0) (raw as ServedSocket)[kPacked] = packed;
      else raw.remoteAddress;
    }
    tls.accept(raw);
  }

  /** `socket` is what the handler gets: `raw` itself, or the TLSSocket over it. */
  private run(socket: Socket, raw: Socket, peer: Peer | undefined): void {
    const { opts } = this;
    const packed = peer !== undefined || opts.unix ? -1 : ((raw as ServedSocket)[kPacked] ?? packedPeer(raw));
    const name = packed >= 0 || peer !== undefined || opts.unix ? undefined : readPeer(raw);
    const env = new ConnectionEnv(
      this,
      socket,
      ++this.seq,
      packed,
      peer?.address ?? (opts.unix ? 'unix' : (name?.address ?? '')),
      peer?.port ?? name?.port ?? 0,
      raw,
      peer,
    );
    const served = socket as ServedSocket;
    served[kEnv] = env;
    socket.on('error', onSocketError);
    useSocketIterator(socket);
    if ((opts.maxOutputBuffer ?? 0) > 0) socket.write = cappedWrite;
    if (opts.tcpNodelay && socket === raw) socket.setNoDelay(true);
    if (opts.idleTimeout > 0) {
      socket.setTimeout(opts.idleTimeout * 1000);
      socket.on('timeout', onIdleTimeout);
    }
    if (opts.tcpLinger !== undefined) socket.once('finish', () => this.linger(raw));
    if (this.debug) {
      env.logger.debug('connection open');
      const opened = Date.now();
      socket.once('close', () =>
        env.logger.debug(
          { ms: Date.now() - opened, bytesRead: socket.bytesRead, bytesWritten: socket.bytesWritten },
          'connection closed',
        ),
      );
    }
    let result: unknown;
    try {
      result = opts.tcpmain(socket, env);
    } catch (err) {
      fail(socket, env, err);
      return;
    }
    if (isThenable(result)) {
      endsWhenSettled(socket); // a for-await loop keeps it half-open until then (socket-iterator.ts)
      result.then(
        () => {
          if (!socket.destroyed) this.finish(socket, raw);
        },
        (err: unknown) => fail(socket, env, err),
      );
    }
  }

  /** Ends our side: FIN (after TLS close_notify), or RST right away with --tcp-linger 0. */
  private finish(socket: Socket, raw: Socket): void {
    const linger = this.opts.tcpLinger;
    if (linger === 0) raw.resetAndDestroy();
    // The peer's FIN is in and everything written has reached the kernel: close(2) sends our FIN
    // after it, which saves a shutdown(2) and an event-loop turn per connection. (Not under TLS,
    // whose end() sends close_notify first, nor with a linger, which waits for 'finish'.)
    else if (socket === raw && linger === undefined && socket.readableEnded && socket.writableLength === 0)
      socket.destroy();
    else socket.end();
  }

  /** After our FIN: linger 0 resets now; linger N resets if the peer has not closed within N s. */
  private linger(socket: Socket): void {
    const seconds = this.opts.tcpLinger!;
    if (socket.destroyed) return;
    if (seconds === 0) {
      socket.resetAndDestroy();
      return;
    }
    const timer = setTimeout(() => {
      if (!socket.destroyed) socket.resetAndDestroy();
    }, seconds * 1000);
    timer.unref();
    socket.once('close', () => clearTimeout(timer));
  }
}

/** Node 22's default writable high-water mark (Node 20's is 16 KiB), bytes. */
const TLS_WRITE_HIGH_WATER_MARK = 65536;

/**
 * A TLSSocket's write completes on a later turn (node's TLSWrap finishes even a write the kernel
 * took at once from a setImmediate), so its bytes count as unsent until then: on Node 20 every
 * write of 16 KiB or more returns false, and a handler that honours it (examples/echo.js) waits
 * for 'drain' after each one. Served TLS sockets get Node 22's 64 KiB on every Node, kept within
 * --max-output-buffer (whose check runs on a false return). Only raised, never lowered.
 */
function raiseWriteMark(socket: TLSSocket, maxOutputBuffer: number): void {
  const state = (socket as TLSSocket & { _writableState?: { highWaterMark: number } })._writableState;
  const mark =
    maxOutputBuffer > 0 ? Math.min(TLS_WRITE_HIGH_WATER_MARK, maxOutputBuffer) : TLS_WRITE_HIGH_WATER_MARK;
  if (state && state.highWaterMark < mark) state.highWaterMark = mark;
}

function isThenable(v: unknown): v is PromiseLike<unknown> {
  return typeof (v as PromiseLike<unknown> | undefined)?.then === 'function';
}

function fail(socket: ServedSocket, env: ConnectionEnv, err: unknown): void {
  if (socket[kOverflowed]) return; // already logged, and destroyed
  const peerLog = env[kPeerLog];
  if (isPeerError(err)) {
    closedBy(socket, 'peer_reset');
    const code = (err as NodeJS.ErrnoException).code!;
    peerLog.info({ peer: env.remoteAddress, msg: 'connection lost', group: { code }, source: env });
  } else {
    closedBy(socket, 'handler_error');
    // A bug in the handler, which a peer may still hit on every connection: the first with its stack.
    peerLog.error({
      peer: env.remoteAddress,
      msg: 'handler failed; connection closed',
      fields: { err },
      source: env,
    });
  }
  socket.destroy();
}

// Shared listeners (no closure per connection); `this` is the socket.
function onSocketError(this: ServedSocket, err: NodeJS.ErrnoException): void {
  if (isPeerError(err)) closedBy(this, 'peer_reset');
  const env = this[kEnv];
  // The level first: env.logger builds a child logger, and a flood of resets would build one each.
  if (env?.debugging) env.logger.debug({ code: err.code, err: err.message }, 'socket error');
}

function onIdleTimeout(this: ServedSocket): void {
  closedBy(this, 'idle_timeout');
  const env = this[kEnv];
  if (env)
    env[kPeerLog].info({
      peer: env.remoteAddress,
      msg: 'idle timeout; connection closed',
      source: env,
    });
  this.destroy();
}

const socketWrite = Socket.prototype.write as (this: Socket, ...args: unknown[]) => boolean;

/**
 * socket.write of a served socket under --max-output-buffer: node's, plus a look at the unsent
 * bytes when node says its buffer is full (false), so writes below the high-water mark cost only
 * this call.
 */
function cappedWrite(this: ServedSocket, chunk: unknown, encoding?: unknown, cb?: unknown): boolean {
  const ok = socketWrite.call(this, chunk, encoding, cb);
  if (!ok) {
    const env = this[kEnv];
    const max = env?.maxOutputBuffer ?? 0;
    if (max > 0 && this.writableLength > max && !this[kOverflowed]) {
      this[kOverflowed] = true;
      closedBy(this, 'output_cap');
      env!.logger.warn(
        { unsentBytes: this.writableLength, max },
        'output buffer above --max-output-buffer (the peer does not read); connection closed',
      );
      this.destroy();
    }
  }
  return ok;
}
