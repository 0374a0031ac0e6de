// IOMP -c N workers all accept from one shared socket, and the kernel hands a new connection to
// whichever worker asks first: fast, but a burst can land on one worker. FairShare keeps the
// spread even: each worker stops accepting while it holds more than the average plus a slack,
// so the kernel gives the next connections to the others, and it accepts again once it is back
// under the limit. The cost is a few IPC messages when the spread drifts, none per connection.
import type { WorkerHandle } from '../supervisor/supervisor.js';
import type { ToWorker } from '../worker/messages.js';

export interface FairShareOptions {
  /** Connections one worker may hold (its share of --max-connections); 0 = no cap. */
  perWorkerMax: number;
  /** False: never ask a worker to stop accepting (unix sockets: re-listening would leak a handle). */
  enabled: boolean;
}

/** A worker may hold this many connections more than the average (at least). */
const MIN_SLACK = 4;

/**
 * The limit for `loads` (open connections per accepting worker); null = no limit. A worker at
 * its cap stops accepting while another has room; once every worker is full, all accept again
 * and close the excess at once.
 */
export function fairLimit(loads: readonly number[], perWorkerMax: number): number | null {
  if (loads.length < 2) return null;
  if (perWorkerMax > 0 && loads.every((l) => l >= perWorkerMax)) return null;
  const total = loads.reduce((a, b) => a + b, 0);
  const share = Math.ceil(total / loads.length);
  const limit = share + Math.max(MIN_SLACK, Math.ceil(share / 8));
  return perWorkerMax > 0 ? Math.min(limit, perWorkerMax) : limit;
}

export class FairShare {
  private readonly loads = new Map<WorkerHandle, { active: number; listening: boolean }>();
  private sent: number | null = null;

  constructor(private readonly opts: FairShareOptions) {}

  /** Open connections reported by the accepting workers (lags by up to LOAD_REPORT_MS). */
  get connections(): number {
    let n = 0;
    for (const l of this.loads.values()) n += l.active;
    return n;
  }

  add(w: WorkerHandle): void {
    this.loads.set(w, { active: 0, listening: true });
    this.update(true);
  }

  remove(w: WorkerHandle): void {
    if (this.loads.delete(w)) this.update(false);
  }

  report(w: WorkerHandle, active: number, listening: boolean): void {
    const l = this.loads.get(w);
    if (!l) return;
    l.active = Math.max(0, active);
    l.listening = listening;
    this.update(!listening);
  }

  private update(force: boolean): void {
    if (!this.opts.enabled) return;
    const limit = fairLimit(
      [...this.loads.values()].map((l) => l.active),
      this.opts.perWorkerMax,
    );
    // Small moves of the average are not worth a message to every worker, unless one waits.
    const moved =
      limit === null || this.sent === null
        ? limit !== this.sent
        : Math.abs(limit - this.sent) >= MIN_SLACK / 2;
    if (!force && !moved) return;
    this.sent = limit;
    const msg: ToWorker = { tdm: 'limit', n: limit };
    for (const w of this.loads.keys()) w.send(msg).catch(() => undefined);
  }
}
