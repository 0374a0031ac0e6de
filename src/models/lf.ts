// LF (leader/follower): a pool of worker processes, each serving ONE connection at a time. The
// daemon accepts (paused, so no byte is read before the worker does) and hands each connection
// to the worker that has been idle longest; when every worker is busy, connections wait in the
// daemon (accepted, not refused) until one is free.
import type { WorkerHandle } from '../supervisor/supervisor.js';
import { type FromWorker, isModelMessage } from '../worker/messages.js';
import { Handoff } from './handoff.js';
import type { Model, ModelHost, RunningModel } from './model.js';
import { createSupervisor, startWorkers, workerLaunchProblem } from './worker-pool.js';

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
  const pool = new Handoff({ logger, maxConnections: params.maxConnections, maxWaiting: params.maxWaiting });
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
