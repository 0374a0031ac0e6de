// --announce: this process's address under a service name in the route table (route.ts), refreshed
// every third of its TTL, removed on a graceful stop before draining; a killed process's entry
// expires with the bucket's max age (and readers drop it after its own TTL: route.isLive).
import { hostname } from 'node:os';
import type { KV } from '@nats-io/kv';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { ConnectError } from '../errors.js';
import type { Logger } from '../types.js';
import { natsReason as reason } from './nats-reason.js';
import { retryTransient } from './nats-retry.js';
import { type RouteEntry, routeKey } from './route.js';
import { openRouteBucket } from './route-bucket.js';
import type { AnnounceSettings } from './settings.js';

/** How long a withdraw may hold up the stop, ms: draining goes on without it after that. */
const WITHDRAW_WAIT_MS = 2000;

export class Announcer {
  private timer: NodeJS.Timeout | undefined;
  private withdrawn = false;
  private readonly entry: RouteEntry;
  private readonly key: string;
  /** Refreshes failed in a row (NATS away): the first is logged, then one line when they succeed again. */
  private failedInARow = 0;

  private constructor(
    private readonly nc: NatsConnection,
    private readonly kv: KV,
    settings: AnnounceSettings,
    address: string,
    tls: boolean,
    private readonly logger: Logger,
  ) {
    this.key = routeKey(settings.service, address);
    this.entry = {
      service: settings.service,
      address,
      weight: settings.weight,
      version: settings.version,
      tls,
      pid: process.pid,
      hostname: hostname(),
      refreshedAt: 0,
      ttlMs: settings.ttlMs,
    };
  }

  /** Connects, opens (or creates) the bucket and publishes the entry. Throws ConnectError naming the URL. */
  static async start(
    settings: AnnounceSettings,
    address: string,
    tls: boolean,
    logger: Logger,
  ): Promise<Announcer> {
    const where = settings.servers.join(',');
    let nc: NatsConnection;
    try {
      nc = await connect({
        servers: settings.servers,
        name: `tcpdaemon announce ${settings.service}`,
        maxReconnectAttempts: -1,
        reconnectTimeWait: 500,
      });
    } catch (err) {
      throw new ConnectError(`--announce: cannot reach --discovery ${where}: ${reason(err)}`);
    }
    try {
      const onRetry = (err: unknown) =>
        logger.warn(
          { discovery: where, err: reason(err) },
          'announce: JetStream is not answering yet (a NATS cluster electing its leader?); retrying',
        );
      const kv = await retryTransient(() => openRouteBucket(nc, settings.ttlMs), onRetry);
      // The bucket may be older than this process, with another max age: refresh within both.
      const bucketTtl = (await retryTransient(() => kv.status(), onRetry)).ttl;
      const refreshMs = Math.max(100, Math.floor(Math.min(settings.ttlMs, bucketTtl || settings.ttlMs) / 3));
      const announcer = new Announcer(nc, kv, settings, address, tls, logger);
      await retryTransient(() => announcer.refresh(), onRetry);
      announcer.timer = setInterval(() => {
        void announcer.refreshLogged(where);
      }, refreshMs);
      announcer.timer.unref();
      logger.info(
        { service: settings.service, address, discovery: where, ttlS: settings.ttlMs / 1000 },
        'announced',
      );
      return announcer;
    } catch (err) {
      await nc.close().catch(() => undefined);
      throw new ConnectError(
        `--announce: cannot publish to the route table on --discovery ${where} (JetStream enabled?): ${reason(err)}`,
      );
    }
  }

  private async refreshLogged(where: string): Promise<void> {
    try {
      await this.refresh();
    } catch (err) {
      if (this.failedInARow++ === 0)
        this.logger.warn(
          { service: this.entry.service, discovery: where, err: reason(err) },
          'announce: refresh failed; retrying every third of the TTL (the entry expires if this lasts)',
        );
      return;
    }
    if (this.failedInARow > 0) {
      this.logger.info(
        { service: this.entry.service, failed: this.failedInARow },
        'announce: refreshed again',
      );
      this.failedInARow = 0;
    }
  }

  private async refresh(): Promise<void> {
    if (this.withdrawn) return;
    this.entry.refreshedAt = Date.now();
    await this.kv.put(this.key, JSON.stringify(this.entry));
  }

  /** Takes the entry out of the route table (before draining); at most WITHDRAW_WAIT_MS. */
  async withdraw(): Promise<void> {
    if (this.withdrawn) return;
    this.withdrawn = true;
    clearInterval(this.timer);
    const gone = this.kv.delete(this.key).then(
      () => true,
      (err: unknown) => {
        this.logger.warn(
          { service: this.entry.service, err: reason(err) },
          'announce: withdraw failed; the entry expires with its TTL',
        );
        return false;
      },
    );
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<'late'>((r) => {
      timer = setTimeout(() => r('late'), WITHDRAW_WAIT_MS);
    });
    const outcome = await Promise.race([gone, late]);
    clearTimeout(timer);
    if (outcome === true)
      this.logger.info({ service: this.entry.service, address: this.entry.address }, 'withdrawn');
    else if (outcome === 'late')
      this.logger.warn(
        { service: this.entry.service },
        'announce: withdraw not confirmed in 2 s; draining anyway',
      );
  }

  /** Withdraws (when not yet) and closes the NATS connection. */
  async close(): Promise<void> {
    await this.withdraw();
    await this.nc.close().catch(() => undefined);
  }
}
