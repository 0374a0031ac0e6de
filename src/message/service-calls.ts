// MessageClient's service mode: a host picked per call (fleet/service-pool.ts: strategies, Lars
// health, the route table), one lazily opened connection per host picked (a plain MessageClient that
// does not reconnect: a lost connection is reopened by the next call that picks its host), each
// call's outcome fed to health and counted for the reports. A host the route table drops takes no
// new call; its connection closes once the calls running on it are answered.
import type { BackendState } from '../balance/health.js';
import type { PoolHost } from '../balance/host-pool.js';
import type { ServicePool } from '../fleet/service-pool.js';
import type { Logger } from '../types.js';
import type { MessageClient } from './client.js';
import type { Codec } from './codecs/index.js';
import { toBytes } from './conn.js';
import { MessageError } from './errors.js';
import type { RequestOptions } from './pending.js';

/** Makes the connection to one host; `lost` is called when it closes or fails to open. */
export type HostClientFactory = (
  host: PoolHost,
  tls: boolean,
  lost: (reason: string) => void,
) => MessageClient;

/** One host of a service as a client sees it. */
export interface ServiceHost {
  /** HOST:PORT. */
  address: string;
  weight: number;
  state: BackendState;
  /** Calls running on it now. */
  active: number;
  /** This client holds an open connection to it. */
  connected: boolean;
}

interface Link {
  readonly id: string;
  readonly client: MessageClient;
  connecting: Promise<void> | undefined;
  /** Calls begun on it and not yet answered. */
  inFlight: number;
  /** Its host left the route table: closes when inFlight reaches 0. */
  retiring: boolean;
  dead: boolean;
}

export interface ServiceCallsOptions {
  service: string;
  codec: Codec;
  requestTimeout: number;
  /** Further hosts tried when a host cannot be connected to (a call is never resent once sent). */
  retries: number;
  logger: Logger;
  open: () => Promise<ServicePool>;
  makeClient: HostClientFactory;
}

export class ServiceCalls {
  private readonly links = new Map<string, Link>();
  private opening: Promise<ServicePool> | undefined;
  private pool: ServicePool | undefined;
  private closed = false;

  constructor(private readonly opts: ServiceCallsOptions) {}

  /** Opens the host source once (the route table's first snapshot is in when it resolves). */
  ready(): Promise<ServicePool> {
    this.opening ??= this.opts.open().then(async (sp) => {
      if (this.closed) {
        await sp.close();
        throw closedError();
      }
      this.pool = sp;
      sp.pool.on('added', (h) => this.opts.logger.info({ service: sp.service, host: h.id }, 'host added'));
      sp.pool.on('removed', (h) => {
        this.opts.logger.info({ service: sp.service, host: h.id }, 'host removed');
        this.retire(h.id);
      });
      sp.pool.on('health', (c) => {
        const fields = { service: sp.service, host: c.id, from: c.from, to: c.to, reason: c.reason };
        if (c.to === 'up') this.opts.logger.info(fields, 'host back in rotation');
        else this.opts.logger.warn(fields, 'host overloaded');
      });
      return sp;
    });
    return this.opening;
  }

  get connected(): boolean {
    for (const l of this.links.values()) if (l.client.connected) return true;
    return false;
  }

  get queued(): number {
    let n = 0;
    for (const l of this.links.values()) n += l.client.queued;
    return n;
  }

  /** The service's hosts now (none before the route table is open). */
  hosts(): ServiceHost[] {
    const sp = this.pool;
    if (sp === undefined) return [];
    return sp.pool.hosts().map((h) => ({
      address: h.id,
      weight: h.weight,
      state: sp.pool.state(h.id) ?? 'down',
      active: h.active,
      connected: this.links.get(h.id)?.client.connected === true,
    }));
  }

  /** Resolves once connected to some host of the service. */
  async connect(): Promise<void> {
    const sp = await this.ready();
    const failures: string[] = [];
    const tried = new Set<string>();
    for (;;) {
      const host = sp.pool.pick({ exclude: tried });
      if (host === undefined) throw this.noHost(sp, failures);
      tried.add(host.id);
      try {
        await this.linkTo(sp, host, Number.POSITIVE_INFINITY);
        return;
      } catch (err) {
        if (this.closed) throw closedError();
        failures.push(`${host.id}: ${why(err)}`);
      }
    }
  }

  async request(
    msgid: number,
    body: Uint8Array | string | undefined,
    options: RequestOptions,
  ): Promise<Buffer> {
    const sp = await this.ready();
    const timeout = options.timeout ?? this.opts.requestTimeout;
    const deadline = Date.now() + timeout;
    const tried = new Set<string>();
    const failures: string[] = [];
    while (tried.size <= this.opts.retries) {
      const host = sp.pool.pick({ exclude: tried, key: options.key });
      if (host === undefined) break;
      tried.add(host.id);
      let link: Link;
      try {
        link = await this.linkTo(sp, host, deadline);
      } catch (err) {
        if (this.closed) throw closedError();
        if ((err as MessageError).code === 'ERR_MESSAGE_TIMEOUT') throw err;
        failures.push(`${host.id}: ${why(err)}`);
        continue;
      }
      const left = Math.max(1, deadline - Date.now());
      sp.pool.begin(host.id);
      link.inFlight++;
      try {
        const reply = await link.client.request(msgid, body, { ...options, timeout: left });
        sp.pool.end(host.id, 'ok');
        return reply;
      } catch (err) {
        const code = (err as MessageError).code;
        // Our own bounds and our own close say nothing about the host.
        if (this.closed || code === 'ERR_MESSAGE_TOO_MANY_REQUESTS' || code === 'ERR_MESSAGE_QUEUE_FULL')
          sp.pool.end(host.id);
        else sp.pool.end(host.id, code === 'ERR_MESSAGE_TIMEOUT' ? 'timeout' : 'error');
        throw err;
      } finally {
        link.inFlight--;
        if (link.retiring && link.inFlight === 0) void link.client.close();
      }
    }
    throw this.noHost(sp, failures);
  }

