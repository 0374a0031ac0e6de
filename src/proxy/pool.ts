import { type HealthChange, HealthTracker, type PassiveHealthOptions } from '../balance/health.js';
import {
  createStrategy,
  DEFAULT_STRATEGY,
  type Strategy,
  type StrategyOptions,
} from '../balance/strategies/index.js';
import type { Meter } from '../metrics/meter.js';
import type { Logger } from '../types.js';
import type { BackendAddress, BackendSpec } from './backend.js';
import { type ActiveCheckOptions, ConnectChecker } from './health-check.js';
import { BackendStats, type ProxyStatsSnapshot } from './stats.js';

/** One backend as the pool keeps it: what was configured plus live counters. */
export class Backend {
  readonly stats = new BackendStats();
  constructor(
    readonly id: string,
    readonly address: BackendAddress,
    /** Changed only by a config reload (setWeight). */
    public weight: number,
  ) {}
  /** What strategies compare. */
  get active(): number {
    return this.stats.active;
  }
}

export interface PoolOptions {
  /** A name from the strategy table. Default DEFAULT_STRATEGY. */
  strategy?: string;
  strategyOptions?: StrategyOptions;
  /** Passive (Lars) thresholds; defaults in DEFAULT_PASSIVE_HEALTH. */
  passive?: Partial<PassiveHealthOptions>;
  /** Active connect checks; false turns them off. Defaults in DEFAULT_ACTIVE_CHECK. */
  checks?: Partial<ActiveCheckOptions> | false;
  /** Health changes are logged here (warn going out of rotation, info coming back). */
  logger: Logger;
}

/**
 * The backends one process forwards to: which may take a new connection (health), which one
 * does (strategy), and what happened to them (stats). One pool per process; no I/O besides
 * the connect checks.
 */
export class BackendPool {
  readonly strategy: Strategy;
  private readonly backends = new Map<string, Backend>();
  private readonly health: HealthTracker;
  private readonly checker: ConnectChecker | undefined;
  private readonly logger: Logger;
  /** Backends in the 'up' state; rebuilt after any change. */
  private upCache: Backend[] | undefined;
  private rejected = 0;
  private retried = 0;
  private upWaiters: (() => void)[] = [];
  /** --metrics: this process's meter; connects are timed only when it is set. */
  meter: Meter | undefined;

  constructor(specs: readonly BackendSpec[], opts: PoolOptions) {
    this.logger = opts.logger;
    this.strategy = createStrategy(opts.strategy ?? DEFAULT_STRATEGY, opts.strategyOptions);
    this.health = new HealthTracker(opts.passive ?? {}, (c) => this.onHealthChange(c));
    if (opts.checks !== false) {
      this.checker = new ConnectChecker(opts.checks ?? {}, {
        down: (id, reason) => this.health.markDown(id, reason),
        up: (id, reason) => this.health.markUp(id, reason),
      });
      this.checker.start();
    }
    for (const spec of specs) this.add(spec);
  }

  /** Adds a backend; `down` keeps it out of rotation until markUp or `rise` passing checks. */
  add(spec: BackendSpec, opts: { down?: boolean } = {}): void {
    if (this.backends.has(spec.id)) throw new Error(`backend ${spec.id} is already in the pool`);
    this.backends.set(spec.id, new Backend(spec.id, spec.address, spec.weight));
    this.health.add(spec.id, opts.down ? 'down' : 'up');
    this.checker?.add(spec, opts.down);
    this.upCache = undefined;
  }

  /** Stops sending it new connections; open ones continue. */
  remove(id: string): void {
    this.backends.delete(id);
    this.health.remove(id);
    this.checker?.remove(id);
    this.upCache = undefined;
  }

  /** A config reload changed its weight: new connections follow it at once. */
  setWeight(id: string, weight: number): void {
    const b = this.backends.get(id);
    if (!b || b.weight === weight) return;
    b.weight = weight;
    this.upCache = undefined;
  }

  /** Whether `id` is in the pool. */
  has(id: string): boolean {
    return this.backends.has(id);
  }

  get size(): number {
    return this.backends.size;
  }

