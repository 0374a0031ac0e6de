// The connection path of a worker process or thread: the same ConnectionRunner every model uses,
// set up from the WorkerConfig the daemon sent.
import { ConnectionRunner } from '../connection.js';
import type { ConnectionTracker } from '../connection-tracker.js';
import type { Logger, Tcpmain } from '../types.js';
import type { WorkerConfig } from './config.js';

export interface RunnerParts {
  /** 1..N, the supervisor slot: what handlers see as env.workerId. */
  workerId: number;
  /** Unique per start: connection ids are `workerId.spawnId-n`, unique across restarts. */
  spawnId: number;
  tcpmain: Tcpmain;
  logger: Logger;
  /** Aborted when this worker starts stopping. */
  signal: AbortSignal;
  tracker: ConnectionTracker;
}

export function workerRunner(config: WorkerConfig, parts: RunnerParts): ConnectionRunner {
  return new ConnectionRunner({
    model: config.model,
    workerId: parts.workerId,
    connectionIdPrefix: `${parts.workerId}.${parts.spawnId}`,
    tcpmain: parts.tcpmain,
    logger: parts.logger,
    signal: parts.signal,
    tracker: parts.tracker,
    params: Object.freeze({ ...config.params }),
    idleTimeout: config.idleTimeout,
    tcpNodelay: config.tcpNodelay,
    tcpLinger: config.tcpLinger ?? undefined,
    unix: config.unix,
  });
}
