// Call outcomes reported by clients (the Lars reporter's input): every window, each client that
// calls a service by name publishes the counts per host it saw on `tcpdaemon.reports.SERVICE`.
// `tcpdaemon routes` listens there and sums what every client reported, beside the route table.
import { hostname } from 'node:os';
import type { NatsConnection } from '@nats-io/transport-node';
import type { BackendState } from '../balance/health.js';
import type { HostPool } from '../balance/host-pool.js';

export const REPORT_SUBJECT_PREFIX = 'tcpdaemon.reports';

/** Default report window, ms. */
export const DEFAULT_REPORT_WINDOW_MS = 5000;

export function reportSubject(service: string): string {
  return `${REPORT_SUBJECT_PREFIX}.${service}`;
}

export interface HostReport {
  /** HOST:PORT as in the route table. */
  address: string;
  /** As this client's health sees it. */
  state: BackendState;
  ok: number;
  error: number;
  timeout: number;
}

export interface OutcomeReport {
  service: string;
  /** Who reports: `hostname:pid`. */
  reporter: string;
  /** The window the counts cover, ms. */
  windowMs: number;
  /** Date.now() at the window's end, ms. */
  at: number;
  hosts: HostReport[];
}

/** The report in a message, or undefined when it is not one. */
export function parseReport(bytes: Uint8Array): OutcomeReport | undefined {
  let v: unknown;
  try {
    v = JSON.parse(Buffer.from(bytes).toString('utf8'));
  } catch {
    return undefined;
  }
  const r = v as Partial<OutcomeReport>;
  if (
    typeof r !== 'object' ||
    r === null ||
    typeof r.service !== 'string' ||
    typeof r.reporter !== 'string' ||
    !Array.isArray(r.hosts)
  )
    return undefined;
  const hosts = r.hosts.filter(
    (h): h is HostReport =>
      typeof h === 'object' &&
      h !== null &&
      typeof h.address === 'string' &&
      typeof h.ok === 'number' &&
      typeof h.error === 'number' &&
      typeof h.timeout === 'number',
  );
  return {
    service: r.service,
    reporter: r.reporter,
    windowMs: typeof r.windowMs === 'number' ? r.windowMs : 0,
    at: typeof r.at === 'number' ? r.at : 0,
    hosts: hosts.map((h) => ({
      ...h,
      state: h.state === 'overloaded' || h.state === 'down' ? h.state : 'up',
    })),
  };
}

/** Publishes a pool's outcome counts (and each host's state) every window while the pool has hosts. */
export class OutcomeReporter {
  readonly reporter = `${hostname()}:${process.pid}`;
  private readonly timer: NodeJS.Timeout;
  private stopped = false;

  constructor(
    private readonly nc: Pick<NatsConnection, 'publish' | 'isClosed'>,
    private readonly service: string,
    private readonly pool: HostPool,
    private readonly windowMs = DEFAULT_REPORT_WINDOW_MS,
  ) {
    this.timer = setInterval(() => this.publish(), windowMs);
    this.timer.unref();
  }

  /** Publishes the counts of the window so far (at stop, and on each window's end). */
  publish(): void {
    const counts = this.pool.takeCounts();
    const hosts: HostReport[] = [];
    for (const h of this.pool.hosts()) {
      const c = counts.get(h.id) ?? { ok: 0, error: 0, timeout: 0 };
      counts.delete(h.id);
      hosts.push({ address: h.id, state: this.pool.state(h.id) ?? 'up', ...c });
    }
    // Hosts that left the pool during the window: their last counts.
    for (const [address, c] of counts) hosts.push({ address, state: 'down', ...c });
    if (hosts.length === 0 || this.nc.isClosed()) return;
    const report: OutcomeReport = {
      service: this.service,
      reporter: this.reporter,
      windowMs: this.windowMs,
      at: Date.now(),
      hosts,
    };
    try {
      this.nc.publish(reportSubject(this.service), JSON.stringify(report));
    } catch {
      // A closing connection: the report is lost, as any report of a client that goes away.
    }
  }

  /** Publishes the last partial window and stops. */
  stop(): void {
    if (this.stopped) return;
    this.stopped = true;
    clearInterval(this.timer);
    this.publish();
  }
}
