// LF (leader/follower): a pool of worker processes, each serving ONE connection at a time. The
// daemon accepts (paused, so no byte is read before the worker does) and hands each connection
// to the worker that has been idle longest; when every worker is busy, connections wait in the
// daemon (accepted, not refused) until one is free.
import type { WorkerHandle } from '../supervisor/supervisor.js';
import { type FromWorker, isModelMessage } from '../worker/messages.js';
import { Handoff, handoffLimits, serveByHandoff } from './handoff.js';
import type { Model, ModelHost, RunningModel } from './model.js';
import { createSupervisor, workerLaunchProblem } from './worker-pool.js';

export const lf: Model = {
  unavailable: (params) => workerLaunchProblem(params.handler),
  pauseOnConnect: () => true,
  servesInWorkers: () => true,
  start: startLf,
};

function startLf(host: ModelHost): Promise<RunningModel> {
  const { params, logger } = host;
  const supervisor = createSupervisor(host, { accept: 'dispatched' });
  const handoff = new Handoff({ logger, ...handoffLimits(params), addressGate: host.addressGate });
  supervisor.on('message', (w: WorkerHandle, m: unknown) => {
    if (!isModelMessage(m)) return;
    const msg = m as FromWorker;
    if (msg.tdm === 'idle') handoff.release(w);
    else if (msg.tdm === 'spent') handoff.remove(w);
  });
  return serveByHandoff(host, supervisor, handoff);
}
