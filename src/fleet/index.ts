// The fleet's public surface (re-exported from the package root). NATS is loaded only when a route
// table is opened, so importing the package does not load it.
export {
  type CallOutcome,
  HostPool,
  type HostPoolEvents,
  type HostPoolOptions,
  type HostSource,
  type HostSpec,
  type OutcomeCounts,
  type PoolHost,
} from '../balance/host-pool.js';
export { NoHostError, ServiceConnector, type ServiceConnectorOptions } from './connector.js';
export {
  DEFAULT_REPORT_WINDOW_MS,
  type HostReport,
  type OutcomeReport,
  parseReport,
  REPORT_SUBJECT_PREFIX,
  reportSubject,
} from './report.js';
export { ROUTES_BUCKET, type RouteEntry } from './route.js';
// The message layer's RouteTable is its msgid routes: the fleet's table is exported as FleetRouteTable.
export type { RouteTable as FleetRouteTable, RouteTableEvents, RouteTableOptions } from './route-table.js';
export type { ServiceDiscovery } from './service-pool.js';

import type { RouteTable, RouteTableOptions } from './route-table.js';

/** Opens a live copy of the route table (see RouteTable.open): to share one among several clients. */
export async function openRouteTable(opts: RouteTableOptions): Promise<RouteTable> {
  const { RouteTable } = await import('./route-table.js');
  return RouteTable.open(opts);
}
