// In-process pieces for proxy tests: tagged backends, a front running the proxy handler,
// and a logger whose lines the test can read.
import { once } from 'node:events';
import { connect, createServer, type Server, type Socket } from 'node:net';
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

// Dead ports are taken below 1024, outside the ephemeral range. A freed ephemeral port can be
// taken again by another test process listening on port 0, or a connect to it can get it as its
// own source port and meet itself (TCP self-connect): either way the connect succeeds (CI, once).
let nextDead = 1;

/** A port on 127.0.0.1 that refuses connections (checked), a new one per call in this process. */
export async function deadPort(): Promise<number> {
  while (nextDead < 1024) {
    const port = nextDead++;
    if (await refuses(port)) return port;
  }
  throw new Error('deadPort: every port below 1024 on 127.0.0.1 accepts or was handed out');
}

function refuses(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect({ port, host: '127.0.0.1' });
    s.once('connect', () => {
      s.destroy();
      resolve(false);
    });
    s.once('error', (err: NodeJS.ErrnoException) => resolve(err.code === 'ECONNREFUSED'));
  });
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
