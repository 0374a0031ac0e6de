// A service's HostPool from where its hosts are: a static list, a RouteTable the caller holds, or
// the NATS servers of the route table (opened here, closed with the pool). With a route table the
// pool's outcomes are reported (report.ts). Shared by MessageClient's service mode and the
// plain-TCP connector.
import type { PassiveHealthOptions } from '../balance/health.js';
import { HostPool, type HostSpec } from '../balance/host-pool.js';
import { ParamError } from '../errors.js';
import type { Logger } from '../types.js';
import { DEFAULT_REPORT_WINDOW_MS, OutcomeReporter } from './report.js';
import { SERVICE_NAME } from './route.js';
import type { RouteTable } from './route-table.js';

/** Where a service's hosts come from. */
export interface ServiceDiscovery {
  /** The service's name in the route table (and in reports). */
  service?: string;
  /** The route table's NATS servers (`nats://HOST:PORT`), or a RouteTable already open. */
  discovery?: { servers: string[]; replicas?: number } | RouteTable;
  /** A fixed list instead: `HOST:PORT` or `{ address, weight }`. */
  hosts?: readonly (string | HostSpec)[];
  /** roundrobin, leastconn, p2c (default) or hash. */
  strategy?: string;
  /** Passive (Lars) health thresholds; defaults in DEFAULT_PASSIVE_HEALTH. */
  health?: Partial<PassiveHealthOptions>;
  /** Outcome reports on `tcpdaemon.reports.SERVICE` every this many ms (default 5000); false: none. */
  reportWindow?: number | false;
}

export interface ServicePool {
  readonly service: string;
  readonly pool: HostPool;
  /** With discovery: the table the pool follows. */
  readonly table: RouteTable | undefined;
  /** Whether a route entry says the host speaks TLS. */
  tls(id: string): boolean;
  close(): Promise<void>;
}

/** Throws ParamError when the options name no source of hosts, or a bad service name. */
export function checkServiceDiscovery(opts: ServiceDiscovery, who: string): void {
  if (opts.hosts === undefined && opts.discovery === undefined)
    throw new ParamError(
      `${who}: a service needs discovery ({ servers: ['nats://...'] } or a RouteTable) or hosts`,
    );
  if (opts.discovery !== undefined && (opts.service === undefined || !SERVICE_NAME.test(opts.service)))
    throw new ParamError(
      `${who}: service '${opts.service ?? ''}' is not a service name: 1 to 64 letters, digits, '_' or '-'`,
    );
}

export async function openServicePool(opts: ServiceDiscovery, logger: Logger): Promise<ServicePool> {
  const service = opts.service ?? 'static';
  const poolOpts = { strategy: opts.strategy, health: opts.health };
  if (opts.discovery === undefined) {
    const specs = (opts.hosts ?? []).map((h) => (typeof h === 'string' ? { address: h } : h));
    const pool = new HostPool(specs, poolOpts);
    return { service, pool, table: undefined, tls: () => false, close: async () => pool.close() };
  }
  const given = isRouteTable(opts.discovery) ? opts.discovery : undefined;
  let table: RouteTable;
  if (given !== undefined) table = given;
  else {
    const { servers, replicas } = opts.discovery as { servers: string[]; replicas?: number };
    const { RouteTable } = await import('./route-table.js');
    table = await RouteTable.open({
      servers,
      replicas,
      logger,
      services: [service],
      name: `tcpdaemon client of ${service}`,
    });
  }
  const pool = HostPool.follow(table, service, poolOpts);
  const reporter =
    opts.reportWindow === false
      ? undefined
      : new OutcomeReporter(table.connection, service, pool, opts.reportWindow ?? DEFAULT_REPORT_WINDOW_MS);
  return {
    service,
    pool,
    table,
    tls: (id) => table.entries(service).find((e) => e.address === id)?.tls === true,
    async close() {
      reporter?.stop();
      pool.close();
      if (given === undefined) await table.close();
      else await table.connection.flush().catch(() => undefined);
    },
  };
}

function isRouteTable(d: NonNullable<ServiceDiscovery['discovery']>): d is RouteTable {
  return typeof (d as RouteTable).entries === 'function';
}
