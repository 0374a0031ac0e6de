// LF (leader/follower): a pool of worker processes, each serving ONE connection at a time. The
// daemon accepts (paused, so no byte is read before the worker does) and hands each connection
// to the worker that has been idle longest; when every worker is busy, connections wait in the
// daemon (accepted, not refused) until one is free.
import type { Socket } from 'node:net';
import type { WorkerHandle } from '../supervisor/supervisor.js';
import { ThrottledCount } from '../throttled-count.js';
import type { Logger } from '../types.js';
import { type FromWorker, isModelMessage, type ToWorker } from '../worker/messages.js';
import type { Model, ModelHost, RunningModel } from './model.js';
import { createSupervisor, startWorkers, workerLaunchProblem } from './worker-pool.js';

/** Connections that may wait for a free worker when --max-connections is not given. */
export const LF_MAX_WAITING = 1024;

export const lf: Model = {
  unavailable: (params) => workerLaunchProblem(params.handler),
  pauseOnConnect: () => true,
  start: startLf,
};

async function startLf(host: ModelHost): Promise<RunningModel> {
  const { params, logger } = host;
  const server = host.server;
  if (!server) throw new Error('LF needs the listening server');
  const supervisor = createSupervisor(host, { accept: 'dispatched', perWorkerMax: 0 });
  const pool = new LfDispatcher(logger, params.maxConnections);
  supervisor.on('message', (w: WorkerHandle, m: unknown) => {
    if (!isModelMessage(m)) return;
    const msg = m as FromWorker;
    if (msg.tdm === 'idle') pool.release(w);
    else if (msg.tdm === 'spent') pool.remove(w);
  });
  supervisor.on('ready', (w) => pool.add(w));
  supervisor.on('retire', (w) => pool.remove(w));
  supervisor.on('exit', (w) => pool.remove(w));
  server.on('connection', (socket) => pool.offer(socket));
  await startWorkers(supervisor);

  return {
    get connections() {
      return pool.connections;
    },
    async close(deadlineMs) {
      pool.closeWaiting();
      await supervisor.stop(deadlineMs);
    },
    reopenLogs: () => supervisor.broadcast({ tdw: 'reopen-log' }),
    reload: async () => {
      await supervisor.reload();
    },
  };
}

/** Idle workers in the order they became idle, busy ones, and the connections waiting for one. */
export class LfDispatcher {
  private idle: WorkerHandle[] = [];
  private readonly busy = new Set<WorkerHandle>();
  private readonly waiting: Socket[] = [];
  private readonly drops: ThrottledCount;

  constructor(
    logger: Logger,
    /** Busy plus waiting connections above which new ones are closed; 0 = LF_MAX_WAITING may wait. */
    private readonly maxConnections: number,
  ) {
    this.drops = new ThrottledCount(logger, 'connection refused: --max-connections reached');
  }

  /** Connections being served plus those waiting. */
  get connections(): number {
    return this.busy.size + this.waiting.length;
  }

  add(w: WorkerHandle): void {
    if (this.busy.has(w) || this.idle.includes(w)) return;
    this.idle.push(w);
    this.pump();
  }

  /** The worker takes no more connections (retiring, gone, or spent). */
  remove(w: WorkerHandle): void {
    this.busy.delete(w);
    this.idle = this.idle.filter((x) => x !== w);
  }

  release(w: WorkerHandle): void {
    if (!this.busy.delete(w)) return;
    this.idle.push(w);
    this.pump();
  }

  offer(socket: Socket): void {
    const full =
      this.maxConnections > 0
        ? this.connections >= this.maxConnections
        : this.idle.length === 0 && this.waiting.length >= LF_MAX_WAITING;
    if (full) {
      this.drops.add({ max: this.maxConnections || LF_MAX_WAITING, remote: socket.remoteAddress });
      socket.destroy();
      return;
    }
    socket.on('error', () => socket.destroy());
    this.waiting.push(socket);
    this.pump();
  }

  /** On stop: connections still waiting will not be served. */
  closeWaiting(): void {
    for (const s of this.waiting.splice(0)) s.destroy();
  }

  private pump(): void {
    while (this.idle.length > 0 && this.waiting.length > 0) {
      const w = this.idle.shift()!;
      const socket = this.waiting.shift()!;
      if (socket.destroyed) {
        this.idle.unshift(w);
        continue;
      }
      this.busy.add(w);
      const msg: ToWorker = { tdm: 'conn' };
      // keepOpen: our copy is closed as soon as the socket is on its way, not when the worker
      // acknowledges it; if the worker dies first, the kernel drops its copy and the peer sees
      // the connection end at once instead of hanging on a copy we would never close.
      w.send(msg, socket, { keepOpen: true }).then(
        () => socket.destroy(),
        () => {
          // The worker is going away (its exit removes it); the connection goes to another.
          this.busy.delete(w);
          if (socket.destroyed) return;
          this.waiting.unshift(socket);
          queueMicrotask(() => this.pump());
        },
      );
    }
  }
}
