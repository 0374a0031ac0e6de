// The daemon accepts every client connection itself and hands it to the gateway process with the
// fewest connections, so the limits (total, per address: --max-conns-per-ip and
// --max-conn-rate-per-ip through the daemon's AddressGate) hold exactly across all gateway
// processes and a refused connection never reaches one. A refusal is an error notice (msgid -1,
// when the codec has msgids) followed by a close, and a throttled log line with the reason.
import type { Server, Socket } from 'node:net';
import { type AddressGate, isRefusal } from '../address-gate.js';
import { addressKey } from '../address-limits.js';
import type { Codec } from '../message/codecs/index.js';
import type { WorkerHandle } from '../supervisor/index.js';
import { ThrottledCount } from '../throttled-count.js';
import type { Logger } from '../types.js';
import { GATEWAY_MSGID } from './protocol.js';

export interface AcceptorLimits {
  /** Client connections in all; 0 = no limit. */
  maxConnections: number;
  /** --max-conns-per-ip, --max-conn-rate-per-ip; undefined = both off. */
  addressGate: AddressGate | undefined;
}

interface GatewayEntry {
  readonly handle: WorkerHandle;
  accepting: boolean;
  conns: number;
  /** Its connections by remote address. */
  readonly perIp: Map<string, number>;
}

/** A refused client gets this long to read the notice before its socket is destroyed, ms. */
const REFUSE_LINGER_MS = 1000;

export class Acceptor {
  /** Connections held by gateway processes now. */
  total = 0;
  private readonly gateways = new Map<number, GatewayEntry>();
  private readonly refusals: ThrottledCount;

  constructor(
    private readonly codec: Codec,
    private readonly limits: AcceptorLimits,
    private readonly logger: Logger,
  ) {
    this.refusals = new ThrottledCount(logger, 'client connection refused');
  }

  /** A config reload: new limits for connections accepted from now on (open ones stay). */
  setLimits(limits: AcceptorLimits): void {
    Object.assign(this.limits, limits);
  }

  attach(server: Server): void {
    server.on('connection', (socket) => this.accept(socket));
  }

  /** A gateway process is ready: give it connections. */
  addGateway(handle: WorkerHandle): void {
    this.gateways.set(handle.spawnId, { handle, accepting: true, conns: 0, perIp: new Map() });
  }

  /** A gateway process retires: give it no more. */
  retireGateway(spawnId: number): void {
    const g = this.gateways.get(spawnId);
    if (g) g.accepting = false;
  }

  /** A gateway process is gone: its connections went with it. */
  removeGateway(spawnId: number): void {
    const g = this.gateways.get(spawnId);
    if (!g) return;
    this.gateways.delete(spawnId);
    this.limits.addressGate?.forget(spawnId);
    this.total -= g.conns;
  }

  /** A gateway process reports connections that closed. */
  closed(spawnId: number, remotes: string[]): void {
    const g = this.gateways.get(spawnId);
    if (!g) return;
    for (const ip of remotes) {
      const n = g.perIp.get(ip) ?? 0;
      if (n === 0) continue;
      if (n === 1) g.perIp.delete(ip);
      else g.perIp.set(ip, n - 1);
      g.conns--;
      this.total--;
      this.limits.addressGate?.releaseFor(spawnId, ip);
    }
  }

  private accept(socket: Socket): void {
    const ip = socket.remoteAddress ?? 'unix';
    const port = socket.remotePort ?? 0;
    socket.on('error', () => undefined);
    const { maxConnections, addressGate } = this.limits;
    if (maxConnections > 0 && this.total >= maxConnections) {
      this.refuse(socket, `too many connections (limit ${maxConnections})`, ip);
      return;
    }
    let target: GatewayEntry | undefined;
    for (const g of this.gateways.values()) {
      if (g.accepting && g.handle.state === 'ready' && (!target || g.conns < target.conns)) target = g;
    }
    if (!target) {
      this.refuse(socket, 'no gateway process is ready', ip);
      return;
    }
    const g = target;
    if (addressGate) {
      const a = addressGate.admitFor(g.handle.spawnId, socket.remoteAddress);
      if (isRefusal(a)) {
        const { maxConnsPerIp, maxConnRatePerIp } = addressGate.limits;
        const from = addressKey(ip);
        this.refuse(
          socket,
          a === 'connections'
            ? `too many connections from ${from} (limit ${maxConnsPerIp})`
            : `too many new connections from ${from} (limit ${maxConnRatePerIp} per second)`,
          ip,
        );
        return;
      }
    }
    g.conns++;
    g.perIp.set(ip, (g.perIp.get(ip) ?? 0) + 1);
    this.total++;
    g.handle.send({ gw: 'conn', address: ip, port }, socket).catch((err: Error) => {
      this.closed(g.handle.spawnId, [ip]);
      this.logger.warn(
        { remote: ip, err: err.message },
        'could not hand a connection to its gateway process',
      );
      socket.destroy();
    });
  }

  private refuse(socket: Socket, reason: string, ip: string): void {
    this.refusals.add({ remote: ip, reason });
    if (this.codec.hasMsgid) socket.end(this.codec.encode(GATEWAY_MSGID.error, Buffer.from(reason)));
    else socket.end();
    socket.resume();
    setTimeout(() => socket.destroy(), REFUSE_LINGER_MS).unref();
  }
}
