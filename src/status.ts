// `--status-socket PATH`: a unix socket on which the daemon answers every connection with one
// JSON line describing what runs now (read by `tcpdaemon status PATH`), then closes it.
import { chmodSync, unlinkSync } from 'node:fs';
import { connect, createServer, type Server } from 'node:net';
import { StatusSocketError } from './errors.js';
import { removeStaleUnixSocket } from './listen.js';
import type { SupervisorStatus } from './supervisor/supervisor.js';
import type { Logger } from './types.js';

export interface DaemonStatus {
  pid: number;
  version: string;
  node: string;
  model: string;
  /** As logged at start, with the real port. */
  address: string;
  handler: string;
  state: 'starting' | 'serving' | 'stopping' | 'stopped';
  /** ISO time the daemon started listening. */
  startedAt: string;
  uptimeS: number;
  /** Open connections across all workers (worker models: as of each worker's last report). */
  connections: number;
  /** Reloads run (SIGHUP or handle.reload()), whether or not they succeeded: the log says. */
  reloads: number;
  /** LF, IF: connections accepted and waiting for a free worker. */
  waiting?: number;
  /** Worker models: the supervisor's view. */
  workers?: SupervisorStatus;
  /** What the command adds (the proxy's backends, the gateway's requests and workers). */
  sections?: StatusSection[];
}

/** A block of a status report that a command adds: a summary line and an optional table. */
export interface StatusSection {
  title: string;
  summary?: string;
  columns?: string[];
  rows?: (string | number)[][];
  /** The same facts as numbers, for `--json` readers. */
  data?: unknown;
}

/** Clients answered at once; more wait in the listen backlog. */
const MAX_STATUS_CLIENTS = 16;

export { StatusSocketError };

/**
 * Listens on `path` (mode 0600) and answers each connection with `report()`. A socket file left by a
 * daemon that is gone is replaced (logged); one that a live process answers on, and anything at
 * the path that is not a socket, is an error (and left as it is).
 */
export async function serveStatus(
  path: string,
  report: () => DaemonStatus | Promise<DaemonStatus>,
  logger: Logger,
): Promise<Server> {
  const server = createServer((socket) => {
    socket.on('error', () => socket.destroy());
    (async () => `${JSON.stringify(await report())}\n`)()
      .catch((err: unknown) => {
        logger.error({ err }, 'status report failed');
        return `${JSON.stringify({ error: (err as Error).message })}\n`;
      })
      .then((line) => socket.end(line));
  });
  server.maxConnections = MAX_STATUS_CLIENTS;
  try {
    await listenOn(server, path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EADDRINUSE') throw statusError(path, err);
    const found = await removeStaleUnixSocket(path);
    if (found === 'live')
      throw new StatusSocketError(`--status-socket ${path}: another process answers on it`);
    if (found === 'not a socket')
      throw new StatusSocketError(
        `--status-socket ${path}: the path exists and is not a socket (left untouched)`,
      );
    if (found !== 'removed' && found !== 'gone')
      throw new StatusSocketError(`--status-socket ${path}: in use, and probing it failed (${found})`);
    if (found === 'removed') logger.warn({ path }, 'removing stale status socket (nothing listens on it)');
    try {
      await listenOn(server, path);
    } catch (again) {
      throw statusError(path, again);
    }
  }
  chmodSync(path, 0o600);
  return server;
}

/** Stops answering and removes the socket file. */
export function closeStatus(server: Server, path: string): Promise<void> {
  return new Promise((resolve) => {
    server.close(() => resolve());
    try {
      unlinkSync(path);
    } catch {
      // already gone
    }
  });
}

function statusError(path: string, err: unknown): StatusSocketError {
  const e = err as NodeJS.ErrnoException;
  return new StatusSocketError(
    `--status-socket ${path}: ${e.code ?? ''} ${e.message}`.replace(/ {2,}/g, ' '),
  );
}

function listenOn(server: Server, path: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const onError = (err: Error) => reject(err);
    server.once('error', onError);
    server.listen(path, () => {
      server.off('error', onError);
      resolve();
    });
  });
}

