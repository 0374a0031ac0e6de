// HostPool: the hosts of one service as a client picks among them, per call. A strategy (strategies/)
// picks among the up hosts; passive (Lars) health (health.ts) takes a failing host out of rotation,
// probes it one pick in probeNum and puts it back; each call's outcome is fed to it and counted for
// the reporter. Hosts come from a static list or follow a route source (the fleet's RouteTable, taken
// structurally so this module imports nothing above the libraries). No I/O, no sockets.
import { EventEmitter } from 'node:events';
import { isIP } from 'node:net';
import { type BackendState, type HealthChange, HealthTracker, type PassiveHealthOptions } from './health.js';
import { createStrategy, DEFAULT_STRATEGY, type Strategy, type StrategyOptions } from './strategies/index.js';

/** What became of one call (or connect) to a host. A timeout counts as an error for health. */
export type CallOutcome = 'ok' | 'error' | 'timeout';

/** A host as given: `HOST:PORT` or `[IPV6]:PORT`, with a relative weight (default 1). */
export interface HostSpec {
  readonly address: string;
  readonly weight?: number;
}

/** Where hosts come from when they change: what the fleet's RouteTable offers. */
export interface HostSource {
  entries(service: string): readonly HostSpec[];
  on(event: 'change', listener: (service: string, entries: readonly HostSpec[]) => void): unknown;
  off(event: 'change', listener: (service: string, entries: readonly HostSpec[]) => void): unknown;
}

export interface PoolHost {
  /** `host:port` (`[v6]:port`): stable and unique in the pool. */
  readonly id: string;
  readonly host: string;
  readonly port: number;
  readonly weight: number;
  /** Calls running on it now (begin() minus end()); what leastconn and p2c compare. */
  readonly active: number;
}

/** Outcomes since the last takeCounts(). */
export interface OutcomeCounts {
  ok: number;
  error: number;
  timeout: number;
}

export interface HostPoolOptions {
  /** A strategy name (roundrobin, leastconn, p2c, hash) or a strategy. Default p2c. */
  strategy?: string | Strategy;
  strategyOptions?: StrategyOptions;
  /** Passive (Lars) thresholds; defaults in DEFAULT_PASSIVE_HEALTH. */
  health?: Partial<PassiveHealthOptions>;
}

export interface HostPoolEvents {
  /** A host went up / overloaded / down. */
  health: [change: HealthChange];
  /** The host list changed (setHosts, or the source's 'change'). */
  added: [host: PoolHost];
  removed: [host: PoolHost];
}

class Host implements PoolHost {
  active = 0;
  counts: OutcomeCounts = { ok: 0, error: 0, timeout: 0 };
  constructor(
    readonly id: string,
    readonly host: string,
    readonly port: number,
    public weight: number,
  ) {}
}

export class HostPool extends EventEmitter<HostPoolEvents> {
  readonly strategy: Strategy;
  private readonly hostsById = new Map<string, Host>();
  private readonly tracker: HealthTracker;
  /** Up hosts; rebuilt after any change. */
  private upCache: Host[] | undefined;
  /** Counts of hosts removed since the last takeCounts(), so their last outcomes are still reported. */
  private removedCounts = new Map<string, OutcomeCounts>();
  private unfollow: () => void = () => undefined;

  constructor(hosts: readonly HostSpec[] = [], opts: HostPoolOptions = {}) {
    super();
    this.strategy =
      typeof opts.strategy === 'object'
        ? opts.strategy
        : createStrategy(opts.strategy ?? DEFAULT_STRATEGY, opts.strategyOptions);
    this.tracker = new HealthTracker(opts.health ?? {}, (c) => {
      this.upCache = undefined;
      this.emit('health', c);
    });
    this.setHosts(hosts);
  }

  /** A pool that follows `service` in `source` (its entries now, then each 'change'). */
  static follow(source: HostSource, service: string, opts: HostPoolOptions = {}): HostPool {
    const pool = new HostPool(source.entries(service), opts);
    const onChange = (s: string, entries: readonly HostSpec[]) => {
      if (s === service) pool.setHosts(entries);
    };
    source.on('change', onChange);
    pool.unfollow = () => source.off('change', onChange);
    return pool;
  }

