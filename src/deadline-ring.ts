// Many deadlines, one timer, for items that mostly expire in the order they were added (every
// request waits as long as the one before it): a ring in arrival order of (key, deadline) pairs
// in typed arrays. Adding is a store at the tail; removing clears the slot, and the head moves
// past cleared slots. No Set, Map, Timeout or object per item, and no reference to the item: the
// owner finds it by its key (a request id, a slot number). A ring holding object references was
// measured slower in the gateway process than the Set buckets it replaced (by about 1 µs per
// request: the garbage collector's work on an old array of young objects); one of numbers was
// faster than both.
//
// Out of arrival order: an item due more than `toleranceMs` before the latest in the ring (a
// retried request, a shorter timeout) waits in a small heap instead. A full ring whose live items
// are at most half of it moves the live items of its older half to that heap (one slow item does
// not hold every slot behind it), else it doubles. Tickets never change.
// An item expires no earlier than its deadline and at most `toleranceMs` (plus timer lateness) after;
// a run that finds items due in both the ring and the heap expires them in deadline order.

export interface DeadlineRingOptions {
  /** The clock deadlines are given on, ms (Date.now by default). */
  now?: () => number;
  /** How late an item may expire, ms (>= 1); the timer wakes at most once per this while items are due. */
  toleranceMs?: number;
  /** The timer does not keep the process alive. */
  unref?: boolean;
}

/** An item in the heap; `key` 0 once removed (dropped when due). */
interface Parked {
  due: number;
  key: number;
  ticket: number;
}

const MIN_SLOTS = 64;
/** Keys are whole numbers 1..2^32-1; 0 marks an empty slot. */
const EMPTY = 0;

export class DeadlineRing {
  private keys = new Uint32Array(MIN_SLOTS);
  /** Deadline of each slot, on the `now` clock, ms. */
  private dues = new Float64Array(MIN_SLOTS);
  private mask = MIN_SLOTS - 1;
  /** Slot tickets in arrival order: the oldest not passed yet, and the next one. */
  private head = 0;
  private tail = 0;
  /** Items in the ring (not the heap). */
  private inRing = 0;
  /** The latest deadline in the ring; -Infinity when it is empty. */
  private maxDue = Number.NEGATIVE_INFINITY;
  /** Items out of arrival order, by deadline (a binary heap), and by ticket. */
  private readonly heap: Parked[] = [];
  private readonly parked = new Map<number, Parked>();
  /** Tickets of items added to the heap directly, counting down from -1. */
  private lastEarly = 0;
  private timer: NodeJS.Timeout | undefined;
  /** When `timer` fires, on the `now` clock. */
  private timerAt = Number.POSITIVE_INFINITY;
  private readonly now: () => number;
  private readonly toleranceMs: number;
  private readonly unref: boolean;

  constructor(
    /** Called once for each key whose deadline passed and that was not removed. */
    private readonly onExpire: (key: number) => void,
    opts: DeadlineRingOptions = {},
  ) {
    this.now = opts.now ?? Date.now;
    this.toleranceMs = Math.max(1, opts.toleranceMs ?? 10);
    this.unref = opts.unref ?? false;
  }

  /** Items held (added, not yet removed or expired). */
  get size(): number {
    return this.inRing + this.parked.size;
  }

  /** Slots of the ring (held items and holes). */
  get capacity(): number {
    return this.mask + 1;
  }

  /** `key` (1..2^32-1) expires at `at`, on the `now` clock. Returns its ticket, for remove(). */
  add(key: number, at: number): number {
    if (!(key >= 1 && key <= 0xffffffff)) throw new RangeError(`deadline key must be 1..2^32-1, got ${key}`);
    if (at < this.maxDue - this.toleranceMs) {
      this.lastEarly = this.lastEarly <= Number.MIN_SAFE_INTEGER ? -1 : this.lastEarly - 1;
      this.park({ due: at, key, ticket: this.lastEarly });
      return this.lastEarly;
    }
    if (at > this.maxDue) this.maxDue = at;
    if (this.tail - this.head > this.mask) this.makeRoom();
    const slot = this.tail & this.mask;
    this.keys[slot] = key;
    this.dues[slot] = at;
    this.inRing++;
    if (at < this.timerAt) this.arm(at);
    return this.tail++;
  }

  /** The item of `ticket` and `key` is settled: it never expires. A no-op when not held. */
  remove(ticket: number, key: number): void {
    if (ticket >= this.head && ticket < this.tail) {
      const keys = this.keys;
      const mask = this.mask;
      if (keys[ticket & mask] !== key) return;
      keys[ticket & mask] = EMPTY;
      this.inRing--;
      while (this.head < this.tail && keys[this.head & mask] === EMPTY) this.head++;
      if (this.head === this.tail) this.maxDue = Number.NEGATIVE_INFINITY;
      return;
    }
    const p = this.parked.get(ticket);
    if (p === undefined || p.key !== key) return;
    this.parked.delete(ticket);
    p.key = EMPTY;
  }

  /** Drops every item and the timer. */
  clear(): void {
    this.keys.fill(EMPTY);
    this.head = this.tail = this.inRing = 0;
    this.maxDue = Number.NEGATIVE_INFINITY;
    this.heap.length = 0;
    this.parked.clear();
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    this.timerAt = Number.POSITIVE_INFINITY;
  }