/** Reads one status report from `path`; rejects with a one-line reason after `timeoutMs`. */
export function readStatus(path: string, timeoutMs = 5000): Promise<DaemonStatus> {
  return new Promise((resolve, reject) => {
    const socket = connect(path);
    const chunks: Buffer[] = [];
    let size = 0;
    const fail = (reason: string) => {
      socket.destroy();
      reject(new Error(`no status from ${path}: ${reason}`));
    };
    socket.setTimeout(timeoutMs, () => fail(`no answer within ${timeoutMs} ms`));
    socket.on('error', (err: NodeJS.ErrnoException) => fail(err.code ?? err.message));
    socket.on('data', (chunk: Buffer) => {
      size += chunk.length;
      // A report is a few KiB per worker; anything far larger is not our daemon.
      if (size > 16 * 2 ** 20) return fail('answer larger than 16 MiB');
      chunks.push(chunk);
    });
    socket.on('end', () => {
      let parsed: unknown;
      try {
        parsed = JSON.parse(Buffer.concat(chunks).toString('utf8'));
      } catch {
        return fail('the answer is not a status report');
      }
      const error = (parsed as { error?: unknown } | null)?.error;
      if (typeof error === 'string') return fail(error);
      if (!isStatusReport(parsed)) return fail('the answer is not a status report');
      resolve(parsed);
    });
  });
}

/** Shape check of an answer: something else listening there may send any JSON. */
function isStatusReport(v: unknown): v is DaemonStatus {
  const r = v as Record<string, unknown>;
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return false;
  const strings = ['version', 'node', 'model', 'address', 'handler', 'state', 'startedAt'];
  const numbers = ['pid', 'uptimeS', 'connections', 'reloads'];
  if (!strings.every((k) => typeof r[k] === 'string') || !numbers.every((k) => Number.isFinite(r[k])))
    return false;
  if (r.waiting !== undefined && !Number.isFinite(r.waiting)) return false;
  if (r.workers === undefined) return true;
  const w = r.workers as Record<string, unknown> | null;
  return (
    typeof w === 'object' &&
    w !== null &&
    ['started', 'failedExits', 'plannedExits'].every((k) => Number.isFinite(w[k])) &&
    Array.isArray(w.crashLooping) &&
    Array.isArray(w.workers) &&
    w.workers.every(
      (x: Record<string, unknown> | null) =>
        typeof x === 'object' && x !== null && typeof x.state === 'string' && Number.isFinite(x.uptimeS),
    )
  );
}

/** The report for people: one block, a row per worker. */
export function formatStatus(s: DaemonStatus): string {
  const lines = [
    `tcpdaemon ${s.version} (node ${s.node}), pid ${s.pid}, ${s.state}, up ${duration(s.uptimeS)} (since ${s.startedAt})`,
    `${s.model} on ${s.address}, handler ${s.handler}`,
    `connections ${s.connections}${s.waiting === undefined ? '' : `, waiting for a worker ${s.waiting}`}, reloads ${s.reloads}`,
  ];
  const w = s.workers;
  if (w) {
    const looping = w.crashLooping.length > 0 ? `, CRASH LOOP in worker ${w.crashLooping.join(', ')}` : '';
    lines.push(
      `workers: ${w.workers.length} live, ${w.started} started, ${w.failedExits} failed exits, ${w.plannedExits} planned exits${looping}`,
    );
    const rows = w.workers.map((x) => [
      String(x.workerId),
      String(x.pid ?? '-'),
      x.state,
      duration(x.uptimeS),
      String(x.served),
      String(x.active),
      x.rssBytes === undefined ? '-' : (x.rssBytes / 2 ** 20).toFixed(1),
    ]);
    lines.push(...table(['id', 'pid', 'state', 'up', 'served', 'active', 'rss MiB'], rows));
  }
  for (const section of s.sections ?? []) {
    lines.push(`${section.title}${section.summary === undefined ? '' : `: ${section.summary}`}`);
    if (section.columns && section.rows) {
      lines.push(
        ...table(
          section.columns,
          section.rows.map((r) => r.map(String)),
          section.columns.length,
        ),
      );
    }
  }
  return lines.join('\n');
}

/** Columns right-aligned except 2 and 3 (state, uptime) of the worker table; `textColumns` = all left. */
function table(head: string[], rows: string[][], textColumns = 0): string[] {
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const left = (i: number) => (textColumns > 0 ? i === 0 || i === 1 : i >= 2 && i <= 3);
  const line = (cells: string[]) =>
    `  ${cells.map((c, i) => (left(i) ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  ')}`;
  return [line(head), ...rows.map(line)];
}

function duration(seconds: number): string {
  const s = Math.floor(seconds);
  if (s < 60) return `${seconds.toFixed(1)}s`;
  const parts = [Math.floor(s / 86400), Math.floor(s / 3600) % 24, Math.floor(s / 60) % 60, s % 60];
  const units = ['d', 'h', 'm', 's'];
  const first = parts.findIndex((p) => p > 0);
  return parts
    .slice(first)
    .map((p, i) => `${p}${units[first + i]}`)
    .join('');
}
