// IF: a fresh process for every connection. The supervisor keeps `--spares K` worker processes
// started ahead (its slots), each with the handler loaded. An accepted socket (paused: the daemon
// reads no byte of it) goes to a ready spare, which the supervisor hands over (take) and replaces
// at once; the process serves that one connection and exits when it closes. At most `-c N`
// processes hold connections; above that, or while no spare is ready, connections wait (bounded).
import type { ExitInfo, WorkerHandle } from '../supervisor/supervisor.js';
import type { Logger } from '../types.js';
import { Handoff } from './handoff.js';
import type { Model, ModelHost, RunningModel } from './model.js';
import { createSupervisor, startWorkers, workerLaunchProblem } from './worker-pool.js';

export const instantFork: Model = {
  unavailable: (params) => workerLaunchProblem(params.handler),
  pauseOnConnect: () => true,
  start: startIf,
};

async function startIf(host: ModelHost): Promise<RunningModel> {
  const { params, logger } = host;
  const server = host.server;
  if (!server) throw new Error('IF needs the listening server');
  const supervisor = createSupervisor(host, { accept: 'single', perWorkerMax: 0, size: params.spares });
  const handoff = new Handoff({
    logger,
    maxConnections: params.maxConnections,
    maxWaiting: params.maxWaiting,
    maxBusy: params.workers,
    onHandout: (w) => supervisor.take(w),
  });
  supervisor.on('ready', (w) => handoff.add(w));
  supervisor.on('retire', (w) => handoff.remove(w));
  supervisor.on('exit', (w, info) => {
    handoff.remove(w);
    logLost(logger, w, info);
  });
  server.on('connection', (socket) => handoff.offer(socket));
  await startWorkers(supervisor);

  return {
    get connections() {
      return handoff.connections;
    },
    async close(deadlineMs) {
      const closed = handoff.closeWaiting();
      if (closed > 0) logger.warn({ count: closed }, 'stopping: waiting connections closed');
      // Connection processes are retired with the spares: env.signal aborts, they get deadlineMs.
      await supervisor.stop(deadlineMs);
    },
    reopenLogs: () => supervisor.broadcast({ tdw: 'reopen-log' }),
    // New spares load the handler from disk; connections being served keep their processes.
    reload: async () => {
      await supervisor.reload();
    },
  };
}

/** A connection process that ended with an error code or a signal lost its connection. */
function logLost(logger: Logger, w: WorkerHandle, info: ExitInfo): void {
  if (info.reason !== 'taken' || (info.code === 0 && info.signal === null)) return;
  logger.warn(
    { workerPid: w.pid, code: info.code, signal: info.signal, uptimeMs: info.uptimeMs },
    'connection process ended abnormally; its connection is lost',
  );
}
