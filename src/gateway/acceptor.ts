// The daemon accepts every client connection itself and hands it to the gateway process with the
// fewest connections, so the limits (total, per IP) hold exactly across all gateway processes and
// a refused connection never reaches one. A refusal is an error notice (msgid -1, when the codec
// has msgids) followed by a close, and a throttled log line with the reason.
import type { Server, Socket } from 'node:net';
import type { Codec } from '../message/codecs/index.js';
import type { WorkerHandle } from '../supervisor/index.js';
import { ThrottledCount } from '../throttled-count.js';
import type { Logger } from '../types.js';
import { GATEWAY_MSGID } from './protocol.js';

export interface AcceptorLimits {
  /** Client connections in all; 0 = no limit. */
  maxConnections: number;
  /** Client connections from one remote address; 0 = no limit. */
  maxConnsPerIp: number;
}

interface GatewayEntry {
  readonly handle: WorkerHandle;
  accepting: boolean;
  conns: number;
  readonly perIp: Map<string, number>;
}

/** A refused client gets this long to read the notice before its socket is destroyed, ms. */
const REFUSE_LINGER_MS = 1000;

export class Acceptor {
  /** Connections held by gateway processes now. */
  total = 0;
  private readonly perIp = new Map<string, number>();
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
    for (const [ip, n] of g.perIp) this.release(ip, n);
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
      this.release(ip, 1);
    }
  }

  private release(ip: string, n: number): void {
    const left = (this.perIp.get(ip) ?? 0) - n;
    if (left > 0) this.perIp.set(ip, left);
    else this.perIp.delete(ip);
  }

  private accept(socket: Socket): void {
    const ip = socket.remoteAddress ?? 'unix';
    const port = socket.remotePort ?? 0;
    socket.on('error', () => undefined);
    const { maxConnections, maxConnsPerIp } = this.limits;
    if (maxConnections > 0 && this.total >= maxConnections) {
      this.refuse(socket, `too many connections (limit ${maxConnections})`, ip);
      return;
    }
    if (maxConnsPerIp > 0 && (this.perIp.get(ip) ?? 0) >= maxConnsPerIp) {
      this.refuse(socket, `too many connections from ${ip} (limit ${maxConnsPerIp})`, ip);
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
    g.conns++;
    g.perIp.set(ip, (g.perIp.get(ip) ?? 0) + 1);
    this.total++;
    this.perIp.set(ip, (this.perIp.get(ip) ?? 0) + 1);
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
