// Per-client-address limits, checked where connections are accepted: open connections from one
// address (--max-conns-per-ip) and new connections per second from one address
// (--max-conn-rate-per-ip, a token bucket that holds one second's worth). IPv4-mapped IPv6
// addresses count as their IPv4 address.
//
// Memory: one entry per address with open connections or a bucket not yet full again, so at most
// open connections + the addresses seen in the last second; idle entries are swept as admits come.

export interface AddressLimits {
  /** Open connections from one address; 0 = no limit. */
  maxPerAddress: number;
  /** New connections per second from one address; 0 = no limit. */
  ratePerAddress: number;
}

export type Refusal = 'connections' | 'rate';

interface Entry {
  open: number;
  /** Connections this address may still start now (rate limit). */
  tokens: number;
  /** ms: when `tokens` was last brought up to date. */
  at: number;
}

/** Admits between two sweeps of idle entries. */
const SWEEP_EVERY = 1024;

export function addressKey(address: string): string {
  return address.startsWith('::ffff:') && address.includes('.') ? address.slice(7) : address;
}

export function limitsActive(limits: AddressLimits): boolean {
  return limits.maxPerAddress > 0 || limits.ratePerAddress > 0;
}

export class AddressLimiter {
  private readonly entries = new Map<string, Entry>();
  private admits = 0;

  constructor(
    readonly limits: AddressLimits,
    private readonly now: () => number = Date.now,
  ) {}

  /** Counts a new connection from `address`, or says why it is refused (then nothing is counted). */
  admit(address: string): Refusal | undefined {
    const key = addressKey(address);
    const { maxPerAddress, ratePerAddress } = this.limits;
    const t = this.now();
    if (++this.admits % SWEEP_EVERY === 0) this.sweep(t);
    let e = this.entries.get(key);
    if (!e) {
      e = { open: 0, tokens: ratePerAddress, at: t };
      this.entries.set(key, e);
    }
    if (maxPerAddress > 0 && e.open >= maxPerAddress) return 'connections';
    if (ratePerAddress > 0) {
      e.tokens = Math.min(ratePerAddress, e.tokens + ((t - e.at) / 1000) * ratePerAddress);
      e.at = t;
      if (e.tokens < 1) return 'rate';
      e.tokens -= 1;
    }
    e.open++;
    return undefined;
  }

  /** A connection `admit` counted has closed. */
  release(address: string): void {
    const e = this.entries.get(addressKey(address));
    if (e && e.open > 0) e.open--;
  }

  /** Addresses tracked now. */
  get size(): number {
    return this.entries.size;
  }

  /** Open connections counted for `address`. */
  openFrom(address: string): number {
    return this.entries.get(addressKey(address))?.open ?? 0;
  }

  private sweep(t: number): void {
    const rate = this.limits.ratePerAddress;
    for (const [key, e] of this.entries) {
      if (e.open > 0) continue;
      const full = rate === 0 || e.tokens + ((t - e.at) / 1000) * rate >= rate;
      if (full) this.entries.delete(key);
    }
  }
}

/** The log line's words for a refusal. */
export function refusalReason(why: Refusal, limits: AddressLimits): string {
  return why === 'connections'
    ? `too many connections from this address (limit ${limits.maxPerAddress})`
    : `too many new connections per second from this address (limit ${limits.ratePerAddress})`;
}
