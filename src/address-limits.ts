// Per-client-address limits, counted where connections are accepted: open connections from one
// address (--max-conns-per-ip) and new connections per second from one address
// (--max-conn-rate-per-ip: a token bucket holding one second's worth, at least 1, so a client may
// open that many at once and then that many per second). IPv4-mapped IPv6 addresses
// (::ffff:1.2.3.4) count as their IPv4 address.
//
// Memory is bounded: `open` has one entry per address with open connections, removed when its
// count drops to 0; `buckets` one per address that connected within the last refill time
// (burst / rate seconds: an older bucket is full again, the same as none), kept in the order of
// their last use so that expired ones leave from the front, a few per admit. Each table holds at
// most `maxTracked` addresses. Past it, the bucket used longest ago is dropped (its address gets a
// full burst again), and a new address's open connections are not counted: it is served
// ('free', nothing to release) and reported through `onFull`.

export interface AddressLimits {
  /** Open connections from one address; 0 = no limit. */
  maxConnsPerIp: number;
  /** New connections per second from one address; 0 = no limit. */
  maxConnRatePerIp: number;
}

/**
 * 'counted': admitted and counted as open; release() it when it closes. 'free': admitted, nothing
 * to release. 'connections' / 'rate': refused (over --max-conns-per-ip / --max-conn-rate-per-ip);
 * nothing counted.
 */
export type Admission = 'counted' | 'free' | 'connections' | 'rate';

export type Refusal = 'connections' | 'rate';

export function isRefusal(a: Admission): a is Refusal {
  return a === 'connections' || a === 'rate';
}

/** Addresses each table tracks at most (about 10 MB for both tables full). */
export const MAX_TRACKED_ADDRESSES = 65_536;

interface Bucket {
  /** Connections this address may start now. */
  tokens: number;
  /** When `tokens` was last brought up to date (now() ms). */
  at: number;
}

/** The address as counted: an IPv4-mapped IPv6 address as its IPv4 address. */
export function addressKey(address: string): string {
  return address.startsWith('::ffff:') && address.includes('.') ? address.slice(7) : address;
}

/** True when either limit is on. */
export function limitsOn(limits: AddressLimits): boolean {
  return limits.maxConnsPerIp > 0 || limits.maxConnRatePerIp > 0;
}

export interface AddressLimiterOptions {
  /** Default MAX_TRACKED_ADDRESSES. */
  maxTracked?: number;
  /** ms, monotonic; default performance.now. */
  now?: () => number;
  /** A table was full: 'open' (a new address went uncounted) or 'rate' (the oldest bucket was dropped). */
  onFull?: (table: 'open' | 'rate') => void;
}

export class AddressLimiter {
  private readonly open = new Map<string, number>();
  /** Oldest use first (each use moves its bucket to the end). */
  private readonly buckets = new Map<string, Bucket>();
  private readonly burst: number;
  /** A bucket unused this long is full again, ms. */
  private readonly refillMs: number;
  private readonly maxTracked: number;
  private readonly now: () => number;

  constructor(
    readonly limits: AddressLimits,
    private readonly opts: AddressLimiterOptions = {},
  ) {
    const rate = limits.maxConnRatePerIp;
    this.burst = Math.max(1, rate);
    this.refillMs = rate > 0 ? (this.burst / rate) * 1000 : 0;
    this.maxTracked = opts.maxTracked ?? MAX_TRACKED_ADDRESSES;
    this.now = opts.now ?? (() => performance.now());
  }

  /** Counts a new connection from `address`, or says why it is refused (then nothing is counted). */
  admit(address: string): Admission {
    const key = addressKey(address);
    const { maxConnsPerIp, maxConnRatePerIp } = this.limits;
    const open = maxConnsPerIp > 0 ? (this.open.get(key) ?? 0) : 0;
    if (maxConnsPerIp > 0 && open >= maxConnsPerIp) return 'connections';
    if (maxConnRatePerIp > 0 && !this.take(key)) return 'rate';
    if (maxConnsPerIp === 0) return 'free';
    if (open === 0 && this.open.size >= this.maxTracked) {
      this.opts.onFull?.('open');
      return 'free';
    }
    this.open.set(key, open + 1);
    return 'counted';
  }

  /** A connection admit() answered 'counted' for has closed. */
  release(address: string): void {
    const key = addressKey(address);
    const n = this.open.get(key);
    if (n === undefined) return;
    if (n > 1) this.open.set(key, n - 1);
    else this.open.delete(key);
  }

  /** Addresses with open connections counted; addresses with a bucket not yet full again. */
  get size(): { open: number; rate: number } {
    return { open: this.open.size, rate: this.buckets.size };
  }

  /** Open connections counted for `address`. */
  openFrom(address: string): number {
    return this.open.get(addressKey(address)) ?? 0;
  }

  /** Takes a token from `key`'s bucket; false when it has none. */
  private take(key: string): boolean {
    const t = this.now();
    this.expire(t);
    const rate = this.limits.maxConnRatePerIp;
    let b = this.buckets.get(key);
    if (b === undefined) {
      if (this.buckets.size >= this.maxTracked) {
        const oldest = this.buckets.keys().next().value as string;
        this.buckets.delete(oldest);
        this.opts.onFull?.('rate');
      }
      b = { tokens: this.burst, at: t };
    } else {
      this.buckets.delete(key); // re-inserted below: last used goes last
      b.tokens = Math.min(this.burst, b.tokens + ((t - b.at) / 1000) * rate);
      b.at = t;
    }
    this.buckets.set(key, b);
    if (b.tokens < 1) return false;
    b.tokens -= 1;
    return true;
  }

  /** Drops the buckets that are full again (they are first: ordered by last use). */
  private expire(t: number): void {
    for (const [key, b] of this.buckets) {
      if (t - b.at < this.refillMs) return;
      this.buckets.delete(key);
    }
  }
}
