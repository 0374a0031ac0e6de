// A set of request ids (1..2^32-1) that allocates nothing while its size stays within what it has
// held before: open addressing in a Uint32Array (0 = empty), linear probing, and deletion by
// shifting the entries after it back (no tombstones, so no rebuilding). A built-in Set of numbers
// kept at a steady size by adds and deletes makes a new table every few hundred operations. On
// the gateway's request path (one add and one delete per request at each worker link) that was a
// measurable share of the gateway process's garbage (BENCHMARKS.md).

const MIN_BITS = 4;
const GOLDEN = 0x9e3779b1;

export class IdSet {
  private bits = MIN_BITS;
  private table = new Uint32Array(1 << MIN_BITS);
  private count = 0;

  get size(): number {
    return this.count;
  }

  /** Adds `id` (an integer 1..2^32-1). */
  add(id: number): void {
    if ((this.count + 1) * 2 > this.table.length) this.resize(this.bits + 1);
    const t = this.table;
    const mask = t.length - 1;
    for (let i = this.home(id); ; i = (i + 1) & mask) {
      const v = t[i]!;
      if (v === id) return;
      if (v === 0) {
        t[i] = id;
        this.count++;
        return;
      }
    }
  }

  has(id: number): boolean {
    const t = this.table;
    const mask = t.length - 1;
    for (let i = this.home(id); ; i = (i + 1) & mask) {
      const v = t[i]!;
      if (v === id) return true;
      if (v === 0) return false;
    }
  }

  /** Removes `id`; false when it was not there. */
  delete(id: number): boolean {
    const t = this.table;
    const mask = t.length - 1;
    let i = this.home(id);
    for (; ; i = (i + 1) & mask) {
      const v = t[i]!;
      if (v === id) break;
      if (v === 0) return false;
    }
    // Close the gap: an entry further along the run moves into it unless its home slot lies
    // (cyclically) after the gap and at or before where it sits.
    for (let j = (i + 1) & mask; ; j = (j + 1) & mask) {
      const v = t[j]!;
      if (v === 0) break;
      const k = this.home(v);
      const stays = i <= j ? i < k && k <= j : i < k || k <= j;
      if (stays) continue;
      t[i] = v;
      i = j;
    }
    t[i] = 0;
    this.count--;
    return true;
  }

  /** The ids, in no particular order (a new array). */
  values(): number[] {
    const out: number[] = [];
    for (const v of this.table) if (v !== 0) out.push(v);
    return out;
  }

  clear(): void {
    if (this.bits === MIN_BITS) this.table.fill(0);
    else this.table = new Uint32Array(1 << MIN_BITS);
    this.bits = MIN_BITS;
    this.count = 0;
  }

  /** Slot where `id` is looked for first: the top bits of a multiplicative hash. */
  private home(id: number): number {
    return Math.imul(id, GOLDEN) >>> (32 - this.bits);
  }

  private resize(bits: number): void {
    const old = this.table;
    this.bits = bits;
    this.table = new Uint32Array(1 << bits);
    this.count = 0;
    for (const v of old) if (v !== 0) this.add(v);
  }
}
