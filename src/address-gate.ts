// The daemon process's one admission point for --max-conns-per-ip and --max-conn-rate-per-ip:
// one AddressLimiter for every connection the daemon or its workers accept, refusals counted and
// logged per peer (PeerLog: a flooding peer costs a line per second, not a line per connection),
// and the block of `tcpdaemon status`. Built only when a limit is on: with both off no connection
// path calls into it.
//
// The address counted is the TCP peer's at accept time, also with --proxy-protocol: the limit is
// enforced before anything is read, and a PROXY header is only read by the process that serves.
import type { Socket } from 'node:net';
import {
  AddressLimiter,
  type AddressLimits,
  type Admission,
  addressKey,
  isRefusal,
  limitsOn,
  type Refusal,
} from './address-limits.js';
import type { StatusSection } from './status.js';
import { PeerLog, ThrottledCount } from './throttled-count.js';
import type { Logger } from './types.js';

export type { AddressLimits, Admission, Refusal };
export { isRefusal };

const REFUSED_MSG: Record<Refusal, string> = {
  connections: 'connection refused: --max-conns-per-ip reached',
  rate: 'connection refused: --max-conn-rate-per-ip reached',
};

export class AddressGate {
  /** Connections refused since the start, by reason. */
  readonly refused = { connections: 0, rate: 0 };
  private readonly limiter: AddressLimiter;
  private readonly peerLog: PeerLog;
  private readonly tableFull: ThrottledCount;
  /** Counted connections per holder (a worker), so that its exit releases what it held. */
  private readonly held = new Map<unknown, Map<string, number>>();

  constructor(
    readonly limits: AddressLimits,
    logger: Logger,
    maxTracked?: number,
  ) {
    this.peerLog = new PeerLog(logger);
    this.tableFull = new ThrottledCount(
      logger,
      'address table full: a new address is served without a per-address count (--max-conns-per-ip), or the oldest rate bucket is dropped',
    );
    this.limiter = new AddressLimiter(limits, {
      maxTracked,
      onFull: (table) => this.tableFull.add({ table }),
    });
  }

  /**
   * Counts a new connection from `address` (undefined: the peer is gone already, nothing to count).
   * A refusal is counted here; the caller closes the socket (see refuse()).
   */
  admit(address: string | undefined): Admission {
    if (address === undefined) return 'free';
    const a = this.limiter.admit(address);
    if (isRefusal(a)) this.refused[a]++;
    return a;
  }

  /** A connection admit() answered 'counted' for has closed. */
  release(address: string): void {
    this.limiter.release(address);
  }

  /** admit(), remembering a counted connection under `holder` (a worker, a gateway process). */
  admitFor(holder: unknown, address: string | undefined): Admission {
    const a = this.admit(address);
    if (a !== 'counted') return a;
    const key = addressKey(address!);
    let mine = this.held.get(holder);
    if (mine === undefined) {
      mine = new Map();
      this.held.set(holder, mine);
    }
    mine.set(key, (mine.get(key) ?? 0) + 1);
    return a;
  }

  /** `holder`'s counted connection from `address` has closed (ignored if it held none). */
  releaseFor(holder: unknown, address: string): void {
    const mine = this.held.get(holder);
    const key = addressKey(address);
    const n = mine?.get(key);
    if (n === undefined) return;
    if (n > 1) mine!.set(key, n - 1);
    else {
      mine!.delete(key);
      if (mine!.size === 0) this.held.delete(holder);
    }
    this.limiter.release(key);
  }

  /** `holder` is gone: the connections it held went with it. */
  forget(holder: unknown): void {
    const mine = this.held.get(holder);
    if (mine === undefined) return;
    this.held.delete(holder);
    for (const [key, n] of mine) for (let i = 0; i < n; i++) this.limiter.release(key);
  }

  /** The refusal's log line: the first from a peer at once, then one count per second. */
  logRefusal(address: string, why: Refusal): void {
    const key = addressKey(address);
    this.peerLog.warn({
      peer: key,
      msg: REFUSED_MSG[why],
      fields: {
        remote: key,
        max: why === 'connections' ? this.limits.maxConnsPerIp : this.limits.maxConnRatePerIp,
      },
    });
  }

  /** Logs the refusal and closes the socket at once: no handler runs for it. */
  refuse(socket: Socket, address: string, why: Refusal): void {
    this.logRefusal(address, why);
    socket.destroy();
  }

  /** The block of `tcpdaemon status`. */
  section(): StatusSection {
    const { maxConnsPerIp, maxConnRatePerIp } = this.limits;
    const size = this.limiter.size;
    const limits = [
      maxConnsPerIp > 0 ? `--max-conns-per-ip ${maxConnsPerIp}` : undefined,
      maxConnRatePerIp > 0 ? `--max-conn-rate-per-ip ${maxConnRatePerIp}` : undefined,
    ].filter((s) => s !== undefined);
    return {
      title: 'address limits',
      summary: `${limits.join(', ')}: refused ${this.refused.connections} over the open-connection limit, ${this.refused.rate} over the rate; ${size.open} addresses with open connections, ${size.rate} with recent connects`,
      data: { maxConnsPerIp, maxConnRatePerIp, refused: { ...this.refused }, tracked: size },
    };
  }
}

/** The gate for these limits, or undefined when both are off (the connection paths then skip it). */
export function addressGateFor(limits: AddressLimits, logger: Logger): AddressGate | undefined {
  if (!limitsOn(limits)) return undefined;
  const { maxConnsPerIp, maxConnRatePerIp } = limits;
  return new AddressGate({ maxConnsPerIp, maxConnRatePerIp }, logger);
}

/**
 * Where the daemon process serves the connection itself (IOMP -c 1): admit, count until it closes,
 * or refuse at once.
 */
export function admitHere(gate: AddressGate, socket: Socket, serve: (socket: Socket) => void): void {
  const address = socket.remoteAddress;
  const a = gate.admit(address);
  if (isRefusal(a)) {
    gate.refuse(socket, address!, a);
    return;
  }
  if (a === 'counted') socket.once('close', () => gate.release(address!));
  serve(socket);
}