  /** Replaces the host list: new hosts start up, missing ones leave (their running calls are the caller's). */
  setHosts(specs: readonly HostSpec[]): void {
    const next = new Map<string, { host: string; port: number; weight: number }>();
    for (const s of specs) {
      const a = parseHostAddress(s.address);
      next.set(hostId(a.host, a.port), { ...a, weight: Math.max(1, Math.round(s.weight ?? 1)) });
    }
    for (const [id, h] of this.hostsById) {
      if (next.has(id)) continue;
      this.hostsById.delete(id);
      this.tracker.remove(id);
      this.keepRemovedCounts(h);
      this.upCache = undefined;
      this.emit('removed', h);
    }
    for (const [id, a] of next) {
      const h = this.hostsById.get(id);
      if (h !== undefined) {
        if (h.weight !== a.weight) {
          h.weight = a.weight;
          this.upCache = undefined;
        }
        continue;
      }
      const added = new Host(id, a.host, a.port, a.weight);
      this.hostsById.set(id, added);
      this.tracker.add(id, 'up');
      this.upCache = undefined;
      this.emit('added', added);
    }
  }

  get size(): number {
    return this.hostsById.size;
  }

  hosts(): PoolHost[] {
    return [...this.hostsById.values()];
  }

  get(id: string): PoolHost | undefined {
    return this.hostsById.get(id);
  }

  /** up / overloaded / down, or undefined when `id` is not in the pool. */
  state(id: string): BackendState | undefined {
    return this.tracker.state(id);
  }

  /**
   * The host for the next call, none of `exclude` (already tried for it). Every probeNum-th pick
   * goes to an overloaded host while there is one; otherwise the strategy picks among the up hosts,
   * or among the overloaded ones when none is up. Undefined when the pool has no eligible host.
   */
  pick(opts: { exclude?: ReadonlySet<string>; key?: string } = {}): PoolHost | undefined {
    const exclude = opts.exclude ?? EMPTY;
    const ctx = { clientKey: opts.key ?? '' };
    const probe = this.tracker.probe(exclude);
    if (probe !== undefined) return this.hostsById.get(probe);
    this.upCache ??= [...this.hostsById.values()].filter((h) => this.tracker.state(h.id) === 'up');
    const up = exclude.size === 0 ? this.upCache : this.upCache.filter((h) => !exclude.has(h.id));
    if (up.length > 0) return this.strategy.pick(ctx, up);
    const overloaded = [...this.hostsById.values()].filter(
      (h) => this.tracker.state(h.id) === 'overloaded' && !exclude.has(h.id),
    );
    return this.strategy.pick(ctx, overloaded);
  }

  /** A call to `id` starts (it counts in `active` until end()). */
  begin(id: string): void {
    const h = this.hostsById.get(id);
    if (h !== undefined) h.active++;
  }

  /** A call begun on `id` ended with `outcome` (fed to health and counted; none: it says nothing of the host). */
  end(id: string, outcome?: CallOutcome): void {
    const h = this.hostsById.get(id);
    if (h !== undefined && h.active > 0) h.active--;
    if (outcome !== undefined) this.report(id, outcome);
  }

  /** An outcome without begin() (a connect that failed or succeeded). */
  report(id: string, outcome: CallOutcome): void {
    const h = this.hostsById.get(id);
    if (h === undefined) return;
    h.counts[outcome]++;
    if (outcome === 'ok') this.tracker.reportSuccess(id);
    else this.tracker.reportError(id);
  }

  /** Outcomes per host since the last call (hosts with none left out), and restarts the counts. */
  takeCounts(): Map<string, OutcomeCounts> {
    const out = this.removedCounts;
    this.removedCounts = new Map();
    for (const h of this.hostsById.values()) {
      if (h.counts.ok + h.counts.error + h.counts.timeout === 0) continue;
      out.set(h.id, h.counts);
      h.counts = { ok: 0, error: 0, timeout: 0 };
    }
    return out;
  }

  /** Stops following the source and every health timer. */
  close(): void {
    this.unfollow();
    this.unfollow = () => undefined;
    this.tracker.close();
  }

  private keepRemovedCounts(h: Host): void {
    if (h.counts.ok + h.counts.error + h.counts.timeout > 0) this.removedCounts.set(h.id, h.counts);
  }
}

const EMPTY: ReadonlySet<string> = new Set();

/** `HOST:PORT` or `[IPV6]:PORT` → host and port; throws a one-line reason. */
export function parseHostAddress(address: string): { host: string; port: number } {
  const m = /^(?:\[([^\]]+)\]|([^:[\]]+)):(\d{1,5})$/.exec(address);
  const port = m ? Number(m[3]) : 0;
  if (!m || port < 1 || port > 65535)
    throw new RangeError(`host '${address}' is not HOST:PORT or [IPV6]:PORT (port 1-65535)`);
  return { host: m[1] ?? m[2]!, port };
}

export function hostId(host: string, port: number): string {
  return isIP(host) === 6 ? `[${host}]:${port}` : `${host}:${port}`;
}