  /**
   * One frame to a host picked for it: sent now when its connection is open, else queued on that
   * connection while it opens (frames queued there are dropped, and logged, if it cannot be opened).
   */
  send(msgid: number, body: Uint8Array | string | undefined): boolean {
    const bytes = toBytes(body);
    this.opts.codec.encode(msgid, bytes);
    const sp = this.pool;
    if (sp === undefined) {
      void this.ready().then(
        () => this.send(msgid, bytes),
        (err: unknown) => this.opts.logger.warn({ reason: why(err), msgid }, 'send dropped: no route table'),
      );
      return false;
    }
    const host = sp.pool.pick();
    if (host === undefined) throw this.noHost(sp, []);
    const link = this.linkOf(sp, host);
    if (link.client.connected) return link.client.send(msgid, bytes);
    link.client.send(msgid, bytes);
    this.linkTo(sp, host, Number.POSITIVE_INFINITY).catch(() => undefined);
    return false;
  }

  /** Closes every host's connection (failing what is queued there) and stops following the table. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    // Opening: it sees `closed` when it is done and closes what it opened.
    await this.opening?.catch(() => undefined);
    const links = [...this.links.values()];
    this.links.clear();
    await Promise.all(links.map((l) => l.client.close()));
    await this.pool?.close();
  }

  /** The host's link, connected (opened now if needed); rejects on a failed connect (reported to health). */
  private async linkTo(sp: ServicePool, host: PoolHost, deadline: number): Promise<Link> {
    const link = this.linkOf(sp, host);
    if (link.client.connected) return link;
    link.connecting ??= link.client.connect().then(
      () => {
        sp.pool.report(host.id, 'ok');
      },
      (err: unknown) => {
        this.drop(link);
        if (!this.closed) {
          sp.pool.report(host.id, 'error');
          this.opts.logger.warn(
            { service: sp.service, host: host.id, reason: why(err) },
            'cannot connect to host',
          );
        }
        throw err;
      },
    );
    if (!Number.isFinite(deadline)) {
      await link.connecting;
      return link;
    }
    let timer: NodeJS.Timeout | undefined;
    try {
      await Promise.race([
        link.connecting,
        new Promise<never>((_, reject) => {
          timer = setTimeout(
            () =>
              reject(
                new MessageError(
                  'ERR_MESSAGE_TIMEOUT',
                  `no reply within the request timeout (never sent: still connecting to ${host.id})`,
                ),
              ),
            Math.max(1, deadline - Date.now()),
          );
        }),
      ]);
    } finally {
      clearTimeout(timer);
    }
    return link;
  }

  private linkOf(sp: ServicePool, host: PoolHost): Link {
    const known = this.links.get(host.id);
    if (known !== undefined) return known;
    if (this.closed) throw closedError();
    const holder: { link?: Link } = {};
    const client = this.opts.makeClient(host, sp.tls(host.id), (reason) => {
      if (!this.closed)
        this.opts.logger.info({ service: sp.service, host: host.id, reason }, 'host connection closed');
      if (holder.link !== undefined) this.drop(holder.link);
    });
    const link: Link = {
      id: host.id,
      client,
      connecting: undefined,
      inFlight: 0,
      retiring: false,
      dead: false,
    };
    holder.link = link;
    this.links.set(host.id, link);
    return link;
  }

  /** A link whose connection closed or never opened: the next call to its host opens a new one. */
  private drop(link: Link): void {
    if (link.dead) return;
    link.dead = true;
    if (this.links.get(link.id) === link) this.links.delete(link.id);
    const dropped = link.client.queued;
    if (dropped > 0 && !this.closed)
      this.opts.logger.warn(
        { host: link.id, frames: dropped },
        'frames queued for a host that could not be reached: dropped',
      );
    void link.client.close();
  }

  private retire(id: string): void {
    const link = this.links.get(id);
    if (link === undefined) return;
    this.links.delete(id);
    link.retiring = true;
    if (link.inFlight === 0) void link.client.close();
  }

  private noHost(sp: ServicePool, failures: string[]): MessageError {
    if (failures.length > 0)
      return new MessageError(
        'ERR_MESSAGE_NO_HOST',
        `service '${sp.service}': no host could be reached (${failures.join('; ')})`,
      );
    return new MessageError(
      'ERR_MESSAGE_NO_HOST',
      `service '${sp.service}' has no live host${sp.table === undefined ? '' : ' in the route table'}`,
    );
  }
}

function closedError(): MessageError {
  return new MessageError('ERR_MESSAGE_CLOSED', 'client is closed');
}

function why(err: unknown): string {
  const e = err as NodeJS.ErrnoException;
  return e?.code !== undefined && !String(e.code).startsWith('ERR_MESSAGE')
    ? e.code
    : (e?.message ?? String(err));
}
