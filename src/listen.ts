import { lookup } from 'node:dns/promises';
import { once } from 'node:events';
import type { Stats } from 'node:fs';
import { lstat, unlink } from 'node:fs/promises';
import * as net from 'node:net';
import { type AddressInfo, connect, createServer, type Server } from 'node:net';
import { getSystemErrorName } from 'node:util';
import { describeErrno, ListenError } from './errors.js';
import { formatAddress, type ListenAddress } from './listen-address.js';
import type { Logger } from './types.js';

export { ListenError };

export interface ListenOptions {
  /** Accepted sockets start paused, so a model can hand them to another process with no byte lost. */
  pauseOnConnect?: boolean;
  backlog?: number;
}

/** Listens once, in the daemon. Removes a stale unix socket file left by a crashed daemon. */
export async function listenOnce(addr: ListenAddress, opts: ListenOptions, logger: Logger): Promise<Server> {
  try {
    return await tryListen(addr, opts);
  } catch (err) {
    if (!(await clearedForRetry(err, addr, logger))) throw listenError(err, addr);
    return tryListen(addr, opts).catch((e: unknown) => {
      throw listenError(e, addr);
    });
  }
}

/**
 * After a failed bind: true when `addr` is a unix socket path that held a stale socket file,
 * now removed (logged), so binding again may work. Throws ListenError when something else is
 * at the path (a file that is not a socket is never removed); false for every other failure.
 */
async function clearedForRetry(err: unknown, addr: ListenAddress, logger: Logger): Promise<boolean> {
  if ((err as NodeJS.ErrnoException).code !== 'EADDRINUSE' || addr.kind !== 'unix') return false;
  const found = await removeStaleUnixSocket(addr.path);
  if (found === 'removed') {
    logger.warn({ path: addr.path }, 'removing stale unix socket (nothing listens on it)');
    return true;
  }
  if (found === 'not a socket')
    throw new ListenError(
      `cannot listen on ${formatAddress(addr)}: the path exists and is not a socket (left untouched)`,
    );
  return found === 'gone';
}

async function tryListen(addr: ListenAddress, opts: ListenOptions): Promise<Server> {
  const server = createServer({ pauseOnConnect: opts.pauseOnConnect ?? false });
  const backlog = opts.backlog ?? 511;
  if (addr.kind === 'systemd') throw notResolved(addr);
  if (addr.fd !== undefined) server.listen({ fd: addr.fd, backlog });
  else if (addr.kind === 'unix') server.listen({ path: addr.path, backlog });
  else server.listen({ host: addr.host, port: addr.port, backlog });
  await once(server, 'listening');
  return server;
}

/** What the daemon holds while it listens: a net.Server, or a SharedListener. */
export interface Listening {
  address(): AddressInfo | string | null;
  close(callback?: () => void): void;
}

/**
 * A socket the daemon binds and holds but never accepts on: workers listen on copies of it and
 * accept from it directly. While the daemon holds it, the socket stays in the kernel's listen
 * state even when no worker is alive, so connections wait in the backlog instead of being refused.
 */
export interface SharedListener extends Listening {
  /** The libuv handle (TCP or Pipe) to send to workers with child.send(message, handle). */
  readonly handle: object;
  /**
   * --reuse-port: every socket of the SO_REUSEPORT group, one per worker slot (members[0] is
   * `handle`); otherwise just [handle]. All are held (and closed) by the daemon.
   */
  readonly members: readonly object[];
  address(): AddressInfo | string;
}

interface RawHandle {
  getsockname?(out: Record<string, unknown>): number;
  close(callback?: () => void): void;
}

type CreateServerHandle = (
  address: string,
  port: number,
  addressType: number,
  fd?: number,
  flags?: number,
) => RawHandle | number;

/** libuv's uv_tcp_flags UV_TCP_REUSEPORT (uv.h), as node's tcp_wrap passes it to uv_tcp_bind. */
const UV_TCP_REUSEPORT = 2;

/** node's own bind-without-listen, as node:cluster uses it; undefined if this Node lacks it. */
const createServerHandle = (net as unknown as { _createServerHandle?: CreateServerHandle })
  ._createServerHandle;

export function canBindShared(): boolean {
  return typeof createServerHandle === 'function';
}

/** Binds `addr` for workers to listen on (see SharedListener); stale unix sockets are replaced. */
export async function bindShared(addr: ListenAddress, logger: Logger): Promise<SharedListener> {
  try {
    return await tryBindShared(addr);
  } catch (err) {
    if (!(await clearedForRetry(err, addr, logger))) throw listenError(err, addr);
    return tryBindShared(addr).catch((e: unknown) => {
      throw listenError(e, addr);
    });
  }
}

async function tryBindShared(addr: ListenAddress): Promise<SharedListener> {
  if (!createServerHandle) throw new ListenError('this Node.js cannot bind a socket for workers to share');
  let handle: RawHandle | number;
  if (addr.kind === 'systemd') throw notResolved(addr);
  if (addr.fd !== undefined) {
    // node's own check: a handle made from an fd gets neither an address nor a port.
    handle = (createServerHandle as unknown as (a: null, p: null, t: null, fd: number) => RawHandle | number)(
      null,
      null,
      null,
      addr.fd,
    );
  } else if (addr.kind === 'unix') {
    handle = createServerHandle(addr.path, -1, -1);
  } else {
    const family = net.isIP(addr.host);
    const ip = family === 0 ? await lookup(addr.host) : { address: addr.host, family };
    handle = createServerHandle(ip.address, addr.port, ip.family);
  }
  if (typeof handle === 'number') {
    const code = getSystemErrorName(handle);
    throw Object.assign(new Error(code), { code });
  }
  const raw = handle;
  if (addr.kind === 'tcp') {
    // libuv defers EADDRINUSE from bind() to listen(); getsockname() reports it now.
    const rc = raw.getsockname?.({}) ?? 0;
    if (rc !== 0) {
      raw.close();
      const code = getSystemErrorName(rc);
      throw Object.assign(new Error(code), { code });
    }
  }
  const path = addr.kind === 'unix' ? addr.path : undefined;
  return {
    handle: raw,
    members: [raw],
    address() {
      if (path !== undefined) return path;
      const out: Record<string, unknown> = {};
      raw.getsockname?.(out);
      return out as unknown as AddressInfo;
    },
    close(callback) {
      // Closing a bound Pipe also unlinks its path (libuv).
      raw.close(callback);
    },
  };
}

