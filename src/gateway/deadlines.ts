// Many deadlines, one timer: items are kept in buckets of `stepMs` by deadline (rounded up), the
// bucket ends in a min-heap, and a single timer fires for the earliest bucket. Adding and removing
// an item are a Set add and delete, with no Timeout object, closure or timer-list work per item;
// an item fires at most `stepMs` late.

export class Deadlines<T> {
  /** Bucket end (ms, a multiple of stepMs) -> items due by then. */
  private readonly buckets = new Map<number, Set<T>>();
  /** Bucket ends, smallest first (a binary heap; one entry per bucket). */
  private readonly heap: number[] = [];
  private timer: NodeJS.Timeout | undefined;
  /** When `timer` fires, ms. */
  private timerAt = Number.POSITIVE_INFINITY;

  constructor(
    /** Bucket width, ms (>= 1). */
    private readonly stepMs: number,
    /** Called once for each item whose deadline passed and that was not removed. */
    private readonly onExpire: (item: T) => void,
  ) {}

  /** Items held (added, not yet removed or expired). */
  get size(): number {
    let n = 0;
    for (const b of this.buckets.values()) n += b.size;
    return n;
  }

  /** `item` expires at `at` (Date.now() ms). Returns its bucket, for remove(). */
  add(item: T, at: number): Set<T> {
    const due = Math.ceil(at / this.stepMs) * this.stepMs;
    let bucket = this.buckets.get(due);
    if (bucket === undefined) {
      bucket = new Set();
      this.buckets.set(due, bucket);
      this.push(due);
      if (due < this.timerAt) this.arm(due);
    }
    bucket.add(item);
    return bucket;
  }

  /** `item` is settled: it never expires. */
  remove(item: T, bucket: Set<T>): void {
    bucket.delete(item);
  }

  /** Drops every item and the timer. */
  clear(): void {
    this.buckets.clear();
    this.heap.length = 0;
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    this.timerAt = Number.POSITIVE_INFINITY;
  }

  private arm(at: number): void {
    if (this.timer) clearTimeout(this.timer);
    this.timerAt = at;
    this.timer = setTimeout(this.fire, Math.max(1, at - Date.now()));
  }

  private readonly fire = (): void => {
    this.timer = undefined;
    this.timerAt = Number.POSITIVE_INFINITY;
    const now = Date.now();
    while (this.heap.length > 0 && this.heap[0]! <= now) {
      const due = this.pop();
      const bucket = this.buckets.get(due);
      this.buckets.delete(due);
      if (bucket) for (const item of bucket) this.onExpire(item);
    }
    // Buckets emptied by remove() are dropped here too, without waking up for them.
    while (this.heap.length > 0 && (this.buckets.get(this.heap[0]!)?.size ?? 0) === 0) {
      this.buckets.delete(this.pop());
    }
    if (this.heap.length > 0) this.arm(this.heap[0]!);
  };

  private push(v: number): void {
    const h = this.heap;
    let i = h.length;
    h.push(v);
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (h[p]! <= v) break;
      h[i] = h[p]!;
      i = p;
    }
    h[i] = v;
  }

  private pop(): number {
    const h = this.heap;
    const top = h[0]!;
    const last = h.pop()!;
    if (h.length > 0) {
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        if (l >= h.length) break;
        const r = l + 1;
        const c = r < h.length && h[r]! < h[l]! ? r : l;
        if (h[c]! >= last) break;
        h[i] = h[c]!;
        i = c;
      }
      h[i] = last;
    }
    return top;
  }
}
