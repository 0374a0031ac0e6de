import { once } from 'node:events';
import { connect as netConnect, type Socket } from 'node:net';

export async function connect(target: number | string, host = '127.0.0.1'): Promise<Socket> {
  const socket = typeof target === 'number' ? netConnect(target, host) : netConnect(target);
  await once(socket, 'connect');
  return socket;
}

/** Reads until `n` bytes arrived (rejects if the socket closes first). */
export function readBytes(socket: Socket, n: number, timeoutMs = 10000): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let got = 0;
    const timer = setTimeout(
      () => finish(new Error(`read ${got}/${n} bytes within ${timeoutMs} ms`)),
      timeoutMs,
    );
    const onData = (d: Buffer) => {
      chunks.push(d);
      got += d.length;
      if (got >= n) finish();
    };
    const onClose = () => finish(new Error(`socket closed after ${got}/${n} bytes`));
    const onError = (err: Error) => finish(err);
    function finish(err?: Error) {
      clearTimeout(timer);
      socket.off('data', onData).off('close', onClose).off('error', onError);
      if (err) reject(err);
      else resolve(Buffer.concat(chunks));
    }
    socket.on('data', onData).on('close', onClose).on('error', onError);
    socket.resume(); // in case an earlier reader paused it
  });
}

/** Writes `data` and reads the same number of bytes back. */
export async function roundTrip(socket: Socket, data: string | Buffer): Promise<string> {
  const buf = typeof data === 'string' ? Buffer.from(data) : data;
  socket.write(buf);
  return (await readBytes(socket, buf.length)).toString();
}

export interface CloseInfo {
  data: string;
  error: NodeJS.ErrnoException | undefined;
}

/** Resolves when the socket closes, with what it read and any error (ECONNRESET, ...). */
export function untilClosed(socket: Socket, timeoutMs = 10000): Promise<CloseInfo> {
  return new Promise((resolve, reject) => {
    let data = '';
    let error: NodeJS.ErrnoException | undefined;
    const timer = setTimeout(() => reject(new Error(`socket still open after ${timeoutMs} ms`)), timeoutMs);
    socket.setEncoding('utf8');
    socket.on('data', (d: string) => {
      data += d;
    });
    socket.on('error', (err) => {
      error = err;
    });
    socket.on('close', () => {
      clearTimeout(timer);
      resolve({ data, error });
    });
    socket.resume(); // in case an earlier reader paused it
  });
}

/** Reads up to and including the next '\n' and returns the line without it; leaves the socket paused. */
export function readLine(socket: Socket, timeoutMs = 10000): Promise<string> {
  return new Promise((resolve, reject) => {
    let got = '';
    const timer = setTimeout(
      () => finish(new Error(`no line within ${timeoutMs} ms (got '${got}')`)),
      timeoutMs,
    );
    const onData = (d: Buffer) => {
      got += d.toString('latin1');
      const i = got.indexOf('\n');
      if (i < 0) return;
      const rest = got.slice(i + 1);
      got = got.slice(0, i);
      finish(); // listeners off and paused first: unshift must not re-enter onData
      if (rest !== '') socket.unshift(Buffer.from(rest, 'latin1'));
    };
    const onClose = () => finish(new Error(`socket closed before a line (got '${got}')`));
    const onError = (err: Error) => finish(err);
    function finish(err?: Error) {
      clearTimeout(timer);
      socket.off('data', onData).off('close', onClose).off('error', onError);
      socket.pause();
      if (err) reject(err);
      else resolve(got);
    }
    socket.on('data', onData).on('close', onClose).on('error', onError);
    socket.resume();
  });
}

/** Sends `line` and reads the answer line. */
export async function ask(socket: Socket, line: string): Promise<string> {
  socket.write(`${line}\n`);
  return readLine(socket);
}

export interface LoadStats {
  /** Round trips that completed. */
  ok: number;
  /** Connections refused, reset, or not answered; with their error codes. */
  failed: number;
  errors: string[];
}

/**
 * Runs `loops` concurrent cycles of connect, send "ping\n", read it back, close, until stop() or
 * `maxMs`. A test asserts on the failures it saw (refused, reset, timed out).
 */
export function startLoadLoop(
  port: number,
  opts: { loops?: number; maxMs?: number; host?: string } = {},
): { stats: LoadStats; stop(): Promise<LoadStats> } {
  const stats: LoadStats = { ok: 0, failed: 0, errors: [] };
  const deadline = Date.now() + (opts.maxMs ?? 20000);
  let running = true;
  const loop = async () => {
    while (running && Date.now() < deadline) {
      await pingOnce(port, stats, opts.host);
      await new Promise((r) => setTimeout(r, 2));
    }
  };
  const loops = Array.from({ length: opts.loops ?? 2 }, loop);
  return {
    stats,
    async stop() {
      running = false;
      await Promise.all(loops);
      return stats;
    },
  };
}

/**
 * `count` connections one after the other, each opened right as the last one is closed (no pause):
 * connect, send "ping\n", read it back, destroy. The server may not have seen the last one close
 * when the next arrives. Resolves with what failed (refused, reset, not answered).
 */
export async function backToBack(port: number, count: number): Promise<LoadStats> {
  const stats: LoadStats = { ok: 0, failed: 0, errors: [] };
  for (let i = 0; i < count; i++) await pingOnce(port, stats);
  return stats;
}

/** One connection: connect, "ping\n" echoed back, destroy; counted in `stats` (the first 20 errors kept). */
export async function pingOnce(port: number, stats: LoadStats, host?: string): Promise<void> {
  let socket: Socket | undefined;
  try {
    socket = await connect(port, host);
    if ((await roundTrip(socket, 'ping\n')) !== 'ping\n') throw new Error('wrong echo');
    stats.ok++;
  } catch (err) {
    stats.failed++;
    if (stats.errors.length < 20)
      stats.errors.push((err as NodeJS.ErrnoException).code ?? (err as Error).message);
  } finally {
    socket?.destroy();
  }
}
