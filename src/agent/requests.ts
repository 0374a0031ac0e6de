// The agent's request map: every request sent upstream under a sequence number of the agent's
// (unique among those in flight, across all upstream connections), with the local connection and
// seq it came with, a timer, and the connection it went out on. A request leaves the map exactly
// once — by its reply, its timeout, or the loss of its connection — so it is answered exactly once.

/** The local side of one request: where its answer goes. */
export interface Asker {
  /** Requests of this local connection in the map. */
  inFlight: number;
  /** The local connection has closed: an answer for it is dropped. */
  closed: boolean;
  /** Writes one frame to the local connection. */
  answer(msgid: number, body: Uint8Array, seq: number, flags: number): void;
}

export interface Pending<L> {
  /** The agent's seq, as sent upstream. */
  readonly upSeq: number;
  readonly asker: Asker;
  /** The seq the local process gave it, restored on the answer. */
  readonly localSeq: number;
  readonly msgid: number;
  /** The upstream connection it went out on. */
  readonly link: L;
  timer: NodeJS.Timeout | undefined;
}

/** A request waiting for an upstream connection to come up (none is, right now). */
export interface Parked {
  readonly asker: Asker;
  readonly localSeq: number;
  readonly msgid: number;
  readonly body: Buffer;
  /** Date.now() its timeout ends at: the time parked counts against the request's timeout. */
  readonly deadline: number;
  timer: NodeJS.Timeout | undefined;
}

export interface RequestMapOptions<L> {
  timeoutMs: number;
  maxInFlight: number;
  maxInFlightPerConn: number;
  /** The request timed out (already out of the map). */
  onTimeout(p: Pending<L>): void;
  /** A parked request timed out before any connection came up (already out of the queue). */
  onParkedTimeout(p: Parked): void;
  /** The first upstream seq handed out (default 1; tests start near the wrap). */
  firstSeq?: number;
}

const MAX_SEQ = 0xffffffff;

export class RequestMap<L> {
  private readonly bySeq = new Map<number, Pending<L>>();
  private readonly byLink = new Map<L, Set<Pending<L>>>();
  /** Requests waiting for a connection, oldest first. */
  private readonly parked = new Set<Parked>();
  private nextSeq = 1;

  constructor(private readonly opts: RequestMapOptions<L>) {
    this.nextSeq = opts.firstSeq ?? 1;
  }

  /** Requests in flight (sent upstream or parked), all connections. */
  get size(): number {
    return this.bySeq.size + this.parked.size;
  }

  /** Requests parked, waiting for a connection. */
  get parkedCount(): number {
    return this.parked.size;
  }

  /** Holds a request until a connection is up (unpark), or its timeout (onParkedTimeout). */
  park(asker: Asker, localSeq: number, msgid: number, body: Buffer): void {
    const p: Parked = {
      asker,
      localSeq,
      msgid,
      body,
      deadline: Date.now() + this.opts.timeoutMs,
      timer: undefined,
    };
    p.timer = setTimeout(() => {
      if (this.unparkOne(p)) this.opts.onParkedTimeout(p);
    }, this.opts.timeoutMs);
    this.parked.add(p);
    asker.inFlight++;
  }

  /** The oldest parked request, out of the queue (its asker's count too: add() counts it again). */
  unpark(): Parked | undefined {
    const first = this.parked.values().next();
    if (first.done) return undefined;
    this.unparkOne(first.value);
    return first.value;
  }

  private unparkOne(p: Parked): boolean {
    if (!this.parked.delete(p)) return false;
    clearTimeout(p.timer);
    p.asker.inFlight--;
    return true;
  }

  /** Why `asker` may not send one more now ('busy: ...'), or undefined. */
  refusal(asker: Asker): string | undefined {
    if (asker.inFlight >= this.opts.maxInFlightPerConn)
      return `busy: ${asker.inFlight} requests of this connection in flight (--max-in-flight-per-conn ${this.opts.maxInFlightPerConn})`;
    if (this.size >= this.opts.maxInFlight)
      return `busy: ${this.size} requests in flight in the agent (--max-in-flight ${this.opts.maxInFlight})`;
    return undefined;
  }

  /**
   * Enters a request (the caller checked refusal()) and starts its timer, `timeoutMs` (default the
   * configured one; less for a request that was parked); returns it with its upstream seq.
   */
  add(asker: Asker, localSeq: number, msgid: number, link: L, timeoutMs = this.opts.timeoutMs): Pending<L> {
    const p: Pending<L> = { upSeq: this.allocate(), asker, localSeq, msgid, link, timer: undefined };
    p.timer = setTimeout(
      () => {
        if (this.remove(p)) this.opts.onTimeout(p);
      },
      Math.max(1, timeoutMs),
    );
    this.bySeq.set(p.upSeq, p);
    let set = this.byLink.get(link);
    if (set === undefined) {
      set = new Set();
      this.byLink.set(link, set);
    }
    set.add(p);
    asker.inFlight++;
    return p;
  }

  /** The reply to `upSeq` came: its request, out of the map, or undefined (late or unknown). */
  take(upSeq: number): Pending<L> | undefined {
    const p = this.bySeq.get(upSeq);
    if (p === undefined || !this.remove(p)) return undefined;
    return p;
  }

  /** A write upstream failed at once: the request never went out. */
  cancel(p: Pending<L>): boolean {
    return this.remove(p);
  }

  /** Requests in flight on `link`. */
  countOn(link: L): number {
    return this.byLink.get(link)?.size ?? 0;
  }

  /** The connection was lost: every request on it, out of the map, in the order they were sent. */
  takeLink(link: L): Pending<L>[] {
    const set = this.byLink.get(link);
    if (set === undefined) return [];
    const out = [...set];
    for (const p of out) this.remove(p);
    return out;
  }

  /** Every request, out of the map and the queue (the agent stops). */
  takeAll(): (Pending<L> | Parked)[] {
    const out: (Pending<L> | Parked)[] = [...this.bySeq.values()];
    for (const p of out as Pending<L>[]) this.remove(p);
    for (let p = this.unpark(); p !== undefined; p = this.unpark()) out.push(p);
    return out;
  }

  private remove(p: Pending<L>): boolean {
    if (this.bySeq.get(p.upSeq) !== p) return false;
    this.bySeq.delete(p.upSeq);
    clearTimeout(p.timer);
    const set = this.byLink.get(p.link);
    set?.delete(p);
    if (set?.size === 0) this.byLink.delete(p.link);
    p.asker.inFlight--;
    return true;
  }

  /** The next seq not in flight: 1..2^32-1, wrapping (0 means one-way on the wire). */
  private allocate(): number {
    for (;;) {
      const seq = this.nextSeq;
      this.nextSeq = seq === MAX_SEQ ? 1 : seq + 1;
      if (!this.bySeq.has(seq)) return seq;
    }
  }
}
