// --discover SERVICE: the proxy's backends are the service's entries in the route table
// (src/fleet/route-table.ts, a KV watch: changes are pushed, never polled), applied to the pool the
// way a config reload applies --backend changes (reload.ts): an added backend takes new connections
// at once, a removed one takes no new connection and its open ones finish.
//
// Who watches with -c N: the daemon process alone. It opens the route table before anything
// listens (NATS unreachable: the start fails with one line naming the URL) and pushes every change
// to the fronts over the supervisor channel (a worker-bus message from the daemon,
// TcpdaemonHandle.sendToWorkers); a front forked later reads the current list from its environment,
// which the daemon updates before it sends. Not each front watching, because then: a proxy holds one
// NATS connection and one watch per front (per connection process with IF); fronts may disagree for
// a while; a front restarted while NATS is away starts with no backend at all; and a NATS outage is
// logged N times. Lists carry a sequence number, so a front applies only a newer one than it has.
import { handDown, takeVar } from '../child-channel.js';
import type { RouteEntry } from '../fleet/route.js';
import type { RouteTable } from '../fleet/route-table.js';
import type { StatusSection } from '../status.js';
import type { Logger } from '../types.js';
import { workerBus } from '../worker-bus.js';
import { type BackendSpec, parseBackendSpec } from './backend.js';

/** The worker-bus topic the daemon sends the discovered list on. */
export const DISCOVERED_TOPIC = 'tcpdaemon.proxy.discovered';

/** The backends of the service as the daemon last saw them; `seq` grows with every change. */
export interface DiscoveredList {
  seq: number;
  backends: BackendSpec[];
}

/** The daemon's side: follows the route table, hands the list down to fronts forked later (proxyDiscovered), calls `onList` per change. */
export class DiscoveryFeed {
  private list: DiscoveredList = { seq: 0, backends: [] };
  /** Addresses already warned about (not a backend address, TLS mismatch): once each. */
  private readonly warned = new Set<string>();
  private listener: ((list: DiscoveredList) => void) | undefined;
  /** The daemon's logger, once it exists (useLogger); warnings before that wait in `early`. */
  private logger: Logger | undefined;
  private early: [fields: object, msg: string][] = [];

  constructor(
    private readonly table: RouteTable,
    readonly service: string,
    /** --backend-tls: only entries that say the same about TLS are used. */
    private readonly backendTls: boolean,
  ) {
    this.update(table.entries(service));
    table.on('change', (s, entries) => {
      if (s === service) this.update(entries);
    });
  }

  get current(): DiscoveredList {
    return this.list;
  }

  /** Called with every new list (already handed down). */
  onList(listener: (list: DiscoveredList) => void): void {
    this.listener = listener;
  }

  useLogger(logger: Logger): void {
    this.logger = logger;
    this.table.useLogger(logger);
    for (const [fields, msg] of this.early.splice(0)) logger.warn(fields, msg);
  }

  close(): Promise<void> {
    return this.table.close();
  }

  /** `tcpdaemon status`: the route table as this proxy follows it. */
  section(): StatusSection {
    const entries = this.table.entries(this.service);
    const lost = this.table.lostSince;
    const state =
      lost === undefined ? 'following' : `NATS lost since ${new Date(lost).toISOString()}, last known kept`;
    const now = Date.now();
    return {
      title: 'discovery',
      summary: `--discover ${this.service} on ${this.table.where}: ${entries.length} entr${entries.length === 1 ? 'y' : 'ies'}, ${this.list.backends.length} used as backends; ${state}`,
      columns: ['address', 'weight', 'version', 'tls', 'host', 'pid', 'refreshed'],
      rows: entries.map((e) => [
        e.address,
        e.weight,
        e.version || '-',
        e.tls ? 'yes' : 'no',
        e.hostname,
        e.pid,
        `${Math.round((now - e.refreshedAt) / 100) / 10} s ago`,
      ]),
      data: {
        service: this.service,
        discovery: this.table.where,
        lostSince: lost === undefined ? null : new Date(lost).toISOString(),
        seq: this.list.seq,
        entries,
      },
    };
  }

  private update(entries: RouteEntry[]): void {
    const backends: BackendSpec[] = [];
    for (const e of entries) {
      const spec = this.toBackend(e);
      if (spec) backends.push(spec);
    }
    if (sameBackends(backends, this.list.backends) && this.list.seq > 0) return;
    this.list = { seq: this.list.seq + 1, backends };
    handDown('proxyDiscovered', JSON.stringify(this.list));
    if (backends.length === 0)
      this.warn({ service: this.service }, 'route table: no backend for the service now');
    this.listener?.(this.list);
  }

  private toBackend(e: RouteEntry): BackendSpec | undefined {
    let spec: BackendSpec;
    try {
      spec = parseBackendSpec(e.address);
      if ('path' in spec.address) throw new Error('a socket path');
    } catch {
      this.warnOnce(
        e.address,
        { address: e.address },
        'route table: an entry that is no HOST:PORT; not used',
      );
      return undefined;
    }
    if (e.tls !== this.backendTls) {
      this.warnOnce(
        `tls ${e.address}`,
        { address: e.address, entryTls: e.tls, backendTls: this.backendTls },
        e.tls
          ? 'route table: the entry serves TLS and the proxy has no --backend-tls; not used'
          : 'route table: the entry serves plain TCP and the proxy has --backend-tls; not used',
      );
      return undefined;
    }
    return { ...spec, weight: e.weight };
  }

  private warnOnce(key: string, fields: object, msg: string): void {
    if (this.warned.has(key)) return;
    this.warned.add(key);
    this.warn({ service: this.service, ...fields }, msg);
  }

  private warn(fields: object, msg: string): void {
    if (this.logger) this.logger.warn(fields, msg);
    else this.early.push([fields, msg]);
  }
}

/**
 * A front's side (a worker): the list it was forked with, then every newer one the daemon sends.
 * Subscribe before tcpdaemon() starts the worker's channel, so no message finds nobody listening.
 */
export function followDiscovered(onList: (list: DiscoveredList) => void): void {
  let seq = 0;
  const take = (list: DiscoveredList) => {
    if (list.seq <= seq) return;
    seq = list.seq;
    onList(list);
  };
  const raw = takeVar('proxyDiscovered');
  if (raw !== undefined) take(JSON.parse(raw) as DiscoveredList);
  workerBus.subscribe(DISCOVERED_TOPIC, (data, from) => {
    if (from === 0) take(JSON.parse(data.toString('utf8')) as DiscoveredList);
  });
}

function sameBackends(a: readonly BackendSpec[], b: readonly BackendSpec[]): boolean {
  return a.length === b.length && a.every((x, i) => x.id === b[i]!.id && x.weight === b[i]!.weight);
}
