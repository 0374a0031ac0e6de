// Connect mode with --rate, one load thread's share, open loop: starts come due on a fixed
// schedule, this thread's part of the rate, whatever earlier cycles are doing; at most
// `connIds.length` cycles (this thread's part of --connections) are in flight. A start that
// comes due while that many are in flight is late: it waits, in order, for a cycle to end,
// and its latency still runs from the time it was due, so a server that falls behind shows
// as latency rather than as fewer samples (no coordinated omission). Starts still waiting
// when the run ends are counted as never started. No start comes due after `duration`.
import { ConnectCycle } from './connect-load.js';
import type { LoadEngine, LoadShare } from './engine.js';
import { PayloadPattern } from './payload.js';

export class PacedConnectLoad implements LoadEngine {
  private readonly pattern: PayloadPattern;
  /** Most cycles in flight at once. */
  private readonly cap: number;
  /** ms between two starts of this thread. */
  private readonly intervalMs: number;
  /** Offset of this thread's schedule, in intervals (0..1), so threads do not start in step. */
  private readonly phase: number;
  private readonly inFlight = new Set<ConnectCycle>();
  /** performance.now() ms of the start of the run, and of its end. */
  private t0 = 0;
  private endAt = 0;
  /** Starts come due so far; starts `started` .. `due - 1` wait for a free slot. */
  private due = 0;
  private started = 0;
  private running = true;
  private timer: NodeJS.Timeout | undefined;

  constructor(private readonly share: LoadShare) {
    const { rate, connections, size } = share.options;
    if (rate === undefined) throw new Error('PacedConnectLoad needs options.rate');
    this.pattern = new PayloadPattern(size);
    this.cap = share.connIds.length;
    this.intervalMs = 1000 / ((rate * this.cap) / connections);
    this.phase = share.connIds[0]! / connections;
  }

  start(): void {
    this.t0 = performance.now();
    this.endAt = this.t0 + this.share.options.duration * 1000;
    this.tick();
  }

  /** performance.now() ms at which start `k` is due. */
  private dueAt(k: number): number {
    return this.t0 + (k + this.phase) * this.intervalMs;
  }

  /** Brings every start due by now in, then sleeps until the next one. */
  private tick(): void {
    this.timer = undefined;
    if (!this.running) return;
    const now = performance.now();
    const { tally } = this.share;
    while (this.dueAt(this.due) <= now && this.dueAt(this.due) < this.endAt) {
      if (this.started < this.due || this.inFlight.size >= this.cap) tally.late += 1;
      this.due += 1;
      tally.due += 1;
      this.launchWaiting();
    }
    const next = this.dueAt(this.due);
    if (next < this.endAt) this.timer = setTimeout(() => this.tick(), next - performance.now());
  }

  /** Starts waiting starts, oldest first, while slots are free. */
  private launchWaiting(): void {
    const ids = this.share.connIds;
    while (this.running && this.started < this.due && this.inFlight.size < this.cap) {
      const k = this.started++;
      const body = this.pattern.body(ids[k % ids.length]!, Math.floor(k / ids.length));
      const cycle = new ConnectCycle(this.share, body, this.dueAt(k), () => {
        this.inFlight.delete(cycle);
        this.launchWaiting();
      });
      this.inFlight.add(cycle);
    }
  }

  async stop(): Promise<void> {
    this.running = false;
    clearTimeout(this.timer);
    this.share.tally.unstarted += this.due - this.started;
    const cycles = [...this.inFlight];
    this.inFlight.clear();
    await Promise.all(cycles.map((c) => c.stop()));
  }
}
