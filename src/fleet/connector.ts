// Plain TCP to a service by name: connect() picks a host as MessageClient's service mode does
// (strategy + passive Lars health over the route table's live hosts) and returns the connected
// socket. A failed or timed-out connect is reported to health and the next host tried; a connected
// socket counts as one running call until it closes, and an error on it is reported too.
import { isIP, connect as netConnect, type Socket } from 'node:net';
import { type ConnectionOptions, connect as tlsConnect } from 'node:tls';
import type { HostPool, PoolHost } from '../balance/host-pool.js';
import { ConnectError } from '../errors.js';
import { defaultLogger } from '../message/default-logger.js';
import type { Logger } from '../types.js';
import {
  checkServiceDiscovery,
  openServicePool,
  type ServiceDiscovery,
  type ServicePool,
} from './service-pool.js';

export interface ServiceConnectorOptions extends ServiceDiscovery {
  /** Ms for one connect to complete. Default 5000. */
  connectTimeout?: number;
  /** Further hosts tried when a connect fails. Default 2. */
  retries?: number;
  /** TLS to every host (node's tls.connect options, or true); default: TLS where the route entry says so. */
  tls?: true | ConnectionOptions;
  /** TCP_NODELAY. Default true. */
  noDelay?: boolean;
  logger?: Logger;
}

/** Thrown by connect() when the service has no live host, or none could be connected to. */
export class NoHostError extends ConnectError {
  override name = 'NoHostError';
}

export class ServiceConnector {
  private closed = false;

  private constructor(
    private readonly sp: ServicePool,
    private readonly opts: ServiceConnectorOptions,
  ) {}

  /** Opens the host source (with discovery: once the route table's current entries are in). */
  static async open(opts: ServiceConnectorOptions): Promise<ServiceConnector> {
    checkServiceDiscovery(opts, 'ServiceConnector');
    const logger = opts.logger ?? defaultLogger('service-connector');
    return new ServiceConnector(await openServicePool(opts, logger), opts);
  }

  get service(): string {
    return this.sp.service;
  }

  /** The hosts, their health and outcome counts. */
  get pool(): HostPool {
    return this.sp.pool;
  }

  /** A socket connected to a host of the service (TLS: past the handshake). Rejects with NoHostError. */
  async connect(): Promise<Socket> {
    if (this.closed) throw new NoHostError(`service '${this.sp.service}': the connector is closed`);
    const pool = this.sp.pool;
    const tried = new Set<string>();
    const failures: string[] = [];
    while (tried.size <= (this.opts.retries ?? 2)) {
      const host = pool.pick({ exclude: tried });
      if (host === undefined) break;
      tried.add(host.id);
      try {
        const socket = await this.dial(host);
        pool.report(host.id, 'ok');
        this.track(host, socket);
        return socket;
      } catch (err) {
        const e = err as NodeJS.ErrnoException;
        pool.report(host.id, e.code === 'ETIMEDOUT' ? 'timeout' : 'error');
        failures.push(`${host.id}: ${e.code ?? e.message}`);
      }
    }
    throw new NoHostError(
      failures.length > 0
        ? `service '${this.sp.service}': no host could be reached (${failures.join('; ')})`
        : `service '${this.sp.service}' has no live host${this.sp.table === undefined ? '' : ' in the route table'}`,
    );
  }

  /** Stops following the route table (open sockets are the caller's). */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.sp.close();
  }

  private dial(host: PoolHost): Promise<Socket> {
    const tls = this.opts.tls ?? (this.sp.tls(host.id) ? true : undefined);
    const timeoutMs = this.opts.connectTimeout ?? 5000;
    const target = { host: host.host, port: host.port };
    const socket: Socket = tls
      ? tlsConnect({
          ...target,
          ...(isIP(host.host) === 0 ? { servername: host.host } : {}),
          ...(tls === true ? {} : tls),
        })
      : netConnect(target);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        const err: NodeJS.ErrnoException = new Error(`connect timeout after ${timeoutMs} ms`);
        err.code = 'ETIMEDOUT';
        socket.destroy(err);
      }, timeoutMs);
      socket.once('error', (err) => {
        clearTimeout(timer);
        reject(err);
      });
      socket.once(tls ? 'secureConnect' : 'connect', () => {
        clearTimeout(timer);
        socket.removeAllListeners('error');
        if (this.opts.noDelay ?? true) socket.setNoDelay(true);
        resolve(socket);
      });
    });
  }

  private track(host: PoolHost, socket: Socket): void {
    const pool = this.sp.pool;
    pool.begin(host.id);
    let failed = false;
    socket.once('error', () => {
      failed = true;
    });
    socket.once('close', () => pool.end(host.id, failed ? 'error' : undefined));
  }
}
