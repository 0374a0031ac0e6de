// The Prometheus text of a merged snapshot, through prom-client: each catalog metric with values
// becomes a registered metric object whose get() reads the snapshot; prom-client's default
// metrics describe the daemon process itself. Imported only with --metrics.
import { collectDefaultMetrics, type Metric, Registry } from 'prom-client';
import { DEFS_BY_NAME, type MetricDef } from './catalog.js';
import { type MetricSnapshot, parseSeriesKey } from './meter.js';

interface Sample {
  value: number;
  labels: Record<string, string | number>;
  metricName?: string;
}

/** One catalog metric as prom-client renders it (its get() is what a registry calls). */
class SnapshotMetric {
  readonly aggregator = 'sum';
  readonly name: string;
  readonly help: string;
  readonly type: string;

  constructor(
    private readonly def: MetricDef,
    private readonly samples: Sample[],
  ) {
    this.name = def.name;
    this.help = def.help;
    this.type = def.type;
  }

  get(): { name: string; help: string; type: string; aggregator: string; values: Sample[] } {
    return {
      name: this.def.name,
      help: this.def.help,
      type: this.def.type,
      aggregator: 'sum',
      values: this.samples,
    };
  }

  reset(): void {}
}

function histogramSamples(
  def: MetricDef,
  labels: Record<string, string>,
  counts: number[],
  sum: number,
): Sample[] {
  const bounds = def.buckets ?? [];
  const out: Sample[] = [];
  let cumulative = 0;
  for (let i = 0; i < counts.length; i++) {
    cumulative += counts[i]!;
    const le = i < bounds.length ? bounds[i]! : '+Inf';
    out.push({ metricName: `${def.name}_bucket`, labels: { ...labels, le }, value: cumulative });
  }
  out.push({ metricName: `${def.name}_sum`, labels, value: sum });
  out.push({ metricName: `${def.name}_count`, labels, value: cumulative });
  return out;
}

const MISNAMED_DEFAULTS = [
  'nodejs_active_handles_total',
  'nodejs_active_requests_total',
  'nodejs_active_resources_total',
];

export class Exposition {
  readonly contentType = Registry.PROMETHEUS_CONTENT_TYPE;
  private readonly defaults = new Registry();

  constructor() {
    collectDefaultMetrics({ register: this.defaults });
    // Gauges named like counters (promtool refuses them); the same counts stay, by type, in
    // nodejs_active_handles, nodejs_active_requests and nodejs_active_resources.
    for (const name of MISNAMED_DEFAULTS) this.defaults.removeSingleMetric(name);
  }

  /** The text of one scrape: the snapshot's series (catalog order), then the daemon process's. */
  async render(snap: MetricSnapshot): Promise<string> {
    const byName = new Map<string, Sample[]>();
    const push = (name: string, samples: Sample[]) => {
      const list = byName.get(name);
      if (list) list.push(...samples);
      else byName.set(name, samples);
    };
    for (const kind of ['counters', 'gauges'] as const) {
      for (const [key, value] of Object.entries(snap[kind])) {
        const { name, labels } = parseSeriesKey(key);
        if (DEFS_BY_NAME.get(name)?.type === (kind === 'counters' ? 'counter' : 'gauge'))
          push(name, [{ value, labels }]);
      }
    }
    for (const [key, h] of Object.entries(snap.histograms)) {
      const { name, labels } = parseSeriesKey(key);
      const def = DEFS_BY_NAME.get(name);
      if (def?.type === 'histogram' && h.counts.length === (def.buckets?.length ?? 0) + 1)
        push(name, histogramSamples(def, labels, h.counts, h.sum));
    }
    const registry = new Registry();
    for (const def of DEFS_BY_NAME.values()) {
      const samples = byName.get(def.name);
      if (samples === undefined) continue;
      samples.sort((a, b) => labelOrder(a).localeCompare(labelOrder(b)));
      registry.registerMetric(new SnapshotMetric(def, samples) as unknown as Metric);
    }
    const [ours, process] = await Promise.all([registry.metrics(), this.defaults.metrics()]);
    return `${ours}\n${process}`;
  }
}

/** Series of a histogram stay in bucket order (sorting would put le="10" before le="2.5"). */
function labelOrder(s: Sample): string {
  const { le: _le, ...rest } = s.labels;
  return JSON.stringify(rest);
}
