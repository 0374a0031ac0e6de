// TLF (alias WIN-TLF): -c N worker threads in the daemon process, each an event loop serving many
// connections. The daemon binds the socket and holds it (listenMode 'shared'); every thread
// accepts on its own copy of it (listener-copy.ts), so a thread that throws, exits or is
// terminated costs only its own connections. The supervisor runs the threads like processes
// (thread-process.ts): restarts with backoff, reload, stop. --reuse-port: the thread of slot k
// copies member k of the daemon's SO_REUSEPORT group instead, and the kernel spreads connections.
import { Worker } from 'node:worker_threads';
import { serveAdmissions } from '../../address-admission.js';
import { canBindShared } from '../../listen.js';
import { entryLaunch } from '../../worker/launch.js';
import type { Model, ModelHost, RunningModel } from '../model.js';
import { createSupervisor, startWorkers, supervision, type WorkerPoolOptions } from '../worker-pool.js';
import type { ThreadData } from './thread-main.js';
import { ThreadProcess } from './thread-process.js';

export const tlf: Model = {
  unavailable: (params) => {
    if (typeof params.handler !== 'string')
      return 'model TLF needs the handler as a module path (-s FILE): a function cannot be sent to a thread';
    if (!canBindShared()) return 'model TLF needs a Node.js that can share a listening socket';
    return undefined;
  },
  pauseOnConnect: () => false,
  servesInWorkers: () => true,
  listenMode: () => 'shared',
  start: startThreads,
};

async function startThreads(host: ModelHost): Promise<RunningModel> {
  const { params, logger } = host;
  const shared = host.shared;
  if (!shared) throw new Error('TLF needs the shared listening socket');
  const keeperFd = (slot: number) => (shared.members[slot % shared.members.length] as { fd: number }).fd;
  // Threads inherit the daemon's execArgv: under tsx (tcpdaemon's own tests) the .ts entry loads.
  const entry = entryLaunch('../models/tlf/thread-main').file;
  // The same supervisor set-up and fail-fast start as the worker processes (worker-pool.ts), with
  // threads: no RSS of their own (--max-memory does not apply to TLF).
  const pool: WorkerPoolOptions = {
    accept: 'shared',
    // Per start, from host.params: a thread started after a config reload gets its values
    // (--max-connections is split evenly: each thread holds at most its share).
    thread(ctx, config) {
      const data: ThreadData = { config, keeperFd: keeperFd(ctx.slot) };
      const thread = new Worker(entry, { workerData: data, env: { ...process.env, ...ctx.env } });
      thread.on('error', (err) => logger.error({ err, slot: ctx.slot }, 'thread failed'));
      return new ThreadProcess(thread, params.shutdownTimeout * 1000);
    },
  };
  const supervisor = createSupervisor(host, pool);
  if (host.addressGate) serveAdmissions(supervisor, host.addressGate);
  // Threads that cannot load the handler stop start-up with the reason they sent ('fatal').
  await startWorkers(supervisor);
  return {
    get connections() {
      let n = 0;
      for (const w of supervisor.workers()) n += w.active;
      return n;
    },
    close: (deadlineMs) => supervisor.stop(deadlineMs),
    reopenLogs: () => supervisor.broadcast({ tdw: 'reopen-log' }),
    status: () => ({ workers: supervisor.status(), reports: supervisor.reports() }),
    reload: async () => {
      await supervisor.reload();
    },
    reconfigure: () => supervisor.reconfigure(supervision(params, pool)),
  };
}
