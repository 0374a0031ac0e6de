// TLF (alias WIN-TLF): -c N worker threads in the daemon process, each an event loop serving many
// connections. Every thread accepts on its own copy of the listening socket (listener-copy.ts),
// so a thread that throws, exits or is terminated costs only its own connections. The supervisor
// runs the threads like processes (thread-process.ts): restarts with backoff, reload, stop.
import { Worker } from 'node:worker_threads';
import { Supervisor } from '../supervisor/index.js';
import { workerEntry } from './entry.js';
import type { Model, ModelHost, RunningModel } from './model.js';
import { ThreadProcess } from './thread-process.js';
import type { ThreadData } from './tlf-thread.js';
import { workerConfig } from './worker-config.js';

export const tlf: Model = {
  unavailable: (params) =>
    typeof params.handler === 'string'
      ? undefined
      : 'model TLF needs the handler as a module path (-s FILE): a function cannot be sent to a thread',
  pauseOnConnect: () => false,
  // The daemon binds and holds the socket (the keeper); threads accept on copies of it.
  listenMode: () => 'shared',
  start: startThreads,
};

async function startThreads(host: ModelHost): Promise<RunningModel> {
  const { params, logger } = host;
  const config = workerConfig(host)!;
  const graceMs = params.shutdownTimeout * 1000;
  const entry = workerEntry('tlf-thread');
  if (!host.shared) throw new Error('TLF needs the shared listening socket');
  const keeper = host.shared.handle as { fd: number };
  const data: ThreadData = {
    config,
    keeperFd: keeper.fd,
    maxConnections: params.maxConnections > 0 ? Math.ceil(params.maxConnections / params.workers) : 0,
  };
  const supervisor = new Supervisor({
    name: 'threads',
    size: params.workers,
    logger,
    retireGraceMs: graceMs,
    spec: {
      heartbeats: true,
      start(ctx) {
        // execArgv is inherited: under tsx (tcpdaemon's own tests) threads load .ts entries too.
        const thread = new Worker(entry.file, { workerData: data, env: { ...process.env, ...ctx.env } });
        thread.on('error', (err) => logger.error({ err, slot: ctx.slot }, 'thread failed'));
        return new ThreadProcess(thread, graceMs).asChildProcess();
      },
    },
  });
  await supervisor.start();
  return {
    get connections() {
      let n = 0;
      for (const w of supervisor.workers()) n += w.active;
      return n;
    },
    reopenLogs: () => supervisor.broadcast({ tdw: 'reopen-log' }),
    async reload() {
      const result = await supervisor.reload();
      if (result.ok) logger.info({ threads: result.replaced }, 'threads reloaded');
    },
    close: (deadlineMs) => supervisor.stop(deadlineMs),
  };
}
