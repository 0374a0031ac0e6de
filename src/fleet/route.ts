// One entry of the route table: a serving process's address under a service name, as stored in the
// JetStream key-value bucket ROUTES_BUCKET. Key: `SERVICE.ADDRESS` with the address's characters that
// NATS keys cannot hold written as `_` (the value keeps the real address).

/** The bucket every announcer writes to and every reader watches. */
export const ROUTES_BUCKET = 'tcpdaemon_routes';

/** A service name: what NATS keys and subjects can hold as one token. */
export const SERVICE_NAME = /^[A-Za-z0-9_-]{1,64}$/;

export interface RouteEntry {
  service: string;
  /** HOST:PORT ([v6]:PORT) clients connect to. */
  address: string;
  /** Relative share of new connections (≥ 1). */
  weight: number;
  /** What the operator says this build is ('' when not said). */
  version: string;
  /** The listener speaks TLS. */
  tls: boolean;
  /** Of the announcing process, and where it runs: what an operator needs to find it. */
  pid: number;
  hostname: string;
  /** Date.now() of the last refresh, ms. */
  refreshedAt: number;
  /** The entry is stale this long after refreshedAt (the announcer refreshes every third of it), ms. */
  ttlMs: number;
}

export function routeKey(service: string, address: string): string {
  return `${service}.${address.replace(/[^A-Za-z0-9-]/g, '_')}`;
}

/** The entry in a stored value, or undefined when it is not one (another writer, an old format). */
export function parseRouteEntry(bytes: Uint8Array): RouteEntry | undefined {
  let v: unknown;
  try {
    v = JSON.parse(Buffer.from(bytes).toString('utf8'));
  } catch {
    return undefined;
  }
  const e = v as Partial<RouteEntry>;
  if (
    typeof e !== 'object' ||
    e === null ||
    typeof e.service !== 'string' ||
    typeof e.address !== 'string' ||
    typeof e.weight !== 'number' ||
    typeof e.refreshedAt !== 'number' ||
    typeof e.ttlMs !== 'number'
  )
    return undefined;
  return {
    service: e.service,
    address: e.address,
    weight: e.weight,
    version: typeof e.version === 'string' ? e.version : '',
    tls: e.tls === true,
    pid: typeof e.pid === 'number' ? e.pid : 0,
    hostname: typeof e.hostname === 'string' ? e.hostname : '',
    refreshedAt: e.refreshedAt,
    ttlMs: e.ttlMs,
  };
}

/**
 * Still to be used at `now`: refreshed within its TTL. The bucket's own max age removes a dead
 * announcer's entry too, but a reader that holds it (a watch sees no removal by age) checks this.
 */
export function isLive(entry: RouteEntry, now = Date.now()): boolean {
  return now - entry.refreshedAt <= entry.ttlMs;
}