/**
 * --reuse-port: binds `size` sockets to one TCP address with SO_REUSEPORT (the first takes the
 * port when 0 was asked; the others join it). The daemon holds every member for as long as it
 * runs: a worker that exits closes only its own descriptor, so its member stays in the group and
 * keeps the connections queued on it for the next worker of its slot (Linux resets the queue of
 * a member that is closed). Needs Node.js >= 22.12 (node-features.ts); the caller checks.
 */
export async function bindReusePortGroup(addr: ListenAddress, size: number): Promise<SharedListener> {
  if (addr.kind === 'unix') throw new ListenError('a unix socket has no SO_REUSEPORT group');
  if (addr.kind === 'systemd' || addr.fd !== undefined)
    throw new ListenError('a socket passed by systemd is one socket, not an SO_REUSEPORT group');
  if (!createServerHandle) throw new ListenError('this Node.js cannot bind a socket for workers to share');
  const family = net.isIP(addr.host);
  const ip =
    family === 0
      ? await lookup(addr.host).catch((e: unknown) => {
          throw listenError(e, addr);
        })
      : { address: addr.host, family };
  const members: RawHandle[] = [];
  let port = addr.port;
  const first: Record<string, unknown> = {};
  try {
    for (let i = 0; i < size; i++) {
      const h = createServerHandle(ip.address, port, ip.family, undefined, UV_TCP_REUSEPORT);
      if (typeof h === 'number') throw errnoError(h);
      members.push(h);
      // libuv defers EADDRINUSE of a bind to the next call on the handle: getsockname reports it.
      const out: Record<string, unknown> = {};
      const err = h.getsockname?.(out) ?? 0;
      if (err) throw errnoError(err);
      if (i === 0) {
        Object.assign(first, out);
        port = Number(out.port);
      }
    }
  } catch (err) {
    for (const h of members) h.close();
    throw listenError(err, addr);
  }
  const [handle] = members;
  return {
    handle: handle!,
    members,
    address: () => ({ ...first }) as unknown as AddressInfo,
    close(callback) {
      let open = members.length;
      for (const h of members)
        h.close(() => {
          if (--open === 0) callback?.();
        });
    },
  };
}

function notResolved(addr: ListenAddress): ListenError {
  return new ListenError(
    `${formatAddress(addr)}: the socket passed by systemd was not looked up before listening`,
  );
}

function errnoError(errno: number): NodeJS.ErrnoException {
  const code = getSystemErrorName(errno);
  return Object.assign(new Error(code), { code });
}

function listenError(err: unknown, addr: ListenAddress): ListenError {
  const where = formatAddress(addr);
  const code = (err as NodeJS.ErrnoException).code;
  return new ListenError(`cannot listen on ${where}: ${describeErrno(err)}`, code);
}

/** What removeStaleUnixSocket found at a unix socket path, besides a code of a failed system call. */
export type UnixPathState = 'removed' | 'live' | 'not a socket' | 'gone';

/**
 * At a unix socket path that could not be bound: removes the file only when it is a socket that
 * nobody accepts on ('removed': a crashed daemon's). Leaves everything else: 'live' (a process
 * accepts on it), 'not a socket' (a regular file, a directory, a symlink...: never ours),
 * 'gone' (nothing there now, or not the file probed: bind again), or the failing call's error
 * code. The type is checked with lstat first: a regular file refuses a connect (ECONNREFUSED)
 * just as a stale socket does.
 */
export async function removeStaleUnixSocket(path: string): Promise<UnixPathState | string> {
  const probed = await lstatOrCode(path);
  if (typeof probed === 'string') return probed;
  if (!probed.isSocket()) return 'not a socket';
  const answer = await new Promise<string>((resolve) => {
    const probe = connect(path);
    probe.once('connect', () => {
      probe.destroy();
      resolve('live');
    });
    probe.once('error', (err: NodeJS.ErrnoException) => resolve(err.code ?? err.message));
  });
  if (answer !== 'ECONNREFUSED') return answer;
  const now = await lstatOrCode(path);
  if (typeof now === 'string') return now;
  if (now.ino !== probed.ino || now.dev !== probed.dev) return 'gone';
  try {
    await unlink(path);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    return code === 'ENOENT' ? 'gone' : (code ?? (err as Error).message);
  }
  return 'removed';
}

async function lstatOrCode(path: string): Promise<Stats | string> {
  try {
    return await lstat(path);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    return code === 'ENOENT' ? 'gone' : (code ?? (err as Error).message);
  }
}

/** The bound address, with the real port when 0 was asked for. */
export function boundAddress(server: Listening, asked: ListenAddress): ListenAddress {
  const a = server.address();
  if (a === null || typeof a === 'string') return asked;
  return { kind: 'tcp', host: a.address, port: a.port };
}