  /** Expires every item due by now (what the timer does), then arms the timer for the next one. */
  runDue(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    this.timerAt = Number.POSITIVE_INFINITY;
    const now = this.now();
    // In deadline order across the ring and the heap (a late timer finds both due). onExpire may
    // add and remove items: every step reads both afresh.
    for (;;) {
      while (this.head < this.tail && this.keys[this.head & this.mask] === EMPTY) this.head++;
      // Heap entries of removed items are dropped without waking up for them.
      while (this.heap.length > 0 && this.heap[0]!.key === EMPTY) this.unpark();
      const ringDue = this.head < this.tail ? this.dues[this.head & this.mask]! : Number.POSITIVE_INFINITY;
      const heapDue = this.heap.length > 0 ? this.heap[0]!.due : Number.POSITIVE_INFINITY;
      if (ringDue <= heapDue) {
        if (ringDue > now) break;
        const slot = this.head & this.mask;
        const key = this.keys[slot]!;
        this.keys[slot] = EMPTY;
        this.inRing--;
        this.head++;
        this.onExpire(key);
      } else {
        if (heapDue > now) break;
        const p = this.unpark();
        this.parked.delete(p.ticket);
        this.onExpire(p.key);
      }
    }
    if (this.head === this.tail) this.maxDue = Number.NEGATIVE_INFINITY;
    let next = Number.POSITIVE_INFINITY;
    if (this.head < this.tail) next = this.dues[this.head & this.mask]!;
    if (this.heap.length > 0) next = Math.min(next, this.heap[0]!.due);
    if (next !== Number.POSITIVE_INFINITY) this.arm(Math.max(next, now + this.toleranceMs));
  }

  private readonly fire = (): void => {
    this.timer = undefined;
    this.runDue();
  };

  private arm(at: number): void {
    if (this.timer) clearTimeout(this.timer);
    this.timerAt = at;
    this.timer = setTimeout(this.fire, Math.max(1, Math.ceil(at - this.now())));
    if (this.unref) this.timer.unref();
  }

  /** The ring is full: its older half's live items go to the heap when it is at most half live, else it doubles. */
  private makeRoom(): void {
    const size = this.mask + 1;
    if (this.inRing * 2 <= size) {
      const end = this.head + size / 2;
      for (let t = this.head; t < end; t++) {
        const slot = t & this.mask;
        const key = this.keys[slot]!;
        if (key === EMPTY) continue;
        this.keys[slot] = EMPTY;
        this.inRing--;
        this.park({ due: this.dues[slot]!, key, ticket: t });
      }
      this.head = end;
      while (this.head < this.tail && this.keys[this.head & this.mask] === EMPTY) this.head++;
      return;
    }
    const next = size * 2;
    const keys = new Uint32Array(next);
    const dues = new Float64Array(next);
    for (let t = this.head; t < this.tail; t++) {
      keys[t & (next - 1)] = this.keys[t & this.mask]!;
      dues[t & (next - 1)] = this.dues[t & this.mask]!;
    }
    this.keys = keys;
    this.dues = dues;
    this.mask = next - 1;
  }

  private park(p: Parked): void {
    this.parked.set(p.ticket, p);
    const h = this.heap;
    let i = h.length;
    h.push(p);
    while (i > 0) {
      const up = (i - 1) >> 1;
      if (h[up]!.due <= p.due) break;
      h[i] = h[up]!;
      i = up;
    }
    h[i] = p;
    if (p.due < this.timerAt) this.arm(p.due);
  }

  private unpark(): Parked {
    const h = this.heap;
    const top = h[0]!;
    const last = h.pop()!;
    if (h.length > 0) {
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        if (l >= h.length) break;
        const r = l + 1;
        const c = r < h.length && h[r]!.due < h[l]!.due ? r : l;
        if (h[c]!.due >= last.due) break;
        h[i] = h[c]!;
        i = c;
      }
      h[i] = last;
    }
    return top;
  }
}

/** What DeadlineSlots keeps in its items: set by add(); `deadlineKey` 0 when not held. */
export interface Deadlined {
  deadlineKey: number;
  deadlineTicket: number;
}

/**
 * A DeadlineRing for objects: each held item has a small key (its place in a table with a free
 * list, so keys stay as few as the items held at once). For items counted in tens or hundreds at
 * a time (a worker's running handlers, connect attempts); a request table uses the ring with its
 * own ids.
 */
export class DeadlineSlots<T extends Deadlined> {
  private readonly ring: DeadlineRing;
  /** Items by key; key 0 is never used. */
  private readonly items: (T | undefined)[] = [undefined];
  private readonly free: number[] = [];

  constructor(onExpire: (item: T) => void, opts?: DeadlineRingOptions) {
    this.ring = new DeadlineRing((key) => {
      const item = this.items[key];
      if (item === undefined) return;
      this.release(item);
      onExpire(item);
    }, opts);
  }

  /** Items held. */
  get size(): number {
    return this.ring.size;
  }

  /** `item` (not held already) expires at `at`, on the ring's clock. */
  add(item: T, at: number): void {
    let key = this.free.pop();
    if (key === undefined) {
      key = this.items.length;
      this.items.push(item);
    } else this.items[key] = item;
    item.deadlineKey = key;
    item.deadlineTicket = this.ring.add(key, at);
  }

  /** `item` is settled: it never expires. A no-op when not held. */
  remove(item: T): void {
    const key = item.deadlineKey;
    if (key === 0 || this.items[key] !== item) return;
    this.ring.remove(item.deadlineTicket, key);
    this.release(item);
  }

  /** Expires what is due now (what the timer does). */
  runDue(): void {
    this.ring.runDue();
  }

  private release(item: T): void {
    this.items[item.deadlineKey] = undefined;
    this.free.push(item.deadlineKey);
    item.deadlineKey = 0;
  }
}