  /**
   * The backend for a new connection, none of `exclude` (already tried). Every
   * `probeNum`-th pick goes to an overloaded backend while there is one; otherwise the
   * strategy picks among the up ones, or among the overloaded ones when none is up.
   */
  pick(clientKey: string, exclude: ReadonlySet<string>): Backend | undefined {
    const probe = this.health.probe(exclude);
    if (probe !== undefined) return this.backends.get(probe);
    const ctx = { clientKey };
    this.upCache ??= [...this.backends.values()].filter((b) => this.health.state(b.id) === 'up');
    const up = exclude.size === 0 ? this.upCache : this.upCache.filter((b) => !exclude.has(b.id));
    if (up.length > 0) return this.strategy.pick(ctx, up);
    const overloaded = [...this.backends.values()].filter(
      (b) => this.health.state(b.id) === 'overloaded' && !exclude.has(b.id),
    );
    return this.strategy.pick(ctx, overloaded);
  }

  /**
   * A connect to `b` succeeded: it now carries one more client connection. `startedMs` is the
   * performance.now() the connect began at when `meter` is set (--metrics), to time it.
   */
  connected(b: Backend, startedMs = 0): void {
    b.stats.active++;
    b.stats.total++;
    if (this.meter)
      this.meter.observe('backendConnectSeconds', (performance.now() - startedMs) / 1000, { backend: b.id });
  }

  /** A connect to `b` failed; `retrying` when another backend will be tried for the client. */
  connectFailed(b: Backend, retrying: boolean): void {
    b.stats.errors++;
    b.stats.connectErrors++;
    if (retrying) this.retried++;
    this.health.reportError(b.id);
    this.checker?.checkNow(b.id);
  }

  /**
   * A forwarded connection closed; `broken` when the backend reset or errored it. This is
   * the connection's one health report (a failed connect is the other kind): a backend that
   * accepts and then resets counts as failing, one that served to the end as succeeding.
   */
  released(b: Backend, bytesOut: number, bytesIn: number, broken: boolean): void {
    b.stats.active--;
    b.stats.bytesOut += bytesOut;
    b.stats.bytesIn += bytesIn;
    if (broken) {
      b.stats.errors++;
      this.health.reportError(b.id);
      this.checker?.checkNow(b.id);
    } else {
      this.health.reportSuccess(b.id);
    }
  }

  /** A client was closed because no backend could take it. */
  rejectedClient(): void {
    this.rejected++;
  }

  /** Out of rotation at once (its process exited); back after markUp or passing checks. */
  markDown(id: string, reason: string): void {
    this.health.markDown(id, reason);
    this.checker?.setDown(id);
  }

  markUp(id: string, reason: string): void {
    this.health.markUp(id, reason);
  }

  state(id: string) {
    return this.health.state(id);
  }

  snapshot(): ProxyStatsSnapshot {
    return {
      backends: [...this.backends.values()].map((b) => ({
        id: b.id,
        state: this.health.state(b.id) ?? 'down',
        weight: b.weight,
        ...b.stats,
      })),
      rejected: this.rejected,
      retried: this.retried,
    };
  }

  /** Stops timers and checks. Open connections are the caller's. */
  close(): void {
    this.checker?.stop();
    this.health.close();
  }

  /** Resolves once some backend is up (at once if one is), or after `timeoutMs`. */
  whenAnyUp(timeoutMs: number): Promise<void> {
    if ([...this.backends.keys()].some((id) => this.health.state(id) === 'up')) return Promise.resolve();
    return new Promise((resolve) => {
      const timer = setTimeout(done, timeoutMs);
      timer.unref();
      const waiters = this.upWaiters;
      function done() {
        clearTimeout(timer);
        const i = waiters.indexOf(done);
        if (i >= 0) waiters.splice(i, 1);
        resolve();
      }
      waiters.push(done);
    });
  }

  private onHealthChange(c: HealthChange): void {
    this.upCache = undefined;
    if (c.to === 'up') for (const w of this.upWaiters.splice(0)) w();
    const b = this.backends.get(c.id);
    const fields = { backend: c.id, from: c.from, to: c.to, reason: c.reason, active: b?.stats.active };
    if (c.to === 'up') this.logger.info(fields, 'backend back in rotation');
    else this.logger.warn(fields, c.to === 'down' ? 'backend down' : 'backend overloaded');
  }
}
