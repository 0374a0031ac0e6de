// The connection path of a worker process or thread: the same ConnectionRunner every model uses,
// set up from the WorkerConfig the daemon sent.
import { ConnectionRunner } from '../connection.js';
import type { ConnectionTracker } from '../connection-tracker.js';
import type { WorkerChannel } from '../supervisor/worker-channel.js';
import type { TlsTerminator } from '../tls/terminator.js';
import type { Logger, Tcpmain } from '../types.js';
import type { WorkerConfig } from './config.js';

export interface RunnerParts {
  tcpmain: Tcpmain;
  logger: Logger;
  /** Aborted when this worker starts stopping. */
  signal: AbortSignal;
  tracker: ConnectionTracker;
  /** From workerTls(config.tls). */
  tls?: TlsTerminator;
}

/**
 * The TLS terminator of a worker whose daemon serves TLS, built from the daemon's snapshot (its
 * last good certificates); loaded only then (node:tls costs an IF process start-up time).
 */
export async function workerTls(config: WorkerConfig, logger: Logger): Promise<TlsTerminator | undefined> {
  if (!config.tls) return undefined;
  const [{ readTlsSnapshot }, { TlsTerminator }] = await Promise.all([
    import('../tls/snapshot.js'),
    import('../tls/terminator.js'),
  ]);
  const { material, ticketKeys } = readTlsSnapshot(config.tls.snapshot);
  return new TlsTerminator(material, config.tls.settings, logger, ticketKeys);
}

/**
 * env.workerId is the worker's slot (1..N); connection ids are `workerId.spawnId-n`, unique across
 * the worker's restarts.
 */
export function workerRunner(
  config: WorkerConfig,
  channel: Pick<WorkerChannel, 'workerId' | 'spawnId'>,
  parts: RunnerParts,
): ConnectionRunner {
  return new ConnectionRunner({
    model: config.model,
    workerId: channel.workerId,
    connectionIdPrefix: `${channel.workerId}.${channel.spawnId}`,
    tcpmain: parts.tcpmain,
    logger: parts.logger,
    signal: parts.signal,
    tracker: parts.tracker,
    params: Object.freeze({ ...config.params }),
    idleTimeout: config.idleTimeout,
    proxyProtocol:
      config.proxyHeaderTimeoutMs === null ? undefined : { timeoutMs: config.proxyHeaderTimeoutMs },
    tcpNodelay: config.tcpNodelay,
    tcpLinger: config.tcpLinger ?? undefined,
    unix: config.unix,
    maxOutputBuffer: config.maxOutputBuffer,
    tls: parts.tls,
  });
}
