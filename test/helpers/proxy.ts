// In-process pieces for proxy tests: tagged backends, a front running the proxy handler,
// and a logger whose lines the test can read.
import { once } from 'node:events';
import { createServer, type Server, type Socket } from 'node:net';
import { Writable } from 'node:stream';
import pino from 'pino';
import { type ForwardOptions, forward } from '../../src/proxy/forward.js';
import type { BackendPool } from '../../src/proxy/pool.js';
import type { Logger } from '../../src/types.js';

export interface MemoryLogger {
  logger: Logger;
  lines: Record<string, unknown>[];
  /** Lines whose msg is `msg`. */
  find(msg: string): Record<string, unknown>[];
}

export function memoryLogger(level = 'debug'): MemoryLogger {
  const lines: Record<string, unknown>[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, cb) {
      for (const line of chunk.toString().split('\n')) if (line) lines.push(JSON.parse(line));
      cb();
    },
  });
  const logger = pino({ level }, sink);
  return { logger, lines, find: (msg) => lines.filter((l) => l.msg === msg) };
}

export interface TestServer {
  server: Server;
  port: number;
  /** Accepted sockets still open. */
  sockets: Set<Socket>;
  close(): Promise<void>;
}

export async function listen(
  onConnection: (s: Socket) => void,
  opts: { allowHalfOpen?: boolean; pauseOnConnect?: boolean } = {},
): Promise<TestServer> {
  const sockets = new Set<Socket>();
  const serverOpts = {
    allowHalfOpen: opts.allowHalfOpen ?? false,
    pauseOnConnect: opts.pauseOnConnect ?? false,
  };
  const server = createServer(serverOpts, (s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
    s.on('error', () => {});
    onConnection(s);
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return {
    server,
    port: (server.address() as { port: number }).port,
    sockets,
    async close() {
      for (const s of sockets) s.destroy();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}

/** Echoes every chunk back prefixed by nothing; the first line it writes is `${tag}\n`. */
export function taggedEcho(tag: string): Promise<TestServer> {
  return listen((s) => {
    s.write(`${tag}\n`);
    s.pipe(s);
  });
}

/** A port nothing listens on (a server's, closed again). */
export async function deadPort(): Promise<number> {
  const t = await listen(() => {});
  await t.close();
  return t.port;
}

export interface Front extends TestServer {
  /** Client sockets as the front holds them, in accept order. */
  clients: Socket[];
  outcomes: Promise<unknown>[];
}

/** A front whose connection handler is `forward` (created with allowHalfOpen false, like the daemon's). */
export async function startFront(
  pool: BackendPool,
  opts: ForwardOptions,
  logger: Logger,
  server: { pauseOnConnect?: boolean } = {},
): Promise<Front> {
  const clients: Socket[] = [];
  const outcomes: Promise<unknown>[] = [];
  const t = await listen((s) => {
    clients.push(s);
    outcomes.push(forward(s, { address: s.remoteAddress!, port: s.remotePort! }, pool, opts, { logger }));
  }, server);
  return Object.assign(t, { clients, outcomes });
}
