// A business worker process: started and supervised by `tcpdaemon gateway` (ipc) or
// `tcpdaemon worker` (NATS). Loads the business module, takes requests from the queue, answers them.
import { createLogger } from '../logger.js';
import { keepServingOnUncaught } from '../process-guards.js';
import { joinSupervisor } from '../supervisor/worker-channel.js';
import { loadBusiness } from './business.js';
import { childSocketDir, readChildParams, workerSocketPath } from './child-env.js';
import { openWorkerQueue } from './queues/index.js';
import type { WorkerQueue } from './queues/queue.js';

const params = readChildParams();
let queue: WorkerQueue | undefined;
const channel = joinSupervisor({
  counts: () => queue?.counts() ?? { served: 0, active: 0 },
  onRetire: (graceMs) => void retire(graceMs),
  onReopenLog: () => log.reopen(),
});
const log = createLogger({
  logfile: params.logfile,
  level: params.loglevel,
  format: params.logFormat,
  workerId: channel.workerId,
});
const logger = log.logger.child({ role: 'worker' });
keepServingOnUncaught(logger);

try {
  const handler = await loadBusiness(params.business!);
  const dir = childSocketDir();
  queue = await openWorkerQueue(
    params.queue,
    {
      handler,
      workerId: channel.workerId,
      logger,
      maxBody: params.maxBody,
      maxConcurrent: params.workerConcurrency,
      params: params.params,
    },
    { socketPath: dir === undefined ? undefined : workerSocketPath(dir, channel.spawnId) },
  );
} catch (err) {
  logger.fatal({ err: (err as Error).message }, 'worker start-up failed');
  log.flush();
  process.exit(1);
}
if (!channel.retiring) channel.ready();

async function retire(graceMs: number): Promise<void> {
  await queue?.retire(graceMs).catch((err: unknown) => logger.warn({ err }, 'retire failed'));
  log.flush();
  process.exit(0);
}
