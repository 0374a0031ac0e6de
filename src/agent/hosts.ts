// The agent's upstream hosts: which one an upstream connection goes to (a strategy, with the
// passive Lars health rules: an overloaded host gets only every probeNum-th pick) and what each
// has done (counters for `tcpdaemon status`). The list is fixed (--upstream HOST:PORT,...) or
// follows the route table (set()). No I/O.
import { DEFAULT_PASSIVE_HEALTH, type HealthChange, HealthTracker } from '../balance/health.js';
import { createStrategy, type Strategy } from '../balance/strategies/index.js';
import type { Logger } from '../types.js';
import type { UpstreamAddress } from './params.js';

export interface HostCounts {
  /** Requests sent to it. */
  requests: number;
  /** Replies routed back (error replies of the server included). */
  replies: number;
  /** Requests answered with an error frame because its connection was lost with them in flight. */
  errors: number;
  /** Requests answered with a timeout error frame. */
  timeouts: number;
  /** Replies that came after their request timed out (or matched none): dropped. */
  lateDrops: number;
  connects: number;
  connectErrors: number;
}

export class Host {
  readonly counts: HostCounts = {
    requests: 0,
    replies: 0,
    errors: 0,
    timeouts: 0,
    lateDrops: 0,
    connects: 0,
    connectErrors: 0,
  };
  /** Upstream connections open (or opening) to it: what leastconn compares. */
  active = 0;
  /** Requests in flight on its connections. */
  inFlight = 0;
  /** No longer listed (route table): its connections finish what they carry, then move. */
  removed = false;
  constructor(
    readonly id: string,
    readonly address: UpstreamAddress,
    public weight: number,
  ) {}
}

export interface HostSpec {
  id: string;
  address: UpstreamAddress;
  weight: number;
}

export class HostSet {
  private readonly hosts = new Map<string, Host>();
  /** Removed hosts whose counters still show until their last connection has moved. */
  private readonly gone = new Map<string, Host>();
  private readonly health: HealthTracker;
  private readonly strategy: Strategy;

  constructor(
    strategy: string,
    private readonly logger: Logger,
  ) {
    this.strategy = createStrategy(strategy);
    this.health = new HealthTracker(DEFAULT_PASSIVE_HEALTH, (c) => this.onHealthChange(c));
  }

  get size(): number {
    return this.hosts.size;
  }

  /**
   * Makes the list `specs`: new hosts join (up), listed ones take the new weight, hosts not in it
   * are marked removed (returned, so their connections can move once idle).
   */
  set(specs: readonly HostSpec[]): Host[] {
    const keep = new Set(specs.map((s) => s.id));
    const removed: Host[] = [];
    for (const [id, h] of this.hosts) {
      if (keep.has(id)) continue;
      h.removed = true;
      this.hosts.delete(id);
      this.health.remove(id);
      this.gone.set(id, h);
      removed.push(h);
    }
    for (const s of specs) {
      const h = this.hosts.get(s.id);
      if (h) {
        h.weight = s.weight;
        continue;
      }
      const back = this.gone.get(s.id);
      this.gone.delete(s.id);
      const host = back ?? new Host(s.id, s.address, s.weight);
      host.removed = false;
      host.weight = s.weight;
      this.hosts.set(s.id, host);
      this.health.add(s.id, 'up');
    }
    return removed;
  }

  /**
   * A host for a new connection, preferring one not in `avoid` (it just failed) when there is one.
   * `key` is what `hash` hashes (the connection's index: each connection keeps to its host).
   */
  pick(avoid: ReadonlySet<string>, key: string): Host | undefined {
    const all = [...this.hosts.values()];
    if (all.length === 0) return undefined;
    const exclude = all.every((h) => avoid.has(h.id)) ? new Set<string>() : avoid;
    const probe = this.health.probe(exclude);
    if (probe !== undefined) return this.hosts.get(probe);
    const ok = all.filter((h) => !exclude.has(h.id));
    const up = ok.filter((h) => this.health.state(h.id) === 'up');
    return this.strategy.pick({ clientKey: key }, up.length > 0 ? up : ok);
  }

  /** A call (or connect) to the host went well: a reply came. */
  success(h: Host): void {
    if (!h.removed) this.health.reportSuccess(h.id);
  }

  /** A call failed on the host (timeout), a connect failed or a connection was lost. */
  error(h: Host): void {
    if (!h.removed) this.health.reportError(h.id);
  }

  state(h: Host): string {
    return h.removed ? 'removed' : (this.health.state(h.id) ?? 'up');
  }

  /** Listed hosts, then removed ones that still carry a connection. */
  list(): Host[] {
    for (const [id, h] of this.gone) if (h.active === 0) this.gone.delete(id);
    return [...this.hosts.values(), ...this.gone.values()];
  }

  close(): void {
    this.health.close();
  }

  private onHealthChange(c: HealthChange): void {
    const fields = { upstream: c.id, from: c.from, to: c.to, reason: c.reason };
    if (c.to === 'up') this.logger.info(fields, 'upstream host back in rotation');
    else this.logger.warn(fields, 'upstream host overloaded');
  }
}
