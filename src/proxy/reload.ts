// SIGHUP with --config, for the proxy: the listed backends are brought to what the file says now
// (added ones take new connections at once; a removed one takes no new connection and its open
// ones finish; a new weight applies to the next pick), and the forwarding values follow.
import type { Logger } from '../types.js';
import type { BackendSpec } from './backend.js';
import type { ResolvedProxyConfig } from './config.js';
import type { ForwardOptions } from './forward.js';
import type { BackendPool } from './pool.js';

/**
 * Brings the pool from `running` to `next` (a config reload, or a route-table change with --discover:
 * `cause` names it in the log lines, logged at `level`).
 */
export function reloadBackends(
  pool: BackendPool,
  running: readonly BackendSpec[],
  next: readonly BackendSpec[],
  logger: Logger,
  cause = 'reload',
  level: 'info' | 'debug' = 'info',
): void {
  const wanted = new Map(next.map((b) => [b.id, b]));
  for (const b of running) {
    if (wanted.has(b.id) || !pool.has(b.id)) continue;
    const active = pool.snapshot().backends.find((s) => s.id === b.id)?.active ?? 0;
    pool.remove(b.id);
    logger[level](
      { backend: b.id, active },
      `backend removed by ${cause}: no new connections, open ones finish`,
    );
  }
  const had = new Map(running.map((b) => [b.id, b]));
  for (const b of next) {
    const old = had.get(b.id);
    if (old === undefined || !pool.has(b.id)) {
      pool.add(b);
      logger[level]({ backend: b.id, weight: b.weight }, `backend added by ${cause}`);
    } else if (old.weight !== b.weight) {
      pool.setWeight(b.id, b.weight);
      logger[level]({ backend: b.id, from: old.weight, to: b.weight }, `backend weight changed by ${cause}`);
    }
  }
}

/** The forwarding values a reload changes, in place (each connection reads them as it starts). */
export function reloadForwarding(opts: ForwardOptions, next: ResolvedProxyConfig): void {
  opts.connectTimeoutMs = next.connectTimeoutMs;
  opts.retries = next.retries;
}
