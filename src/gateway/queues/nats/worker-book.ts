// A gateway's view of the NATS workers: which are alive (heartbeats), which retire, and which
// holds each of its requests. A gateway knows the worker of a request it addressed; one sent to
// the queue group it learns from the worker's ack. A request whose worker is gone is reported
// lost by the caller.

export class WorkerBook {
  /** Request id -> the worker holding it ('' = sent to the queue group, not acked yet). */
  private readonly sent = new Map<number, string>();
  private readonly byWorker = new Map<string, Set<number>>();
  private readonly lastSeen = new Map<string, number>();
  /** Workers that announced their retirement: sent nothing new. */
  private readonly retiring = new Set<string>();

  /** Workers heard from and not taken for gone. */
  get live(): number {
    return this.lastSeen.size;
  }

  heartbeat(worker: string): void {
    this.lastSeen.set(worker, Date.now());
  }

  retire(worker: string): void {
    this.retiring.add(worker);
  }

  /**
   * The live, not retiring worker with the fewest requests of ours outstanding (each request
   * counts at once, so a burst spreads over idle workers); '' when none is known.
   */
  pick(): string {
    let best = '';
    let least = Number.POSITIVE_INFINITY;
    for (const w of this.lastSeen.keys()) {
      if (this.retiring.has(w)) continue;
      const n = this.byWorker.get(w)?.size ?? 0;
      if (n < least) {
        best = w;
        least = n;
      }
    }
    return best;
  }

  /** Request `id` was sent to `worker` ('' = the queue group). */
  sentTo(id: number, worker: string): void {
    this.sent.set(id, worker);
    if (worker !== '') this.holdsOf(worker).add(id);
  }

  /** `worker` took request `id` from the queue group (ignored once answered, or when addressed). */
  acked(id: number, worker: string): void {
    if (this.sent.get(id) !== '') return;
    this.sent.set(id, worker);
    this.holdsOf(worker).add(id);
    if (!this.lastSeen.has(worker)) this.lastSeen.set(worker, Date.now());
  }

  /** Request `id` is still with some worker (not answered, not lost). */
  outstanding(id: number): boolean {
    return this.sent.has(id);
  }

  /** Request `id` was answered. */
  forget(id: number): void {
    const w = this.sent.get(id);
    this.sent.delete(id);
    if (w) this.byWorker.get(w)?.delete(id);
  }

  /** Heard from and not taken for gone. */
  isLive(worker: string): boolean {
    return this.lastSeen.has(worker);
  }

  /**
   * `worker` is gone: returns the requests it held (they are forgotten), except those in `keep`,
   * which it still holds until they are answered or forgotten.
   */
  gone(worker: string, keep?: Set<number>): number[] {
    this.lastSeen.delete(worker);
    this.retiring.delete(worker);
    const ids = this.byWorker.get(worker);
    if (!ids || ids.size === 0) {
      this.byWorker.delete(worker);
      return [];
    }
    const out: number[] = [];
    for (const id of ids) {
      if (keep?.has(id)) continue;
      this.sent.delete(id);
      ids.delete(id);
      out.push(id);
    }
    if (ids.size === 0) this.byWorker.delete(worker);
    return out;
  }

  /** Workers silent for more than `ms`, with how long, ms. */
  silent(now: number, ms: number): [string, number][] {
    const out: [string, number][] = [];
    for (const [w, seen] of this.lastSeen) if (now - seen > ms) out.push([w, now - seen]);
    return out;
  }

  private holdsOf(worker: string): Set<number> {
    let set = this.byWorker.get(worker);
    if (!set) {
      set = new Set<number>();
      this.byWorker.set(worker, set);
    }
    return set;
  }
}
