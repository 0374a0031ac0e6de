// What a worker thread or a connection process needs to serve, sent from the daemon as plain data
// (structured-clonable, JSON-safe): the handler module and the connection settings.
import { ConnectionRunner } from '../connection.js';
import type { ConnectionTracker } from '../connection-tracker.js';
import type { LogLevel } from '../logger.js';
import type { Logger, ModelName, Tcpmain } from '../types.js';
import type { ModelHost } from './model.js';

export interface WorkerConfig {
  model: ModelName;
  /** Absolute path of the handler module. */
  handler: string;
  loglevel: LogLevel;
  /** Absolute; undefined = stdout. */
  logfile: string | undefined;
  /** Idle timeout, seconds; 0 = none. */
  timeout: number;
  tcpNodelay: boolean;
  /** Seconds; undefined = OS default close. */
  tcpLinger: number | undefined;
  unix: boolean;
  params: Record<string, string>;
}

/** Undefined when the handler is a function: it cannot be sent to another thread or process. */
export function workerConfig(host: ModelHost): WorkerConfig | undefined {
  const { params } = host;
  if (host.handlerPath === undefined) return undefined;
  return {
    model: params.model,
    handler: host.handlerPath,
    loglevel: params.loglevel,
    logfile: host.logfile,
    timeout: params.timeout,
    tcpNodelay: params.tcpNodelay,
    tcpLinger: params.tcpLinger,
    unix: params.listenAddress.kind === 'unix',
    params: { ...params.params },
  };
}

/** The connection path of a worker: the same ConnectionRunner every model uses. */
export function workerRunner(
  cfg: WorkerConfig,
  parts: {
    workerId: number;
    tcpmain: Tcpmain;
    logger: Logger;
    signal: AbortSignal;
    tracker: ConnectionTracker;
  },
): ConnectionRunner {
  return new ConnectionRunner({
    model: cfg.model,
    workerId: parts.workerId,
    tcpmain: parts.tcpmain,
    logger: parts.logger,
    signal: parts.signal,
    tracker: parts.tracker,
    params: Object.freeze({ ...cfg.params }),
    idleTimeout: cfg.timeout,
    tcpNodelay: cfg.tcpNodelay,
    tcpLinger: cfg.tcpLinger,
    unix: cfg.unix,
  });
}
