// The gateway's and the NATS worker command's `tcpdaemon status` report: the gateway processes as
// the workers table, then the business workers, requests and stored messages as sections.
import type { DaemonStatus, StatusSection } from '../status.js';
import type { SupervisorStatus } from '../supervisor/supervisor.js';
import { VERSION } from '../version.js';
import type { GatewayStats } from './gateway-server.js';

export interface GatewayFacts {
  role: 'gateway' | 'worker';
  address: string;
  business: string;
  queue: string;
  state: DaemonStatus['state'];
  /** Date.now() when the command started serving. */
  startedAt: number;
  reloads: number;
  gateways: SupervisorStatus | undefined;
  workers: SupervisorStatus | undefined;
  /** One per gateway process that answered. */
  stats: GatewayStats[];
  /** Messages kept for offline names (ipc store), when this process holds the store. */
  stored: number | undefined;
  /** --max-conns-per-ip, --max-conn-rate-per-ip: the acceptor's refusals; undefined = both off. */
  addressLimits?: StatusSection;
}

const sum = (stats: GatewayStats[], key: keyof GatewayStats) => stats.reduce((n, s) => n + s[key], 0);

export function gatewayStatus(f: GatewayFacts): DaemonStatus {
  const sections: StatusSection[] = [];
  if (f.workers) {
    const w = f.workers;
    sections.push({
      title: 'business workers',
      summary: `${w.workers.length} live, ${w.started} started, ${w.failedExits} failed exits${w.crashLooping.length ? `, CRASH LOOP in ${w.crashLooping.join(', ')}` : ''}`,
      columns: ['id', 'pid', 'state', 'served', 'active'],
      rows: w.workers.map((x) => [x.workerId, x.pid ?? '-', x.state, x.served, x.active]),
      data: w,
    });
  }
  if (f.role === 'gateway') {
    const totals = {
      sessions: sum(f.stats, 'sessions'),
      inFlight: sum(f.stats, 'pending'),
      waiting: sum(f.stats, 'waiting'),
      timeouts: sum(f.stats, 'timeouts'),
      lateReplies: sum(f.stats, 'lateReplies'),
      retries: sum(f.stats, 'retries'),
      lostToCrashes: sum(f.stats, 'lostToCrashes'),
      resent: sum(f.stats, 'resent'),
      stored: f.stored,
    };
    sections.push({
      title: 'requests',
      summary: `${totals.sessions} sessions, ${totals.inFlight} in flight, ${totals.waiting} waiting for a worker, ${totals.timeouts} timed out, ${totals.lateReplies} late replies dropped, ${totals.lostToCrashes} lost to crashes, ${totals.resent} sent again (their worker had gone)${f.stored === undefined ? '' : `, ${f.stored} messages stored`}`,
      data: totals,
    });
  }
  if (f.addressLimits) sections.push(f.addressLimits);
  return {
    pid: process.pid,
    version: VERSION,
    node: process.version,
    model:
      f.role === 'gateway'
        ? `gateway -c ${f.gateways?.workers.length ?? 0}, queue ${f.queue}`
        : `worker, queue ${f.queue}`,
    address: f.address,
    handler: f.business,
    state: f.state,
    startedAt: new Date(f.startedAt).toISOString(),
    uptimeS: Math.round((Date.now() - f.startedAt) / 100) / 10,
    connections: sum(f.stats, 'sessions'),
    reloads: f.reloads,
    ...(f.gateways ? { workers: f.gateways } : {}),
    sections,
  };
}
