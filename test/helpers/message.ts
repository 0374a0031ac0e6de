// Helpers for message-layer tests: a logger that keeps its lines, a daemon (the library, in this
// process) serving a handler with its log read back, and a raw socket that speaks a codec.
import { execFile } from 'node:child_process';
import { once } from 'node:events';
import { readFileSync, rmSync } from 'node:fs';
import { type AddressInfo, createConnection, type Socket } from 'node:net';
import { join } from 'node:path';
import pino, { type Logger } from 'pino';
import { type TcpdaemonHandle, type Tcpmain, tcpdaemon } from '../../src/index.js';
import {
  type Codec,
  createMessageHandler,
  type Frame,
  type MessageHandlerOptions,
} from '../../src/message/index.js';
import { type LogLine, ROOT } from './daemon.js';
import { tempDir } from './temp-dir.js';

export interface LogReader {
  readonly lines: LogLine[];
  /** Resolves with the first line (past or future) matching `pred`. */
  waitFor(pred: (l: LogLine) => boolean, timeoutMs?: number): Promise<LogLine>;
}

export interface LogCapture extends LogReader {
  logger: Logger;
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
  handle: TcpdaemonHandle;
  port: number;
  /** The daemon's log (its logfile, read back). */
  logs: LogReader;
  /** Graceful stop (env.signal aborts); idempotent. */
  close(): Promise<void>;
}

/** The lines of a JSON-lines log file as it grows. */
function tailLogs(path: string): LogReader {
  const lines: LogLine[] = [];
  let read = 0;
  const refresh = () => {
    let text: string;
    try {
      text = readFileSync(path, 'utf8');
    } catch {
      return;
    }
    const end = text.lastIndexOf('\n') + 1;
    for (const line of text.slice(read, end).split('\n'))
      if (line !== '') lines.push(JSON.parse(line) as LogLine);
    read = end;
  };
  return {
    get lines() {
      refresh();
      return lines;
    },
    async waitFor(pred, timeoutMs = 10000) {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        refresh();
        const seen = lines.find(pred);
        if (seen) return seen;
        if (Date.now() > deadline) {
          throw new Error(
            `no matching log line in ${timeoutMs} ms; got:\n${lines.map((l) => JSON.stringify(l)).join('\n')}`,
          );
        }
        await new Promise((r) => setTimeout(r, 20));
      }
    },
  };
}

// The daemons' log files (the logger may still write while a daemon closes): removed at exit.
let logDir: string | undefined;
let daemons = 0;

/**
 * Serves `tcpmain` with the library (`tcpdaemon()`, IOMP in this process) on 127.0.0.1, port 0
 * unless given, logging at debug level to a temporary file that `logs` reads.
 */
export async function serveInProcess(
  tcpmain: Tcpmain,
  opts: { port?: number } = {},
): Promise<InProcessServer> {
  if (logDir === undefined) {
    const dir = tempDir('tcpdaemon-msg-');
    process.once('exit', () => rmSync(dir, { recursive: true, force: true }));
    logDir = dir;
  }
  const logfile = join(logDir, `daemon-${++daemons}.log`);
  const handle = await tcpdaemon({
    listen: `127.0.0.1:${opts.port ?? 0}`,
    handler: tcpmain,
    loglevel: 'debug',
    logfile,
    shutdownTimeout: 5,
  });
  const { port } = handle.address() as AddressInfo;
  let closing: Promise<void> | undefined;
  return {
    handle,
    port,
    logs: tailLogs(logfile),
    close() {
      closing ??= handle.close();
      return closing;
    },
  };
}

/** Polls `pred` every 10 ms until it holds (rejects after `timeoutMs`). */
/** A message handler built from `options`, served in this process for the length of `fn`. */
export async function withMessageServer(
  options: MessageHandlerOptions,
  fn: (srv: InProcessServer, handler: ReturnType<typeof createMessageHandler>) => Promise<void>,
): Promise<void> {
  const handler = createMessageHandler(options);
  const srv = await serveInProcess(handler);
  try {
    await fn(srv, handler);
  } finally {
    await srv.close();
  }
}

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

export interface RunResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs a program to completion (killed after `timeoutMs`), collecting its output. */
export function runProgram(file: string, args: string[], timeoutMs = 20000): Promise<RunResult> {
  return new Promise((resolve) => {
    execFile(file, args, { cwd: ROOT, timeout: timeoutMs, killSignal: 'SIGKILL' }, (err, stdout, stderr) => {
      const code = err === null ? 0 : typeof err.code === 'number' ? err.code : null;
      resolve({ code, stdout, stderr });
    });
  });
}
