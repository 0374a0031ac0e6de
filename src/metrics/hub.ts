// The daemon's side of --metrics: the last values each worker sent with its heartbeat, merged with
// what workers that are gone had sent (so counters never go back when one exits or crashes), the
// supervisors' starts and exits, and the daemon process's own values. A scrape reads this merge:
// no scrape waits on, or lands on, one worker.
import type { ExitInfo, Supervisor, WorkerHandle } from '../supervisor/supervisor.js';
import {
  addSnapshot,
  emptySnapshot,
  type Meter,
  type MetricSnapshot,
  readSnapshot,
  SnapshotWriter,
  subtractCounters,
} from './meter.js';
import { meterRunner, processMeter } from './process-meter.js';

/** Exit causes as labels (a bounded set); a supervisor's reason maps onto one by its first word. */
const CAUSES: Readonly<Record<string, string>> = {
  crashed: 'crashed',
  hung: 'hung',
  'not ready': 'not_ready',
  reload: 'reload',
  recycle: 'recycle',
  stop: 'stop',
  // An IF process that served its one connection.
  taken: 'served',
};

export function exitCause(reason: string): string {
  const head = reason.split(':')[0]!.trim();
  return CAUSES[head] ?? 'other';
}

export class MetricsHub {
  /** The last values of each live worker. */
  private readonly live = new Map<WorkerHandle, MetricSnapshot>();
  /** What exited workers last sent, already in `retired` (a report after the exit adds its difference). */
  private readonly folded = new WeakMap<WorkerHandle, MetricSnapshot>();
  /** Counters and histograms of every worker that is gone. */
  private readonly retired = emptySnapshot();
  /** Watched supervisors, each with the prefix of its workers' label. */
  private readonly supervisors: { supervisor: Supervisor; prefix: string }[] = [];
  private readonly exits = new Map<string, number>();
  private local: Meter | undefined;
  private readonly collectors: ((out: SnapshotWriter) => void)[] = [];

  /** Reloads done (the daemon counts them). */
  reloads = 0;

  /** `prefix` goes before the slot number in the worker label (a daemon with two kinds of worker). */
  watch(supervisor: Supervisor, prefix = ''): void {
    this.supervisors.push({ supervisor, prefix });
    supervisor.on('metrics', (w, raw) => this.onValues(w, raw));
    supervisor.on('exit', (w, info) => this.onExit(w, info));
  }

  /** IOMP -c 1: the daemon process serves, its runner is metered here. */
  meterRunner(runner: Parameters<typeof meterRunner>[0]): void {
    this.local = processMeter({ totals: meterRunner(runner), worker: '0' });
  }

  /** The daemon's own meter (refusals it makes, frames of a command running in it); made on first use. */
  get daemonMeter(): Meter {
    this.local ??= processMeter({});
    return this.local;
  }

  /** Values read at each scrape (waiting connections, a command's own). */
  collect(fn: (out: SnapshotWriter) => void): void {
    this.collectors.push(fn);
  }

  private onValues(w: WorkerHandle, raw: unknown): void {
    const snap = readSnapshot(raw);
    if (snap === undefined) return;
    const before = this.folded.get(w);
    if (before !== undefined) {
      // Sent before the exit, read after it: only what it adds counts.
      addSnapshot(this.retired, subtractCounters(snap, before), true);
      this.folded.set(w, snap);
      return;
    }
    this.live.set(w, snap);
  }

  private onExit(w: WorkerHandle, info: ExitInfo): void {
    const cause = exitCause(info.reason);
    this.exits.set(cause, (this.exits.get(cause) ?? 0) + 1);
    const snap = this.live.get(w);
    this.live.delete(w);
    const last = snap ?? emptySnapshot();
    addSnapshot(this.retired, last, true);
    this.folded.set(w, last);
  }

  /** Everything merged: what a scrape shows. */
  snapshot(): MetricSnapshot {
    const out = emptySnapshot();
    addSnapshot(out, this.daemonMeter.snapshot());
    addSnapshot(out, this.retired, true);
    for (const snap of this.live.values()) addSnapshot(out, snap);
    const writer = new SnapshotWriter(out);
    let starts = 0;
    let ready = 0;
    let looping = 0;
    for (const { supervisor, prefix } of this.supervisors) {
      const st = supervisor.status();
      starts += st.started;
      looping += st.crashLooping.length;
      ready += supervisor.readyWorkers().length;
      for (const w of st.workers)
        if (w.rssBytes !== undefined)
          writer.gauge('workerRss', w.rssBytes, { worker: `${prefix}${w.workerId}` });
    }
    if (this.supervisors.length === 0) writer.gauge('workerRss', process.memoryUsage.rss(), { worker: '0' });
    writer.counter('workerStarts', starts);
    writer.gauge('workersReady', ready);
    writer.gauge('crashLooping', looping);
    for (const cause of Object.values(CAUSES))
      writer.counter('workerExits', this.exits.get(cause) ?? 0, { cause });
    writer.counter('workerExits', this.exits.get('other') ?? 0, { cause: 'other' });
    writer.counter('reloads', this.reloads);
    for (const fn of this.collectors) fn(writer);
    return out;
  }
}
