import { connect, isIP, type Socket } from 'node:net';
import { type ConnectionOptions, connect as tlsConnect } from 'node:tls';
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
  const tried = new Set<string>();
  const failures: string[] = [];
  let attempt = 0;
  const tryNext = (): void => {
    const b = attempt <= opts.retries && !client.destroyed ? pool.pick(peer.address, tried) : undefined;
    if (b === undefined) {
      giveUp();
      return;
    }
    tried.add(b.id);
    const reader = new BackendReader(client);
    const startedMs = pool.meter ? performance.now() : 0;
    connectBackend(b, opts, client, reader, peer, (result) => {
      if (typeof result === 'string') {
        if (client.destroyed) {
          done({ kind: 'client-gone' }); // not the backend's failure
          return;
        }
        const retrying = attempt < opts.retries;
        pool.connectFailed(b, retrying);
        failures.push(`${b.id}: ${result}`);
        log.logger.debug({ backend: b.id, reason: result, attempt }, 'backend connect failed');
        attempt++;
        tryNext();
        return;
      }
      if (client.destroyed) {
        result.destroy();
        done({ kind: 'client-gone' });
        return;
      }
      pool.connected(b, startedMs);
      splice(client, result, reader, b, peer, pool, opts, log, () =>
        done({ kind: 'forwarded', backend: b.id }),
      );
    });
  };
  const giveUp = (): void => {
    if (client.destroyed) {
      done({ kind: 'client-gone' });
      return;
    }
    const reason =
      failures.length === 0
        ? tried.size === 0 && pool.size === 0
          ? 'no backend configured'
          : 'no healthy backend'
        : `all ${failures.length} connect attempts failed (${failures.join('; ')})`;
    pool.rejectedClient();
    peerLine(log, peer, 'warn', 'client closed: no backend could take it', { reason });
    client.destroy();
    done({ kind: 'rejected', reason });
  };
  tryNext();
}

/** Calls `done` with a connected socket, or the reason it failed. Gives up early if `client` closes. */
function connectBackend(
  b: Backend,
  opts: ForwardOptions,
  client: Socket,
  reader: BackendReader,
  peer: ClientPeer,
  done: (outcome: Socket | string) => void,
): void {
  const a = b.address;
  // TLS reads through the TLSSocket: the zero-copy reader (onread) sees only plain TCP.
  const onread = opts.backendTls ? undefined : reader.onread;
  const socket =
    'path' in a
      ? connect({ path: a.path, allowHalfOpen: true, onread })
      : connect({ host: a.host, port: a.port, allowHalfOpen: true, noDelay: opts.noDelay, onread });
  let secured: Socket | undefined;
  const finish = (outcome: Socket | string) => {
    clearTimeout(timer);
    socket.off('connect', onConnect).off('error', onError);
    secured?.off('secureConnect', onSecure).off('error', onError);
    client.off('close', onClientClose);
    if (typeof outcome === 'string') {
      socket.on('error', ignore);
      socket.destroy();
      secured?.on('error', ignore);
      secured?.destroy();
    }
    done(outcome);
  };
  const onSecure = () => finish(secured!);
  const onConnect = () => {
    if (!opts.backendTls) {
      finish(socket);
      return;
    }
    // HAProxy's order: the PROXY header in the clear, then the handshake.
    const header = proxyHeader(opts, client, peer);
    if (header) socket.write(header);
    const host = 'path' in a ? undefined : a.host;
    secured = tlsConnect({
      servername: host !== undefined && isIP(host) === 0 ? host : undefined,
      ...opts.backendTls,
      socket, // allowHalfOpen comes from it
    });
    secured.once('secureConnect', onSecure).once('error', onError);
  };
  const onError = (err: NodeJS.ErrnoException) => finish(err.code ?? err.message);
  const onClientClose = () => finish('client closed while connecting');
  const timer = setTimeout(
    () => finish(`connect timed out after ${opts.connectTimeoutMs} ms`),
    opts.connectTimeoutMs,
  );
  socket.once('connect', onConnect).once('error', onError);
  client.once('close', onClientClose);
}

