// Store-and-forward for the embedded (ipc) queue: messages for a named client that is offline are
// kept, in order, bounded per name (count), in total (bytes) and in time (TTL), and handed over
// when the name registers again. (NATS keeps them in JetStream instead: queues/nats.ts.)

export interface StoreLimits {
  /** Messages kept per name; one more is refused. */
  maxPerName: number;
  /** A message older than this is dropped unseen, ms. */
  ttlMs: number;
  /** Body bytes kept across all names; a message that would pass it is refused. */
  maxBytes: number;
}

export interface StoredMessage {
  msgid: number;
  body: Buffer;
  /** Date.now() when stored, ms. */
  storedAt: number;
}

export type PutResult = { ok: true } | { ok: false; reason: string };

export class MessageStore {
  /** Messages dropped because their TTL passed. */
  expired = 0;
  private readonly byName = new Map<string, StoredMessage[]>();
  private bytes = 0;
  private count = 0;

  constructor(
    private readonly limits: StoreLimits,
    private readonly now: () => number = Date.now,
  ) {}

  /** Messages held across all names. */
  get size(): number {
    return this.count;
  }

  /** Body bytes held. */
  get heldBytes(): number {
    return this.bytes;
  }

  put(name: string, msgid: number, body: Buffer): PutResult {
    const queue = this.fresh(name);
    if (queue.length >= this.limits.maxPerName) {
      return { ok: false, reason: `store for '${name}' is full (${this.limits.maxPerName} messages)` };
    }
    if (this.bytes + body.length > this.limits.maxBytes) {
      return { ok: false, reason: `store is full (${this.limits.maxBytes} bytes)` };
    }
    // A copy: the body may be a view into a larger network buffer we must not keep alive.
    queue.push({ msgid, body: Buffer.from(body), storedAt: this.now() });
    this.byName.set(name, queue);
    this.bytes += body.length;
    this.count++;
    return { ok: true };
  }

  /** Removes and returns what is held for `name`, oldest first, without expired ones. */
  take(name: string): StoredMessage[] {
    const queue = this.fresh(name);
    this.byName.delete(name);
    for (const m of queue) this.forget(m);
    return queue;
  }

  /** Drops every expired message; returns how many. Call now and then. */
  sweep(): number {
    let dropped = 0;
    for (const name of [...this.byName.keys()]) {
      const before = this.byName.get(name)!.length;
      const left = this.fresh(name);
      dropped += before - left.length;
      if (left.length === 0) this.byName.delete(name);
    }
    return dropped;
  }

  /** The name's queue without expired messages at its head (queues are in storing order). */
  private fresh(name: string): StoredMessage[] {
    const queue = this.byName.get(name);
    if (!queue) return [];
    const cutoff = this.now() - this.limits.ttlMs;
    let n = 0;
    while (n < queue.length && queue[n]!.storedAt <= cutoff) this.forget(queue[n++]!);
    if (n > 0) {
      this.expired += n;
      queue.splice(0, n);
    }
    return queue;
  }

  private forget(m: StoredMessage): void {
    this.bytes -= m.body.length;
    this.count--;
  }
}
