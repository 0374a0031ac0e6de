// The connection path: every model hands each accepted socket to ConnectionRunner#serve,
// which applies the socket options and runs the handler under the contract in DESIGN.md.
import { Socket } from 'node:net';
import type { ConnectionTracker } from './connection-tracker.js';
import { readProxyHeader } from './proxy-protocol/header.js';
import { useSocketIterator } from './socket-iterator.js';
import type { Logger, ModelName, TcpdaemonEnv, Tcpmain } from './types.js';

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
}

/** The peer as the handler should see it (after a PROXY header, when one is read). */
export interface Peer {
  address: string;
  port: number;
}

const kEnv = Symbol('tcpdaemon.env');
/** Set on a socket closed for --max-output-buffer: its handler's end says nothing more. */
const kOverflowed = Symbol('tcpdaemon.overflowed');
type ServedSocket = Socket & { [kEnv]?: ConnectionEnv; [kOverflowed]?: true };

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

  constructor(
    private readonly runner: ConnectionRunner,
    private readonly seq: number,
    readonly remoteAddress: string,
    readonly remotePort: number,
  ) {}

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
  get maxOutputBuffer(): number {
    return this.runner.opts.maxOutputBuffer ?? 0;
  }
}

export class ConnectionRunner {
  private seq = 0;
  private readonly debug: boolean;

  constructor(readonly opts: RunnerOptions) {
    this.debug = opts.logger.isLevelEnabled('debug');
  }

  /** Serves one accepted socket; never throws. */
  serve(socket: Socket, peer?: Peer): void {
    const { opts } = this;
    opts.tracker.add(socket);
    if (opts.proxyProtocol && peer === undefined) {
      readProxyHeader(socket, opts.proxyProtocol).then((r) => {
        if (r.ok) this.run(socket, { address: r.remoteAddress, port: r.remotePort });
        else {
          const remote = opts.unix ? 'unix' : `${socket.remoteAddress}:${socket.remotePort}`;
          opts.logger.warn({ remote, reason: r.reason }, 'PROXY header refused; connection closed');
        }
      });
      return;
    }
    this.run(socket, peer);
  }

  private run(socket: Socket, peer: Peer | undefined): void {
    const { opts } = this;
    const env = new ConnectionEnv(
      this,
      ++this.seq,
      peer?.address ?? (opts.unix ? 'unix' : (socket.remoteAddress ?? '')),
      peer?.port ?? socket.remotePort ?? 0,
    );
    const served = socket as ServedSocket;
    served[kEnv] = env;
    socket.on('error', onSocketError);
    useSocketIterator(socket);
    if ((opts.maxOutputBuffer ?? 0) > 0) socket.write = cappedWrite;
    if (opts.tcpNodelay) socket.setNoDelay(true);
    if (opts.idleTimeout > 0) {
      socket.setTimeout(opts.idleTimeout * 1000);
      socket.on('timeout', onIdleTimeout);
    }
    if (opts.tcpLinger !== undefined) socket.once('finish', () => this.linger(socket));
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
      result.then(
        () => {
          if (!socket.destroyed) this.finish(socket);
        },
        (err: unknown) => fail(socket, env, err),
      );
    }
  }

  /** Ends our side: FIN, or RST right away with --tcp-linger 0. */
  private finish(socket: Socket): void {
    if (this.opts.tcpLinger === 0) socket.resetAndDestroy();
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

function isThenable(v: unknown): v is PromiseLike<unknown> {
  return typeof (v as PromiseLike<unknown> | undefined)?.then === 'function';
}

function fail(socket: ServedSocket, env: ConnectionEnv, err: unknown): void {
  if (socket[kOverflowed]) return; // already logged, and destroyed
  if (isPeerError(err)) env.logger.info({ code: (err as NodeJS.ErrnoException).code }, 'connection lost');
  else env.logger.error({ err }, 'handler failed; connection closed');
  socket.destroy();
}

// Shared listeners (no closure per connection); `this` is the socket.
function onSocketError(this: ServedSocket, err: NodeJS.ErrnoException): void {
  this[kEnv]?.logger.debug({ code: err.code, err: err.message }, 'socket error');
}

function onIdleTimeout(this: ServedSocket): void {
  this[kEnv]?.logger.info('idle timeout; connection closed');
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
      env!.logger.warn(
        { unsentBytes: this.writableLength, max },
        'output buffer above --max-output-buffer (the peer does not read); connection closed',
      );
      this.destroy();
    }
  }
  return ok;
}
