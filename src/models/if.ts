// IF: a fresh process for every connection. The supervisor keeps `--spares K` connection processes
// started ahead (its slots); an accepted socket (paused: no byte read in the daemon) goes to a free
// spare over IPC, and that slot starts its replacement at once (a recycle). At most `-c N` processes
// hold connections; above that, or while no spare is ready, connections wait in a bounded queue.
import { spawn } from 'node:child_process';
import type { Socket } from 'node:net';
import { type ExitInfo, Supervisor, type WorkerHandle } from '../supervisor/index.js';
import { ThrottledCount } from '../throttled-count.js';
import type { Logger } from '../types.js';
import { workerEntry } from './entry.js';
import { IF_CONFIG_ENV, type IfMessage } from './if-protocol.js';
import type { Model, ModelHost, RunningModel } from './model.js';
import { workerConfig } from './worker-config.js';

/**
 * A retired connection process keeps its connection as long as the client keeps it: 24 days, ms.
 * Below node's timer limit (2^31 - 1 ms) with room for the supervisor's kill margin added to it.
 */
const UNLIMITED_MS = 24 * 24 * 3600 * 1000;

export const instantFork: Model = {
  unavailable: (params) =>
    typeof params.handler === 'string'
      ? undefined
      : 'model IF needs the handler as a module path (-s FILE): every connection process loads it',
  pauseOnConnect: () => true,
  start: async (host) => {
    const dispatcher = new Dispatcher(host);
    await dispatcher.start();
    return dispatcher;
  },
};

class Dispatcher implements RunningModel {
  private readonly supervisor: Supervisor;
  private readonly logger: Logger;
  /** Processes that took a connection and have not exited: at most `maxBusy`. */
  private readonly busy = new Set<WorkerHandle>();
  /** Accepted, paused sockets waiting for a process; at most `maxWaiting`. */
  private readonly waiting: Socket[] = [];
  private readonly maxBusy: number;
  private readonly maxWaiting: number;
  private readonly maxConnections: number;
  private readonly queueFull: ThrottledCount;
  private readonly drops: ThrottledCount;
  private stopping = false;

  constructor(host: ModelHost) {
    const { params, logger } = host;
    this.logger = logger;
    this.maxBusy = params.workers;
    this.maxWaiting = params.maxWaiting;
    this.maxConnections = params.maxConnections;
    this.queueFull = new ThrottledCount(
      logger,
      'connection closed: all connection processes busy and the queue is full',
    );
    this.drops = new ThrottledCount(logger, 'connection refused: --max-connections reached');
    const config = JSON.stringify(workerConfig(host));
    const entry = workerEntry('if-child');
    this.supervisor = new Supervisor({
      name: 'connection processes',
      size: params.spares,
      logger,
      retireGraceMs: UNLIMITED_MS,
      spec: {
        start: (ctx) =>
          spawn(process.execPath, [...entry.execArgv, entry.file], {
            env: { ...process.env, ...ctx.env, [IF_CONFIG_ENV]: config },
            stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
          }),
      },
    });
    this.supervisor.on('ready', () => this.pump());
    this.supervisor.on('exit', (w, info) => this.onExit(w, info));
    if (!host.server) throw new Error('IF needs the listening server');
    host.server.on('connection', (socket) => this.accept(socket));
  }

  start(): Promise<void> {
    return this.supervisor.start();
  }

  get connections(): number {
    return this.busy.size + this.waiting.length;
  }

  private accept(socket: Socket): void {
    socket.on('error', () => undefined); // a reset while waiting: the socket is dropped below
    if (this.stopping) {
      socket.destroy();
      return;
    }
    if (this.maxConnections > 0 && this.connections >= this.maxConnections) {
      this.drops.add({ max: this.maxConnections, remote: socket.remoteAddress });
      socket.destroy();
      return;
    }
    this.waiting.push(socket);
    this.pump();
    if (this.waiting.length > this.maxWaiting) {
      const newest = this.waiting.pop()!;
      this.queueFull.add({ busy: this.busy.size, queue: this.maxWaiting, remote: newest.remoteAddress });
      newest.destroy();
    }
  }

  /** Hands waiting sockets to free spares while the -c cap allows. */
  private pump(): void {
    while (this.waiting.length > 0 && this.busy.size < this.maxBusy && !this.stopping) {
      const spare = this.supervisor.readyWorkers().find((w) => !this.busy.has(w));
      if (!spare) return;
      const socket = this.waiting.shift()!;
      if (socket.destroyed) continue;
      this.busy.add(spare);
      const msg: IfMessage = { tdif: 'conn' };
      spare.send(msg, socket).catch((err: Error) => {
        this.logger.warn(
          { err: err.message, workerPid: spare.pid },
          'connection could not be handed over; closed',
        );
        socket.destroy();
      });
      // Not synchronously: from inside the supervisor's 'ready' event the slot still counts as
      // replacing, and the request would wait for the supervisor's next tick (1 s).
      setImmediate(() => this.supervisor.recycle(spare.slot, 'took a connection'));
    }
  }

  private onExit(w: WorkerHandle, info: ExitInfo): void {
    if (this.busy.delete(w) && (info.code !== 0 || info.signal !== null) && info.reason !== 'stop') {
      this.logger.warn(
        { workerPid: w.pid, code: info.code, signal: info.signal, uptimeMs: info.uptimeMs },
        'connection process ended abnormally; its connection is lost',
      );
    }
    this.pump();
  }

  reopenLogs(): void {
    this.supervisor.broadcast({ tdw: 'reopen-log' });
  }

  /** Fresh spares; connections being served keep their processes until they end. */
  async reload(): Promise<void> {
    const result = await this.supervisor.reload();
    if (result.ok) this.logger.info({ spares: result.replaced }, 'spare connection processes reloaded');
  }

  async close(deadlineMs: number): Promise<void> {
    this.stopping = true;
    const waiting = this.waiting.splice(0);
    for (const s of waiting) s.destroy();
    if (waiting.length > 0)
      this.logger.warn({ count: waiting.length }, 'stopping: waiting connections closed');
    const stop: IfMessage = { tdif: 'stop' };
    for (const w of this.busy) w.send(stop).catch(() => undefined);
    await this.supervisor.stop(deadlineMs);
  }
}
