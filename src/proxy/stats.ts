import type { BackendState } from '../balance/health.js';
import type { Logger } from '../types.js';

/** Counters of one backend, in this process. */
export class BackendStats {
  /** Client connections forwarded to it right now. */
  active = 0;
  /** Connections it accepted, since start. */
  total = 0;
  /** Failed connects (refused, timed out) plus connections it broke (reset, error). */
  errors = 0;
  /** Failed connects only. */
  connectErrors = 0;
  /** Bytes sent to it and received from it, counted when a connection closes. */
  bytesOut = 0;
  bytesIn = 0;
}

export interface BackendStatsSnapshot {
  id: string;
  state: BackendState;
  weight: number;
  active: number;
  total: number;
  errors: number;
  connectErrors: number;
  bytesOut: number;
  bytesIn: number;
}

export interface ProxyStatsSnapshot {
  backends: BackendStatsSnapshot[];
  /** Client connections closed because no backend could take them. */
  rejected: number;
  /** Connect attempts that failed and were retried on another backend, unseen by the client. */
  retried: number;
}

/** Default for `--stats-interval`, ms. */
export const DEFAULT_STATS_INTERVAL_MS = 30_000;

/** Logs `snapshot()` at info level every `intervalMs` (0 = never). Returns a stop function. */
export function logStatsEvery(
  intervalMs: number,
  snapshot: () => ProxyStatsSnapshot,
  logger: Logger,
): () => void {
  if (intervalMs <= 0) return () => {};
  const timer = setInterval(() => logger.info(snapshot(), 'proxy stats'), intervalMs);
  timer.unref();
  return () => clearInterval(timer);
}
