// Entry of one IF connection process. It starts ahead of need as a warm spare: loads the handler,
// says ready, and waits. It serves exactly ONE connection (the socket arrives over IPC, with every
// byte the client sent: the daemon never read from it), so the handler's module state is fresh for
// each connection. It exits once its connection has closed and the supervisor has retired it
// (which happens as soon as its replacement spare is ready).
import type { Socket } from 'node:net';
import { ConnectionTracker } from '../connection-tracker.js';
import { loadHandler } from '../handler/load.js';
import { createLazyLogger } from '../lazy-logger.js';
import { joinSupervisor } from '../supervisor/worker-channel.js';
import { IF_CONFIG_ENV, isIfMessage } from './if-protocol.js';
import { type WorkerConfig, workerRunner } from './worker-config.js';

const config = JSON.parse(process.env[IF_CONFIG_ENV] ?? '{}') as WorkerConfig;
const stopper = new AbortController();
const tracker = new ConnectionTracker();
let served = 0;
let retired = false;

const channel = joinSupervisor({
  counts: () => ({ served, active: tracker.size }),
  onRetire: () => {
    retired = true;
    if (tracker.size === 0) exit(0);
  },
  onReopenLog: () => log.reopen(),
});
// workerId: this process's start number, so connection ids stay unique across the daemon.
const log = createLazyLogger({ logfile: config.logfile, level: config.loglevel, workerId: channel.spawnId });
const { logger } = log;

function exit(code: number): void {
  log.flush();
  process.exit(code);
}

// A throw escaping the handler ends this process: only its one connection is lost.
process.on('uncaughtException', (err) => {
  logger.error({ err }, 'uncaught exception in handler code; the connection process exits');
  exit(1);
});
process.on('unhandledRejection', (reason) => {
  logger.error({ err: reason }, 'unhandled promise rejection in handler code; the connection process exits');
  exit(1);
});

let serve: (socket: Socket) => void;
try {
  const tcpmain = await loadHandler(config.handler);
  const runner = workerRunner(config, {
    workerId: channel.spawnId,
    tcpmain,
    logger,
    signal: stopper.signal,
    tracker,
  });
  serve = (socket) => runner.serve(socket);
} catch (err) {
  logger.error({ err: (err as Error).message }, 'connection process could not load the handler');
  exit(1);
}

process.on('message', (m: unknown, handle: unknown) => {
  if (!isIfMessage(m)) return;
  if (m.tdif === 'stop') {
    stopper.abort();
    return;
  }
  const socket = handle as Socket | undefined;
  if (!socket) return;
  if (served > 0) {
    socket.destroy(); // never a second connection in one process
    return;
  }
  served = 1;
  socket.once('close', () => {
    if (retired) exit(0);
  });
  serve(socket);
});
channel.ready();
