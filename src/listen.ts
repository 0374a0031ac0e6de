import { once } from 'node:events';
import { unlink } from 'node:fs/promises';
import { connect, createServer, type Server } from 'node:net';
import { formatAddress, type ListenAddress } from './listen-address.js';
import type { Logger } from './types.js';

/** The daemon could not listen where it was told to. */
export class ListenError extends Error {
  override name = 'ListenError';
}

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
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'EADDRINUSE' && addr.kind === 'unix' && (await isStaleUnixSocket(addr.path))) {
      logger.warn({ path: addr.path }, 'removing stale unix socket (nothing listens on it)');
      await unlink(addr.path);
      return tryListen(addr, opts).catch((e: unknown) => {
        throw listenError(e, addr);
      });
    }
    throw listenError(err, addr);
  }
}

async function tryListen(addr: ListenAddress, opts: ListenOptions): Promise<Server> {
  const server = createServer({ pauseOnConnect: opts.pauseOnConnect ?? false });
  const backlog = opts.backlog ?? 511;
  if (addr.kind === 'unix') server.listen({ path: addr.path, backlog });
  else server.listen({ host: addr.host, port: addr.port, backlog });
  await once(server, 'listening');
  return server;
}

function listenError(err: unknown, addr: ListenAddress): ListenError {
  const where = formatAddress(addr);
  const code = (err as NodeJS.ErrnoException).code;
  const reason =
    code === 'EADDRINUSE'
      ? 'address already in use'
      : code === 'EACCES'
        ? 'permission denied'
        : code === 'EADDRNOTAVAIL'
          ? 'address not available on this machine'
          : code === 'ENOTFOUND' || code === 'EAI_AGAIN'
            ? 'host name does not resolve'
            : (err as Error).message;
  return new ListenError(`cannot listen on ${where}: ${reason}`);
}

function isStaleUnixSocket(path: string): Promise<boolean> {
  return new Promise((resolve) => {
    const probe = connect(path);
    probe.once('connect', () => {
      probe.destroy();
      resolve(false);
    });
    probe.once('error', (err: NodeJS.ErrnoException) => resolve(err.code === 'ECONNREFUSED'));
  });
}

/** The bound address, with the real port when 0 was asked for. */
export function boundAddress(server: Server, asked: ListenAddress): ListenAddress {
  const a = server.address();
  if (a === null || typeof a === 'string') return asked;
  return { kind: 'tcp', host: a.address, port: a.port };
}
