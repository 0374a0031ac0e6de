// Entry of one TLF worker thread: its own copy of the listening socket, its own event loop serving
// many connections through the connection path, the supervisor protocol over parentPort.
import { createServer, type Socket } from 'node:net';
import { parentPort, workerData } from 'node:worker_threads';
import { AdmissionClient } from '../../address-admission.js';
import { refused } from '../../close-reasons.js';
import { ConnectionTracker } from '../../connection-tracker.js';
import { loadHandler } from '../../handler/load.js';
import { createLogger } from '../../logger.js';
import { keepServingOnUncaught } from '../../process-guards.js';
import { type ChannelTransport, joinSupervisor } from '../../supervisor/worker-channel.js';
import { ThrottledCount } from '../../throttled-count.js';
import type { WorkerConfig } from '../../worker/config.js';
import { type FromWorker, isModelMessage, type ToWorker } from '../../worker/messages.js';
import { workerRunner, workerTls } from '../../worker/runner.js';
import { copyListener } from './listener-copy.js';

export interface ThreadData {
  /** accept 'shared'; maxConnections is this thread's share of --max-connections. */
  config: WorkerConfig;
  /** The daemon's descriptor of the listening socket (never used here: copied). */
  keeperFd: number;
}

const port = parentPort;
if (!port) throw new Error('tcpdaemon: thread-main runs in a worker thread');
const transport: ChannelTransport = {
  send(m, done) {
    port.postMessage(m); // synchronous: written once it returns
    done();
  },
  onMessage: (listener) => port.on('message', listener),
};
const { config, keeperFd } = workerData as ThreadData;
const tracker = new ConnectionTracker();
const stopper = new AbortController();
const server = createServer();
let served = 0;
/** --max-conns-per-ip, --max-conn-rate-per-ip: the daemon's main thread admits each connection first. */
let admission: AdmissionClient | undefined;

const channel = joinSupervisor({
  transport,
  counts: () => ({ served, active: tracker.size }),
  onRetire: (graceMs) => {
    const deadline = Date.now() + graceMs;
    server.close();
    stopper.abort();
    // Connections waiting for the daemon's admission are served (or refused) before the drain.
    (admission?.finish(graceMs) ?? Promise.resolve())
      .then(() => tracker.drain(Math.max(0, deadline - Date.now())))
      .then(exit);
  },
  onReopenLog: () => log.reopen(),
});
const log = createLogger({
  logfile: config.logfile ?? undefined,
  level: config.loglevel,
  format: config.logFormat,
  workerId: channel.workerId,
});
const logger = log.logger.child({ thread: channel.spawnId });
keepServingOnUncaught(logger);

function exit(): void {
  log.flush();
  process.exit(0); // ends this thread only
}

try {
  // The copy first, before any user code runs here; until the daemon hears 'copied' it does
  // not terminate this thread (the helper would be left unreaped: see thread-process.ts).
  const copy = await copyListener(keeperFd).finally(() => {
    const copied: FromWorker = { tdm: 'copied' };
    port.postMessage(copied);
  });
  if (channel.retiring) {
    copy.close();
    exit();
  }
  const tcpmain = await loadHandler(config.handlerPath!, { logger });
  const runner = workerRunner(config, channel, {
    tcpmain,
    logger,
    signal: stopper.signal,
    tracker,
    tls: await workerTls(config, logger),
  });
  if (config.metrics) (await import('../../metrics/worker-metrics.js')).installWorkerMetrics(channel, runner);
  const max = config.maxConnections;
  if (max > 0) {
    server.maxConnections = max;
    const drops = new ThrottledCount(logger, 'connection refused: --max-connections reached');
    server.on('drop', (d) => {
      refused('max_connections');
      drops.add({ max, remote: d?.remoteAddress });
    });
  }
  const serve = (socket: Socket) => {
    served++;
    runner.serve(socket);
  };
  if (config.admission) {
    const client = new AdmissionClient(async (m) => port.postMessage(m));
    admission = client;
    port.on('message', (m: unknown) => {
      if (isModelMessage(m) && (m as ToWorker).tdm === 'admitted') {
        const a = m as Extract<ToWorker, { tdm: 'admitted' }>;
        client.answer(a.id, a.admission);
      }
    });
    server.on('connection', (socket) => client.admit(socket, serve));
  } else server.on('connection', serve);
  server.on('error', (err) => logger.error({ err }, 'listening socket error in thread'));
  server.listen(copy, () => channel.ready());
} catch (err) {
  const message = (err as Error).message;
  logger.fatal({ err: message }, 'thread could not start');
  log.flush();
  // Why, for the daemon's start-up (startWorkers): delivered before the thread's 'exit'.
  const fatal: FromWorker = { tdm: 'fatal', message };
  port.postMessage(fatal);
  process.exit(1);
}
