// Helpers for message-layer tests: a logger that keeps its lines, and a plain net.Server that
// runs a Tcpmain the way the daemon does (env per connection, promise ends the socket).
import { once } from 'node:events';
import { createConnection, createServer, type Server, type Socket } from 'node:net';
import pino, { type Logger } from 'pino';
import type { Codec, Frame } from '../../src/message/index.js';
import type { TcpdaemonEnv, Tcpmain } from '../../src/types.js';
import type { LogLine } from './daemon.js';

export interface LogCapture {
  logger: Logger;
  lines: LogLine[];
  /** Resolves with the first line (past or future) matching `pred`. */
  waitFor(pred: (l: LogLine) => boolean, timeoutMs?: number): Promise<LogLine>;
}

export function captureLogs(level: pino.Level = 'debug'): LogCapture {
  const lines: LogLine[] = [];
  let waiters: { pred: (l: LogLine) => boolean; resolve: (l: LogLine) => void }[] = [];
  const logger = pino(
    { level, formatters: { level: (label) => ({ level: label }) } },
    {
      write(s: string) {
        const line = JSON.parse(s) as LogLine;
        lines.push(line);
        waiters = waiters.filter((w) => {
          if (!w.pred(line)) return true;
          w.resolve(line);
          return false;
        });
      },
    },
  );
  return {
    logger,
    lines,
    waitFor(pred, timeoutMs = 10000) {
      const seen = lines.find(pred);
      if (seen) return Promise.resolve(seen);
      return new Promise((resolve, reject) => {
        const timer = setTimeout(
          () =>
            reject(
              new Error(
                `no matching log line in ${timeoutMs} ms; got:\n${lines.map((l) => JSON.stringify(l)).join('\n')}`,
              ),
            ),
          timeoutMs,
        );
        waiters.push({
          pred,
          resolve: (l) => {
            clearTimeout(timer);
            resolve(l);
          },
        });
      });
    },
  };
}

export interface InProcessServer {
  server: Server;
  port: number;
  logs: LogCapture;
  /** Sockets open on the server side. */
  readonly sockets: ReadonlySet<Socket>;
  /** Aborts env.signal (graceful shutdown), stops listening, destroys what is left after `graceMs`. */
  close(graceMs?: number): Promise<void>;
}

/** Serves `tcpmain` on 127.0.0.1 (port 0 unless given) with a daemon-like env. */
export async function serveInProcess(
  tcpmain: Tcpmain,
  opts: { port?: number } = {},
): Promise<InProcessServer> {
  const logs = captureLogs();
  const controller = new AbortController();
  const sockets = new Set<Socket>();
  const settled = new Set<Promise<unknown>>();
  let seq = 0;
  const server = createServer((socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => {});
    const connectionId = `0-${++seq}`;
    const remoteAddress = socket.remoteAddress ?? '';
    const remotePort = socket.remotePort ?? 0;
    const env: TcpdaemonEnv = {
      model: 'IOMP',
      workerId: 0,
      connectionId,
      logger: logs.logger.child({ conn: connectionId, remote: `${remoteAddress}:${remotePort}` }),
      remoteAddress,
      remotePort,
      signal: controller.signal,
      params: Object.freeze({}),
      state: {},
    };
    let result: unknown;
    try {
      result = tcpmain(socket, env);
    } catch {
      socket.destroy();
      return;
    }
    if (result instanceof Promise) {
      const p = result.then(
        () => {
          if (!socket.destroyed) socket.end();
        },
        () => socket.destroy(),
      );
      settled.add(p);
      void p.finally(() => settled.delete(p));
    }
  });
  server.listen(opts.port ?? 0, '127.0.0.1');
  await once(server, 'listening');
  const address = server.address();
  const port = typeof address === 'object' && address !== null ? address.port : 0;
  return {
    server,
    port,
    logs,
    sockets,
    async close(graceMs = 2000) {
      controller.abort();
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      const timer = setTimeout(() => {
        for (const s of sockets) s.destroy();
      }, graceMs);
      await Promise.all([...settled]);
      for (const s of sockets) s.destroy();
      await closed;
      clearTimeout(timer);
    },
  };
}

/** Polls `pred` every 10 ms until it holds (rejects after `timeoutMs`). */
export async function until(pred: () => boolean, timeoutMs = 10000, what = 'condition'): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!pred()) {
    if (Date.now() > deadline) throw new Error(`${what} not met within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** A raw socket speaking a codec, for driving a message server byte by byte. */
export class FramedSocket {
  readonly frames: Frame[] = [];
  readonly errors: string[] = [];
  /** Resolves when the socket has closed. */
  readonly closed: Promise<void>;
  private waiters: (() => void)[] = [];

  constructor(
    readonly socket: Socket,
    readonly codec: Codec,
  ) {
    const decoder = codec.createDecoder({
      frame: (msgid, body, seq, flags) => {
        this.frames.push({ msgid, body, seq, flags });
        for (const w of this.waiters.splice(0)) w();
      },
      error: (reason) => this.errors.push(reason),
    });
    socket.on('data', (d: Buffer) => decoder.push(d));
    socket.on('error', () => {});
    this.closed = new Promise((resolve) => socket.once('close', () => resolve()));
    void this.closed.then(() => {
      for (const w of this.waiters.splice(0)) w();
    });
  }

  static async connect(port: number, codec: Codec): Promise<FramedSocket> {
    const socket = createConnection(port, '127.0.0.1');
    await once(socket, 'connect');
    return new FramedSocket(socket, codec);
  }

  send(msgid: number, body: string | Buffer = '', seq = 0, flags = 0): void {
    this.socket.write(
      this.codec.encode(msgid, typeof body === 'string' ? Buffer.from(body) : body, seq, flags),
    );
  }

  /** Waits until `n` frames have arrived in total; returns them all. */
  async waitFrames(n: number, timeoutMs = 10000): Promise<Frame[]> {
    const deadline = Date.now() + timeoutMs;
    while (this.frames.length < n) {
      if (this.socket.destroyed && this.frames.length < n) {
        throw new Error(`socket closed after ${this.frames.length}/${n} frames`);
      }
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`got ${this.frames.length}/${n} frames within ${timeoutMs} ms`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.waiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
    return this.frames.slice(0, n);
  }

  destroy(): void {
    this.socket.destroy();
  }
}
