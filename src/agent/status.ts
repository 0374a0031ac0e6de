// The agent's block of `tcpdaemon status`: every serving process sends its snapshot with its
// heartbeats; the daemon sums them per upstream host.
import type { StatusSection } from '../status.js';
import type { AgentSnapshot } from './agent.js';

type HostRow = AgentSnapshot['hosts'][number];

export function agentSections(reports: unknown[]): StatusSection[] {
  const snaps = reports.filter(
    (r): r is AgentSnapshot =>
      typeof r === 'object' && r !== null && Array.isArray((r as AgentSnapshot).hosts),
  );
  if (snaps.length === 0) return [];
  const total = {
    localConnections: 0,
    pausedLocals: 0,
    inFlight: 0,
    parked: 0,
    busy: 0,
    unavailable: 0,
    lateDrops: 0,
    oneWay: 0,
    dropped: 0,
  };
  const byId = new Map<string, HostRow & { states: Set<string> }>();
  for (const s of snaps) {
    for (const k of Object.keys(total) as (keyof typeof total)[]) total[k] += s.agent[k];
    for (const h of s.hosts) {
      const sum = byId.get(h.id);
      if (sum === undefined) {
        byId.set(h.id, { ...h, states: new Set([h.state]) });
        continue;
      }
      sum.states.add(h.state);
      for (const k of [
        'links',
        'inFlight',
        'requests',
        'replies',
        'errors',
        'timeouts',
        'lateDrops',
        'connects',
        'connectErrors',
      ] as const)
        sum[k] += h[k];
    }
  }
  const hosts = [...byId.values()].map(({ states, ...h }) => ({ ...h, state: [...states].join(', ') }));
  return [
    {
      title: 'upstreams',
      summary: `${hosts.length} host${hosts.length === 1 ? '' : 's'} (as seen by ${snaps.length} process${snaps.length === 1 ? '' : 'es'}); ${total.localConnections} local connections (${total.pausedLocals} paused: not reading their answers), ${total.inFlight} requests in flight (${total.parked} waiting for a connection), ${total.busy} refused busy, ${total.unavailable} unavailable, ${total.lateDrops} late replies dropped`,
      columns: [
        'upstream',
        'state',
        'links',
        'in flight',
        'requests',
        'replies',
        'errors',
        'timeouts',
        'late drops',
        'connect errors',
      ],
      rows: hosts.map((h) => [
        h.id,
        h.state,
        h.links,
        h.inFlight,
        h.requests,
        h.replies,
        h.errors,
        h.timeouts,
        h.lateDrops,
        h.connectErrors,
      ]),
      data: { ...total, hosts, links: snaps.flatMap((s) => s.links) },
    },
  ];
}
