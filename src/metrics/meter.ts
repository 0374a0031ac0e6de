// The values one serving process holds, as plain numbers keyed by series: what a worker sends with
// its heartbeat and what the daemon merges. No prom-client here: workers never load it.
import { METRICS, type MetricDef, type MetricKey } from './catalog.js';

/** A histogram's counts per bucket (the catalog's bounds, then +Inf; not cumulative) and sum. */
export interface HistogramValue {
  counts: number[];
  sum: number;
}

/** Series keys are `name` or `name{"label":"value",...}` (JSON of the labels). */
export interface MetricSnapshot {
  /** Totals since the process started: they survive its exit (folded into the daemon's sums). */
  counters: Record<string, number>;
  /** Values now: dropped with the process. */
  gauges: Record<string, number>;
  /** Totals since the process started, like counters. */
  histograms: Record<string, HistogramValue>;
}

export type Labels = Readonly<Record<string, string>>;

export function seriesKey(name: string, labels?: Labels): string {
  return labels === undefined || Object.keys(labels).length === 0 ? name : `${name}${JSON.stringify(labels)}`;
}

export function parseSeriesKey(key: string): { name: string; labels: Record<string, string> } {
  const brace = key.indexOf('{');
  if (brace < 0) return { name: key, labels: {} };
  return { name: key.slice(0, brace), labels: JSON.parse(key.slice(brace)) as Record<string, string> };
}

export function emptySnapshot(): MetricSnapshot {
  return { counters: {}, gauges: {}, histograms: {} };
}

/** One process's metric values; collectors fill what is read at snapshot time. */
export class Meter {
  private readonly counters = new Map<string, number>();
  private readonly histograms = new Map<string, HistogramValue>();
  private readonly collectors: ((out: SnapshotWriter) => void)[] = [];

  /** Adds `n` to a counter. */
  add(metric: MetricKey, labels?: Labels, n = 1): void {
    const key = seriesKey(METRICS[metric].name, labels);
    this.counters.set(key, (this.counters.get(key) ?? 0) + n);
  }

  /** Records one observation (in the metric's unit) in a histogram. */
  observe(metric: MetricKey, value: number, labels?: Labels): void {
    const def: MetricDef = METRICS[metric];
    const bounds = def.buckets ?? [];
    const key = seriesKey(def.name, labels);
    let h = this.histograms.get(key);
    if (h === undefined) {
      h = { counts: new Array<number>(bounds.length + 1).fill(0), sum: 0 };
      this.histograms.set(key, h);
    }
    let i = 0;
    while (i < bounds.length && value > bounds[i]!) i++;
    h.counts[i] = (h.counts[i] ?? 0) + 1;
    h.sum += value;
  }

  /** `fn` writes values read at snapshot time (gauges, totals kept elsewhere). */
  collect(fn: (out: SnapshotWriter) => void): void {
    this.collectors.push(fn);
  }

  snapshot(): MetricSnapshot {
    const snap = emptySnapshot();
    for (const [k, v] of this.counters) snap.counters[k] = v;
    for (const [k, h] of this.histograms) snap.histograms[k] = { counts: [...h.counts], sum: h.sum };
    const writer = new SnapshotWriter(snap);
    for (const fn of this.collectors) fn(writer);
    return snap;
  }
}

/** What a collector writes: absolute values, added to what is there for the same series. */
export class SnapshotWriter {
  constructor(readonly snap: MetricSnapshot) {}

  counter(metric: MetricKey, value: number, labels?: Labels): void {
    const key = seriesKey(METRICS[metric].name, labels);
    this.snap.counters[key] = (this.snap.counters[key] ?? 0) + value;
  }

  gauge(metric: MetricKey, value: number, labels?: Labels): void {
    const key = seriesKey(METRICS[metric].name, labels);
    this.snap.gauges[key] = (this.snap.gauges[key] ?? 0) + value;
  }
}

/** Adds `from` into `into`: counters and histograms sum, gauges too unless `countersOnly`. */
export function addSnapshot(into: MetricSnapshot, from: MetricSnapshot, countersOnly = false): void {
  for (const [k, v] of Object.entries(from.counters)) into.counters[k] = (into.counters[k] ?? 0) + v;
  for (const [k, h] of Object.entries(from.histograms)) {
    const to = into.histograms[k];
    if (to === undefined || to.counts.length !== h.counts.length)
      into.histograms[k] = { counts: [...h.counts], sum: h.sum };
    else {
      for (let i = 0; i < h.counts.length; i++) to.counts[i] = (to.counts[i] ?? 0) + (h.counts[i] ?? 0);
      to.sum += h.sum;
    }
  }
  if (countersOnly) return;
  for (const [k, v] of Object.entries(from.gauges)) into.gauges[k] = (into.gauges[k] ?? 0) + v;
}

/** `a - b` for counters and histograms (what a late report adds to one already folded). */
export function subtractCounters(a: MetricSnapshot, b: MetricSnapshot): MetricSnapshot {
  const out = emptySnapshot();
  for (const [k, v] of Object.entries(a.counters)) {
    const d = v - (b.counters[k] ?? 0);
    if (d > 0) out.counters[k] = d;
  }
  for (const [k, h] of Object.entries(a.histograms)) {
    const old = b.histograms[k];
    if (old === undefined || old.counts.length !== h.counts.length) out.histograms[k] = h;
    else
      out.histograms[k] = { counts: h.counts.map((c, i) => c - (old.counts[i] ?? 0)), sum: h.sum - old.sum };
  }
  return out;
}

/** A snapshot from the wire, checked: anything malformed is dropped, key by key. */
export function readSnapshot(value: unknown): MetricSnapshot | undefined {
  if (typeof value !== 'object' || value === null) return undefined;
  const v = value as Partial<Record<keyof MetricSnapshot, unknown>>;
  const numbers = (o: unknown) => {
    const out: Record<string, number> = {};
    if (typeof o !== 'object' || o === null) return out;
    for (const [k, n] of Object.entries(o)) if (typeof n === 'number' && Number.isFinite(n)) out[k] = n;
    return out;
  };
  const histograms: Record<string, HistogramValue> = {};
  if (typeof v.histograms === 'object' && v.histograms !== null) {
    for (const [k, h] of Object.entries(v.histograms as Record<string, unknown>)) {
      if (typeof h !== 'object' || h === null) continue;
      const { counts, sum } = h as { counts?: unknown; sum?: unknown };
      if (!Array.isArray(counts) || typeof sum !== 'number') continue;
      if (counts.every((c): c is number => typeof c === 'number' && Number.isFinite(c)))
        histograms[k] = { counts, sum };
    }
  }
  return { counters: numbers(v.counters), gauges: numbers(v.gauges), histograms };
}
