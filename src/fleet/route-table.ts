// The reader's side of the route table (route.ts): a live copy of the announced entries, pushed by
// a KV watch (never polled; bucket-watch.ts, whose probe notices a watch that went quiet), with entries
// past their TTL dropped by a sweep (a watch sees no removal by the bucket's max age). 'change' fires with the service's live entries whenever they change.
// While the NATS connection is lost no announcer's refresh can arrive: the entries held are kept
// (not swept) until it is back, and for one TTL after that, the time their refreshes need. The same
// holds while a watch that stopped delivering is replaced, until the new one has its snapshot.
import { EventEmitter } from 'node:events';
import type { KV } from '@nats-io/kv';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { ConnectError } from '../errors.js';
import type { Logger } from '../types.js';
import { type BucketEntry, watchBucket } from './bucket-watch.js';
import { natsReason as reason } from './nats-reason.js';
import { retryTransient } from './nats-retry.js';
import { isLive, parseRouteEntry, ROUTES_BUCKET, type RouteEntry } from './route.js';
import { openRouteBucket } from './route-bucket.js';

/** The bucket's max age when a reader is the first to create it: the announcers' default TTL, ms. */
const DEFAULT_BUCKET_TTL_MS = 10_000;
/** Longest wait for the watch's first snapshot before serving what arrived, ms. */
const SNAPSHOT_WAIT_MS = 5000;
/** How often the watch's consumer is asked for (see bucket-watch.ts), ms. */
const PROBE_MS = 2000;
/** Longest wait for a JetStream API answer while watching (consumer create, probe), ms. */
const PROBE_REQUEST_MS = 3000;

export interface RouteTableOptions {
  servers: string[];
  logger: Logger;
  /** Watch only these services (default: every service in the bucket). */
  services?: string[];
  /** JetStream replicas when this reader creates the bucket (default: the cluster's servers, at most 3). */
  replicas?: number;
  /** How often entries past their TTL are dropped, ms (default: a second). */
  sweepMs?: number;
  /** The NATS connection's name, as the server lists it. */
  name?: string;
  /** Longest wait for the watch's first snapshot before serving what arrived, ms (default 5000). */
  snapshotWaitMs?: number;
  /** How often the watch's consumer is asked for, ms (default 2000). */
  probeMs?: number;
}

export interface RouteTableEvents {
  change: [service: string, entries: RouteEntry[]];
  /** The NATS connection is lost: the entries held are kept as they are. */
  lost: [];
  /** The NATS connection is back. */
  back: [];
}

export class RouteTable extends EventEmitter<RouteTableEvents> {
  /** service → key → entry. */
  private readonly table = new Map<string, Map<string, RouteEntry>>();
  private readonly sweepTimer: NodeJS.Timeout;
  private closed = false;
  private stopWatch: () => void = () => undefined;
  private kv: KV | undefined;
  private watched: string[] | undefined;
  private snapshotWaitMs = SNAPSHOT_WAIT_MS;
  private probeMs = PROBE_MS;
  /** Bumped per watch: entries from an older (replaced) watch are not applied. */
  private generation = 0;
  private rewatching = false;
  /** Keys being checked against the bucket because their refresh is late. */
  private readonly checking = new Set<string>();
  /** Entries the sweep dropped lately, still checked against the bucket (see sweep). */
  private readonly expired = new Map<string, RouteEntry>();
  /** Date.now() when the NATS connection was lost; undefined while connected. */
  private lostAt: number | undefined;
  /** Date.now() when it was last back (0 = never lost). */
  private backAt = 0;

  private constructor(
    private readonly nc: NatsConnection,
    private logger: Logger,
    sweepMs: number,
    /** The servers as given, for log lines. */
    readonly where: string,
  ) {
    super();
    this.sweepTimer = setInterval(() => this.sweep(), sweepMs);
    this.sweepTimer.unref();
  }

  /** Log lines go to `logger` from now on (a command whose own logger exists once it listens). */
  useLogger(logger: Logger): void {
    this.logger = logger;
  }

  /** Date.now() since which the NATS connection is lost; undefined while connected. */
  get lostSince(): number | undefined {
    return this.lostAt;
  }