/** Pipes both ways; calls `done` once both sockets are closed. */
function splice(
  client: Socket,
  backend: Socket,
  reader: BackendReader,
  b: Backend,
  peer: ClientPeer,
  pool: BackendPool,
  opts: ForwardOptions,
  log: LogSource,
  done: () => void,
): void {
  // Our FIN to the client must wait for the backend's, whatever the server was created with.
  client.allowHalfOpen = true;
  let header = 0;
  const bytes = opts.backendTls ? undefined : proxyHeader(opts, client, peer); // TLS: sent before the handshake
  if (bytes) {
    header = bytes.length;
    backend.write(bytes);
  }
  if (opts.idleTimeoutMs > 0) {
    client.setTimeout(opts.idleTimeoutMs);
    client.once('timeout', () => {
      peerLine(log, peer, 'info', 'idle timeout; connection closed', {
        backend: b.id,
        idleMs: opts.idleTimeoutMs,
      });
      client.destroy();
    });
  }
  let backendBroke: string | undefined;
  let open = 2;

  const fromClient = pump(client, backend);
  if (opts.backendTls) pump(backend, client);
  else {
    // backend -> client: the reader writes each read on, and stops reading while client is full
    client.on('drain', () => backend.resume());
    backend.once('end', () => passFin(client));
    backend.resume();
  }
  client.on('error', ignore); // the connection's owner logs it; we close the backend on 'close'
  client.once('close', () => {
    if (!backend.destroyed) {
      const broke = client.errored as NodeJS.ErrnoException | null;
      if (broke) {
        // The client's connection broke (RST): the backend must not take what it got for all.
        peerLine(log, peer, 'info', 'client broke the connection; backend connection reset', {
          backend: b.id,
          reason: broke.code ?? broke.message,
        });
        reset(backend);
      } else if (!backend.readableEnded)
        backend.destroy(); // nobody to deliver to
      // It sent its FIN and only needs to take our last bytes: give it a bounded while.
      else setTimeout(() => backend.destroy(), BACKEND_LINGER_MS).unref();
    }
    if (--open === 0) done();
  });
  backend.on('error', (err: NodeJS.ErrnoException) => {
    backendBroke = err.code ?? err.message;
  });
  backend.once('close', () => {
    reader.release();
    pool.released(
      b,
      Math.max(0, backend.bytesWritten - header),
      backend.bytesRead,
      backendBroke !== undefined,
    );
    if (backendBroke !== undefined) {
      if (!client.destroyed) {
        peerLine(log, peer, 'info', 'backend broke the connection; client connection reset', {
          backend: b.id,
          reason: backendBroke,
        });
        // What the client got so far is not the whole reply: an RST says so, a FIN would not.
        reset(client);
      }
    } else if (!client.destroyed) {
      // The backend is gone both ways: deliver what it sent, then close; what the client
      // still sends has nowhere to go.
      client.off('data', fromClient);
      client.pause();
      passFin(client);
      if (client.writableFinished) client.destroy();
      else if (!client.destroyed) client.once('finish', () => client.destroy());
    }
    if (--open === 0) done();
  });
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
 * client -> backend with backpressure: src is not read while dst holds more than its
 * highWaterMark unsent; src's FIN is passed on. Lighter than stream.pipe (three listeners,
 * no state). Returns the data listener. (backend -> client goes through BackendReader.)
 */
function pump(src: Socket, dst: Socket): (chunk: Buffer) => void {
  const onData = (chunk: Buffer) => {
    if (!dst.write(chunk)) src.pause();
  };
  src.on('data', onData);
  src.resume(); // a socket handed over paused (pauseOnConnect) does not start on 'data' alone
  dst.on('drain', () => src.resume());
  src.once('end', () => passFin(dst));
  return onData;
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
