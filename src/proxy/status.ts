// The proxy's block of `tcpdaemon status`: every serving process sends its pool's snapshot with its
// heartbeats; the daemon sums them per backend (states as counted across the processes).
import type { StatusSection } from '../status.js';
import type { ProxyStatsSnapshot } from './stats.js';

export function backendSection(reports: unknown[]): StatusSection[] {
  const snapshots = reports.filter(
    (r): r is ProxyStatsSnapshot =>
      typeof r === 'object' && r !== null && Array.isArray((r as ProxyStatsSnapshot).backends),
  );
  if (snapshots.length === 0) return [];
  const byId = new Map<
    string,
    { states: Map<string, number>; active: number; total: number; errors: number; weight: number }
  >();
  let rejected = 0;
  let retried = 0;
  for (const snap of snapshots) {
    rejected += snap.rejected;
    retried += snap.retried;
    for (const b of snap.backends) {
      const sum = byId.get(b.id) ?? { states: new Map(), active: 0, total: 0, errors: 0, weight: b.weight };
      sum.states.set(b.state, (sum.states.get(b.state) ?? 0) + 1);
      sum.active += b.active;
      sum.total += b.total;
      sum.errors += b.errors;
      byId.set(b.id, sum);
    }
  }
  const stateText = (states: Map<string, number>) =>
    states.size === 1 ? [...states.keys()][0]! : [...states].map(([s, n]) => `${s} in ${n}`).join(', ');
  const rows = [...byId].map(([id, s]) => [id, stateText(s.states), s.weight, s.active, s.total, s.errors]);
  return [
    {
      title: 'backends',
      summary: `${byId.size} (as seen by ${snapshots.length} serving process${snapshots.length === 1 ? '' : 'es'}), ${rejected} clients rejected, ${retried} connects retried`,
      columns: ['backend', 'state', 'weight', 'active', 'total', 'errors'],
      rows,
      data: {
        rejected,
        retried,
        backends: [...byId].map(([id, s]) => ({
          id,
          states: Object.fromEntries(s.states),
          weight: s.weight,
          active: s.active,
          total: s.total,
          errors: s.errors,
        })),
      },
    },
  ];
}
