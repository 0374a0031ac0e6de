// Log-linear latency histogram in whole microseconds, mergeable across threads.
//
// Values below 2 * SUB are counted exactly; above, each power of two is split into SUB
// equal buckets, so a bucket's width is at most 1/SUB (1.6%) of its lower bound. The
// counts array has a fixed length, so histograms from different threads merge by adding
// arrays. Values above MAX_US are clamped to MAX_US (and `max` says so).

const SUB_BITS = 6;
const SUB = 1 << SUB_BITS; // sub-buckets per power of two
/** Largest value tracked exactly by bucket: 2^32 - 1 us, about 71 minutes. */
export const MAX_US = 0xffffffff;
const BUCKETS = SUB * (32 - SUB_BITS + 1);

/** What crosses a thread boundary (structured clone). */
export interface HistogramData {
  counts: Float64Array;
  count: number;
  /** us */
  min: number;
  /** us */
  max: number;
  /** us, for the mean */
  sum: number;
}

function bucketOf(us: number): number {
  if (us < 2 * SUB) return us;
  const shift = 31 - Math.clz32(us) - SUB_BITS;
  return SUB * shift + (us >>> shift);
}

/** Highest value (us) that falls into bucket `i`. */
function bucketHigh(i: number): number {
  if (i < 2 * SUB) return i;
  const shift = Math.floor(i / SUB) - 1;
  const top = i - SUB * shift;
  return (top + 1) * 2 ** shift - 1;
}

export class LatencyHistogram {
  private readonly counts = new Float64Array(BUCKETS);
  private n = 0;
  private lo = Number.POSITIVE_INFINITY;
  private hi = 0;
  private total = 0;

  get count(): number {
    return this.n;
  }

  /** Records one latency in microseconds (rounded, clamped to [0, MAX_US]). */
  record(us: number): void {
    const v = Math.min(MAX_US, Math.max(0, Math.round(us)));
    this.counts[bucketOf(v)]! += 1;
    this.n += 1;
    this.total += v;
    if (v < this.lo) this.lo = v;
    if (v > this.hi) this.hi = v;
  }

  /** Records a latency given in milliseconds (performance.now() differences). */
  recordMs(ms: number): void {
    this.record(ms * 1000);
  }

  merge(other: HistogramData): void {
    for (let i = 0; i < BUCKETS; i++) this.counts[i]! += other.counts[i] ?? 0;
    this.n += other.count;
    this.total += other.sum;
    if (other.count > 0) {
      this.lo = Math.min(this.lo, other.min);
      this.hi = Math.max(this.hi, other.max);
    }
  }

  /**
   * The value (us) at or below which a fraction `q` (0..1) of the recorded values lie:
   * the upper bound of the bucket holding that rank, never above the exact maximum.
   * 0 when empty.
   */
  quantile(q: number): number {
    if (this.n === 0) return 0;
    if (q >= 1) return this.hi;
    const rank = Math.max(1, Math.ceil(q * this.n));
    let seen = 0;
    for (let i = 0; i < BUCKETS; i++) {
      seen += this.counts[i]!;
      if (seen >= rank) return Math.max(this.lo, Math.min(this.hi, bucketHigh(i)));
    }
    return this.hi;
  }

  /** us; 0 when empty. */
  get min(): number {
    return this.n === 0 ? 0 : this.lo;
  }

  /** us; 0 when empty. */
  get max(): number {
    return this.hi;
  }

  /** us; 0 when empty. */
  get mean(): number {
    return this.n === 0 ? 0 : this.total / this.n;
  }

  toData(): HistogramData {
    return { counts: this.counts.slice(), count: this.n, min: this.min, max: this.hi, sum: this.total };
  }

  static fromData(data: HistogramData): LatencyHistogram {
    const h = new LatencyHistogram();
    h.merge(data);
    return h;
  }
}
