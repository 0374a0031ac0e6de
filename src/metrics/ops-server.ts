// The operations listener (--metrics ADDR): GET /metrics (Prometheus text), /healthz (the daemon's
// loop answers), /readyz (it takes connections: 200, or 503 with the reason). Anything else is
// 404. Bounded against a flood: few sockets, small headers, short timeouts, one render at a time
// (concurrent scrapes share it).

import { once } from 'node:events';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { describeErrno, ListenError } from '../errors.js';
import type { ListenAddress } from '../listen-address.js';
import { formatAddress } from '../listen-address.js';
import type { Logger } from '../types.js';

export interface OpsEndpoints {
  /** The /metrics body and its content type. */
  metrics(): Promise<{ contentType: string; body: string }>;
  /** Undefined when ready; else why not (the /readyz 503 body). */
  notReady(): string | undefined;
}

/** Scrapers and probes keep a connection or two each: more sockets than this are refused. */
const MAX_SOCKETS = 64;
const HEADERS_TIMEOUT_MS = 5_000;
const REQUEST_TIMEOUT_MS = 10_000;
const KEEP_ALIVE_MS = 5_000;
const MAX_HEADER_BYTES = 8_192;
const MAX_REQUESTS_PER_SOCKET = 1_000;

export async function serveOps(
  address: ListenAddress,
  endpoints: OpsEndpoints,
  logger: Logger,
): Promise<Server> {
  let rendering: Promise<{ contentType: string; body: string }> | undefined;
  const render = () => {
    rendering ??= endpoints.metrics().finally(() => {
      rendering = undefined;
    });
    return rendering;
  };
  const reply = (res: ServerResponse, status: number, body: string, type = 'text/plain; charset=utf-8') => {
    res.writeHead(status, {
      'content-type': type,
      'content-length': Buffer.byteLength(body),
      'cache-control': 'no-store',
    });
    res.end(res.req.method === 'HEAD' ? undefined : body);
  };
  const onRequest = (req: IncomingMessage, res: ServerResponse) => {
    // A request body is never read: drop it rather than keep the socket busy with it.
    req.resume();
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.setHeader('allow', 'GET, HEAD');
      reply(res, 405, 'method not allowed\n');
      return;
    }
    const path = (req.url ?? '/').split('?')[0];
    if (path === '/healthz') reply(res, 200, 'ok\n');
    else if (path === '/readyz') {
      const why = endpoints.notReady();
      reply(res, why === undefined ? 200 : 503, why === undefined ? 'ready\n' : `not ready: ${why}\n`);
    } else if (path === '/metrics') {
      render().then(
        (m) => reply(res, 200, m.body, m.contentType),
        (err: unknown) => {
          logger.error({ err }, 'metrics could not be rendered');
          reply(res, 500, 'metrics could not be rendered\n');
        },
      );
    } else reply(res, 404, 'not found\n');
  };
  const server = createServer(
    {
      maxHeaderSize: MAX_HEADER_BYTES,
      requestTimeout: REQUEST_TIMEOUT_MS,
      headersTimeout: HEADERS_TIMEOUT_MS,
    },
    onRequest,
  );
  server.maxConnections = MAX_SOCKETS;
  server.keepAliveTimeout = KEEP_ALIVE_MS;
  server.maxHeadersCount = 64;
  server.maxRequestsPerSocket = MAX_REQUESTS_PER_SOCKET;
  // A socket that goes quiet is closed (node's own answer to a bad request, 400 or 431, stays).
  server.timeout = REQUEST_TIMEOUT_MS;
  if (address.kind === 'systemd')
    throw new ListenError(
      `cannot serve --metrics on ${formatAddress(address)}: give it an ip:port or a socket path`,
    );
  try {
    if (address.kind === 'unix') server.listen({ path: address.path });
    else server.listen({ host: address.host, port: address.port });
    await once(server, 'listening');
  } catch (err) {
    throw new ListenError(
      `cannot serve --metrics on ${formatAddress(address)}: ${describeErrno(err)}`,
      (err as NodeJS.ErrnoException).code,
    );
  }
  server.unref();
  return server;
}

/** The bound address as logged (`127.0.0.1:9100`, with the real port when 0 was asked for). */
export function opsAddress(server: Server, asked: ListenAddress): string {
  const a = server.address() as AddressInfo | string | null;
  if (a === null || typeof a === 'string' || asked.kind !== 'tcp') return formatAddress(asked);
  return formatAddress({ kind: 'tcp', host: asked.host, port: a.port });
}

/** Stops listening and cuts keep-alive sockets (a scraper's) so the daemon can exit. */
export async function closeOps(server: Server): Promise<void> {
  const closed = new Promise<void>((r) => server.close(() => r()));
  server.closeAllConnections();
  await closed;
}