  /** Connects, opens (or creates) the bucket and returns once the current entries are in. */
  static async open(opts: RouteTableOptions): Promise<RouteTable> {
    const where = opts.servers.join(',');
    let nc: NatsConnection;
    try {
      nc = await connect({
        servers: opts.servers,
        name: opts.name ?? 'tcpdaemon route reader',
        maxReconnectAttempts: -1,
        reconnectTimeWait: 500,
      });
    } catch (err) {
      throw new ConnectError(`--discovery ${where}: cannot connect: ${reason(err)}`);
    }
    const table = new RouteTable(nc, opts.logger, opts.sweepMs ?? 1000, where);
    try {
      const onRetry = (err: unknown) =>
        opts.logger.warn(
          { discovery: where, err: reason(err) },
          'route table: JetStream is not answering yet (a NATS cluster electing its leader?); retrying',
        );
      const kv = await retryTransient(
        () => openRouteBucket(nc, DEFAULT_BUCKET_TTL_MS, opts.replicas),
        onRetry,
      );
      table.kv = kv;
      table.watched = opts.services;
      table.snapshotWaitMs = opts.snapshotWaitMs ?? SNAPSHOT_WAIT_MS;
      table.probeMs = opts.probeMs ?? PROBE_MS;
      await retryTransient(() => table.watch(), onRetry);
      table.followReconnects();
    } catch (err) {
      await table.close();
      throw new ConnectError(
        `--discovery ${where}: cannot read the route table (JetStream enabled?): ${reason(err)}`,
      );
    }
    return table;
  }

  /** The service's live entries, by address. */
  entries(service: string): RouteEntry[] {
    const now = Date.now();
    const byKey = this.table.get(service);
    if (byKey === undefined) return [];
    return [...byKey.values()]
      .filter((e) => this.live(e, now))
      .sort((a, b) => (a.address < b.address ? -1 : a.address > b.address ? 1 : 0));
  }

  /** The table's NATS connection (the message client's reporter publishes on it). */
  get connection(): NatsConnection {
    return this.nc;
  }

  /** Every service with at least one live entry. */
  services(): string[] {
    return [...this.table.keys()].filter((s) => this.entries(s).length > 0).sort();
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    clearInterval(this.sweepTimer);
    this.stopWatch();
    await this.nc.close().catch(() => undefined);
  }

  private async watch(): Promise<void> {
    const services = this.watched;
    // Several filters in one consumer need NATS 2.10; before that, the whole bucket, filtered here.
    const keys =
      services === undefined ||
      services.length === 0 ||
      (services.length > 1 && !serverAtLeast(this.nc, 2, 10))
        ? ['>']
        : services.map((s) => `${s}.>`);
    // Entries and losses of an older (replaced, or failing) watch are not applied from here on.
    const generation = ++this.generation;
    const current = () => generation === this.generation;
    let snapshotDone: () => void = () => undefined;
    const snapshot = new Promise<void>((resolve) => {
      snapshotDone = resolve;
    });
    const watch = await watchBucket(
      this.nc,
      ROUTES_BUCKET,
      keys,
      {
        entry: (e) => {
          if (current()) this.apply(e);
        },
        snapshot: () => snapshotDone(),
        lost: (why) => {
          // While NATS is lost nothing answers; the reconnect watches again.
          if (current() && this.lostAt === undefined) this.rewatch(why);
        },
      },
      { probeMs: this.probeMs, requestMs: PROBE_REQUEST_MS },
    );
    this.stopWatch();
    this.stopWatch = () => watch.stop();
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([
      snapshot,
      new Promise<void>((resolve) => {
        timer = setTimeout(resolve, this.snapshotWaitMs);
      }),
    ]);
    clearTimeout(timer);
  }

  /** Whether a held entry counts at `now`: see the top of this file. */
  private live(e: RouteEntry, now: number): boolean {
    // While a new watch is being set up no refresh can arrive either: held like a lost connection.
    return this.lostAt !== undefined || this.rewatching || isLive(e, now) || now - this.backAt <= e.ttlMs;
  }

  /**
   * One line when the connection is lost (the entries are held from then on), one when it is back.
   * After a reconnect the watch's consumer may be gone with the server it lived on: watch again.
   */
  private followReconnects(): void {
    void (async () => {
      for await (const st of this.nc.status()) {
        if (this.closed) return;
        if (st.type === 'disconnect' && this.lostAt === undefined) {
          this.sweep(); // what was already stale goes; the rest is held
          this.lostAt = Date.now();
          this.logger.warn(
            { discovery: this.where, services: this.services().length },
            'route table: NATS connection lost; keeping the last known entries until it is back',
          );
          this.emit('lost');
        } else if (st.type === 'reconnect') {
          if (this.lostAt !== undefined) {
            const lostMs = Date.now() - this.lostAt;
            this.lostAt = undefined;
            this.backAt = Date.now();
            this.logger.info({ discovery: this.where, lostMs }, 'route table: NATS connection back');
            this.emit('back');
          }
          this.rewatch('reconnected to NATS');
        }
      }
    })().catch(() => undefined);
  }

