// IF: a fresh process for every connection. The supervisor keeps `--spares K` worker processes
// started ahead (its slots), each with the handler loaded. An accepted socket (paused: the daemon
// reads no byte of it) goes to a ready spare, which the supervisor hands over (take) and replaces
// at once; the process serves that one connection and exits when it closes. At most `-c N`
// processes hold connections; above that, or while no spare is ready, connections wait (bounded).
// At stop, connection processes are retired with the spares: env.signal aborts, and they get
// --shutdown-timeout to finish.
import { Handoff, handoffLimits, serveByHandoff } from '../handoff.js';
import type { Model, ModelHost, RunningModel } from '../model.js';
import { createSupervisor, workerLaunchProblem } from '../worker-pool.js';

export const instantFork: Model = {
  unavailable: (params) => workerLaunchProblem(params.handler),
  pauseOnConnect: () => true,
  servesInWorkers: () => true,
  start: startIf,
};

function startIf(host: ModelHost): Promise<RunningModel> {
  const { params, logger } = host;
  const supervisor = createSupervisor(host, { accept: 'single', size: params.spares });
  const handoff = new Handoff({
    logger,
    ...handoffLimits(params),
    maxBusy: params.workers,
    onHandout: (w) => supervisor.take(w),
    addressGate: host.addressGate,
  });
  // A connection process that ended with an error code or a signal lost its connection.
  supervisor.on('exit', (w, info) => {
    if (info.reason !== 'taken' || (info.code === 0 && info.signal === null)) return;
    logger.warn(
      { workerPid: w.pid, code: info.code, signal: info.signal, uptimeMs: info.uptimeMs },
      'connection process ended abnormally; its connection is lost',
    );
  });
  return serveByHandoff(host, supervisor, handoff);
}
