// The proxy's values on /metrics (--metrics): per backend (its address from the configuration, a
// bounded label), from each serving process's pool; and its readiness: some backend takes connections.

import type { BackendState } from '../balance/health.js';
import type { Meter } from '../metrics/meter.js';
import type { BackendPool } from './pool.js';
import type { ProxyStatsSnapshot } from './stats.js';

const STATES: readonly BackendState[] = ['up', 'overloaded', 'down'];

/** Adds the pool's values to `meter` at each heartbeat (its connect times the pool observes itself). */
export function meterPool(meter: Meter, pool: () => BackendPool | undefined): void {
  meter.collect((out) => {
    const p = pool();
    if (!p) return;
    const snap = p.snapshot();
    for (const b of snap.backends) {
      const backend = b.id;
      for (const state of STATES) out.gauge('backendState', b.state === state ? 1 : 0, { backend, state });
      out.gauge('backendActive', b.active, { backend });
      out.counter('backendConnections', b.total, { backend });
      out.counter('backendErrors', b.connectErrors, { backend });
    }
    out.counter('proxyRejected', snap.rejected);
  });
}

/** /readyz for the proxy: not ready while no serving process has a backend that takes connections. */
export function proxyNotReady(reports: unknown[]): string | undefined {
  const snaps = reports.filter(
    (r): r is ProxyStatsSnapshot =>
      typeof r === 'object' && r !== null && Array.isArray((r as ProxyStatsSnapshot).backends),
  );
  if (snaps.length === 0) return 'no backend report yet';
  const usable = snaps.some((s) => s.backends.some((b) => b.state === 'up' || b.state === 'overloaded'));
  return usable ? undefined : 'no backend up';
}