  /** A new watch (its snapshot re-reads every entry); retried every second until it works. */
  private rewatch(why: string): void {
    if (this.closed || this.rewatching) return;
    this.rewatching = true;
    this.logger.info({ why }, 'route table: watching again');
    void (async () => {
      let failed = 0;
      while (!this.closed) {
        try {
          await this.watch();
          if (failed > 0) this.logger.info({ failed }, 'route table: watching again after failures');
          break;
        } catch (err) {
          if (failed++ === 0)
            this.logger.warn({ err: reason(err) }, 'route table: cannot watch; retrying every second');
          await new Promise((r) => setTimeout(r, 1000).unref());
        }
      }
      this.rewatching = false;
    })();
  }

  /**
   * An entry two thirds into its TTL missed a refresh: its announcer is gone, or the watch stalled
   * (its consumer lost without a reconnect here). The bucket tells which.
   */
  private checkLate(key: string, entry: RouteEntry): void {
    if (this.kv === undefined || this.checking.has(key) || this.rewatching) return;
    this.checking.add(key);
    void this.kv
      .get(key)
      .then((stored) => {
        const fresh = stored?.operation === 'PUT' ? parseRouteEntry(stored.value) : undefined;
        if (fresh !== undefined && fresh.refreshedAt > entry.refreshedAt)
          this.rewatch('the watch fell behind');
      })
      .catch(() => undefined)
      .finally(() => this.checking.delete(key));
  }

  private apply(e: BucketEntry): void {
    const dot = e.key.indexOf('.');
    if (dot <= 0) return;
    const service = e.key.slice(0, dot);
    if (this.watched !== undefined && this.watched.length > 0 && !this.watched.includes(service)) return;
    let byKey = this.table.get(service);
    if (e.operation !== 'PUT') {
      if (byKey?.delete(e.key)) this.emit('change', service, this.entries(service));
      return;
    }
    const entry = parseRouteEntry(e.value);
    if (entry === undefined || entry.service !== service) {
      this.logger.debug({ key: e.key }, 'route table: an entry that is not ours; ignored');
      return;
    }
    if (byKey === undefined) {
      byKey = new Map();
      this.table.set(service, byKey);
    }
    const before = byKey.get(e.key);
    byKey.set(e.key, entry);
    this.expired.delete(e.key);
    if (before === undefined || !sameRoute(before, entry) || !this.live(before, Date.now()))
      this.emit('change', service, this.entries(service));
  }

  private sweep(): void {
    const now = Date.now();
    for (const [service, byKey] of this.table) {
      let dropped = false;
      for (const [key, entry] of byKey) {
        if (!this.live(entry, now)) {
          byKey.delete(key);
          dropped = true;
          if (this.lostAt === undefined) this.expired.set(key, entry);
        } else if (this.lostAt === undefined && now - entry.refreshedAt > (entry.ttlMs * 2) / 3)
          this.checkLate(key, entry); // (while NATS is lost every entry is late, and nothing answers)
      }
      if (dropped) this.emit('change', service, this.entries(service));
      if (byKey.size === 0) this.table.delete(service);
    }
    // An entry that expired while the bucket could not be asked (a NATS cluster electing) is asked
    // about for one TTL more: a newer one there means the watch stalled, and a new watch restores it.
    for (const [key, entry] of this.expired) {
      if (now - entry.refreshedAt > 2 * entry.ttlMs) this.expired.delete(key);
      else if (this.lostAt === undefined) this.checkLate(key, entry);
    }
  }
}

/** Whether the NATS server this connection is on is at least major.minor. */
function serverAtLeast(nc: NatsConnection, major: number, minor: number): boolean {
  const [a = 0, b = 0] = (nc.info?.version ?? '0.0').split('.').map(Number);
  return a > major || (a === major && b >= minor);
}

/** The same route for a client: a refresh alone (new refreshedAt) is no change. */
function sameRoute(a: RouteEntry, b: RouteEntry): boolean {
  return (
    a.address === b.address &&
    a.weight === b.weight &&
    a.version === b.version &&
    a.tls === b.tls &&
    a.pid === b.pid
  );
}
