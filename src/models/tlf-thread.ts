// Entry of one TLF worker thread: its own copy of the listening socket, its own event loop serving
// many connections with the ConnectionRunner, the supervisor protocol over parentPort.
import { createServer } from 'node:net';
import { workerData } from 'node:worker_threads';
import { ConnectionTracker } from '../connection-tracker.js';
import { loadHandler } from '../handler/load.js';
import { createLogger } from '../logger.js';
import { keepServingOnUncaught } from '../process-guards.js';
import { ThrottledCount } from '../throttled-count.js';
import { copyListener } from './listener-copy.js';
import { joinSupervisorFromThread } from './thread-channel.js';
import { type WorkerConfig, workerRunner } from './worker-config.js';

export interface ThreadData {
  config: WorkerConfig;
  /** The daemon's keeper descriptor of the listening socket (never used directly: copied). */
  keeperFd: number;
  /** --max-connections share of this thread; 0 = no limit. */
  maxConnections: number;
}

const { config, keeperFd, maxConnections } = workerData as ThreadData;
const tracker = new ConnectionTracker();
const stopper = new AbortController();
const server = createServer();
let served = 0;

const channel = joinSupervisorFromThread({
  counts: () => ({ served, active: tracker.size }),
  onRetire: (graceMs) => {
    server.close();
    stopper.abort();
    tracker.drain(graceMs).then(exit);
  },
  onReopenLog: () => log.reopen(),
});
const log = createLogger({ logfile: config.logfile, level: config.loglevel, workerId: channel.workerId });
const logger = log.logger.child({ thread: channel.spawnId });
keepServingOnUncaught(logger);

function exit(): void {
  log.flush();
  process.exit(0); // ends this thread only
}

try {
  // The copy first: its helper process is reaped before any user code runs here.
  const copy = await copyListener(keeperFd);
  if (channel.retiring) {
    copy.close();
    exit();
  }
  const tcpmain = await loadHandler(config.handler);
  const runner = workerRunner(config, {
    workerId: channel.workerId,
    tcpmain,
    logger,
    signal: stopper.signal,
    tracker,
  });
  if (maxConnections > 0) {
    server.maxConnections = maxConnections;
    const drops = new ThrottledCount(logger, 'connection refused: --max-connections reached');
    server.on('drop', (d) => drops.add({ max: maxConnections, remote: d?.remoteAddress }));
  }
  server.on('connection', (socket) => {
    served++;
    runner.serve(socket);
  });
  server.on('error', (err) => logger.error({ err }, 'listening socket error in thread'));
  server.listen(copy, () => channel.ready());
} catch (err) {
  logger.error({ err: (err as Error).message }, 'thread could not start');
  log.flush();
  process.exit(1);
}
