// IOMP -c N workers all accept from one shared socket, and the kernel hands a new connection to
// whichever worker asks first: fast, and even under steady churn, but a burst of long-lived
// connections can land on one worker (node's cluster round-robin skews the same way). FairShare
// gives each worker a ceiling: the load of the busiest other worker plus a slack (the larger of a
// fifth of the average and three times the square root of the total, at least 6). A worker at its
// ceiling stops accepting by itself, at once (no round trip), so the kernel hands the next
// connections to the others; it reports its load, the daemon raises the ceilings as the others
// catch up, and it accepts again. Ceilings come from one snapshot of the loads, so no two
// workers can both be above theirs; a stale snapshot costs one report's round trip at most.
//
// --max-connections is split evenly (perWorkerMax per worker). A worker at its cap stops
// accepting while another has room; once every worker is at its cap, all accept again and close
// the excess at once ("full"), so connections above the limit are refused, not left waiting.
// Workers report reaching and leaving their cap at once (models/iomp/worker.ts), so "full" outlives
// a worker's room by one message's way at most; a worker accepting at its cap decides at the end
// of its event-loop turn, not counting a connection that is only waiting for its close.
import type { WorkerHandle } from '../../supervisor/supervisor.js';
import { LOAD_REPORT_MS, LOAD_SETTLE_MS, type ToWorker } from '../../worker/messages.js';

export interface FairShareOptions {
  /** Connections one worker may hold (its share of --max-connections); 0 = no cap. */
  perWorkerMax: number;
  /** False: no worker ever stops accepting (unix sockets: re-listening would leak a handle). */
  enabled: boolean;
}

/** A worker may always hold this many connections more than the busiest other one. */
const MIN_SLACK = 6;

export interface FairCeilings {
  /** Per worker: stop accepting at this many open connections; null = no ceiling. */
  ceilings: (number | null)[];
  /** Every worker is at its cap: accept and close the excess. */
  full: boolean;
}

/** Ceilings for `loads` (open connections per accepting worker). Pure, so it is tested alone. */
export function fairCeilings(
  loads: readonly number[],
  perWorkerMax: number,
  slack = fairSlack(loads),
): FairCeilings {
  const full = perWorkerMax > 0 && loads.length > 0 && loads.every((l) => l >= perWorkerMax);
  if (loads.length < 2) return { ceilings: loads.map(() => null), full };
  // The two highest loads: each worker's busiest other is the top one, or the second for the top.
  let top = -1;
  let second = -1;
  for (const l of loads) {
    if (l > top) {
      second = top;
      top = l;
    } else if (l > second) second = l;
  }
  let topSeen = false;
  const ceilings = loads.map((l) => {
    const isTop = l === top && !topSeen;
    if (isTop) topSeen = true;
    return (isTop ? second : top) + slack;
  });
  return { ceilings, full };
}

/** How many connections more than the busiest other one a worker may hold, for `loads`. */
export function fairSlack(loads: readonly number[]): number {
  let total = 0;
  for (const l of loads) total += l;
  // Under churn (short connections opening and closing) the split wanders by about the square
  // root of the total and evens out by itself; a worker stopping for that would cost a handle
  // round trip each time (about 50 a second per worker at 50 connect loops, 15% more CPU per TLS
  // handshake). So the slack is at least three times that.
  return Math.max(
    MIN_SLACK,
    Math.ceil(total / Math.max(1, loads.length) / 5),
    Math.ceil(3 * Math.sqrt(total)),
  );
}

/**
 * How soon a worker reports its count `active` when the daemon last heard `reported` (ms;
 * undefined: nothing to report). A move by the square root of `reported` or more (at least 2)
 * within LOAD_REPORT_MS (the worker spaces these LOAD_REPORT_GAP_MS apart), so the ceilings
 * follow bursts; smaller moves, all that churn of short connections makes (well inside the
 * slack), within LOAD_SETTLE_MS: at 10 ms each worker would wake the daemon about 100 times a
 * second under 50 connect loops.
 */
export function loadReportDelay(active: number, reported: number): number | undefined {
  const moved = Math.abs(active - reported);
  if (moved === 0) return undefined;
  return moved >= Math.max(2, Math.ceil(Math.sqrt(reported))) ? LOAD_REPORT_MS : LOAD_SETTLE_MS;
}

interface Entry {
  active: number;
  /** What this worker was last told (undefined: nothing yet). */
  told: { ceiling: number | null; full: boolean } | undefined;
}

export class FairShare {
  private readonly loads = new Map<WorkerHandle, Entry>();

  constructor(private readonly opts: FairShareOptions) {}

  /** Open connections reported by the accepting workers (exact within LOAD_SETTLE_MS of the last change). */
  get connections(): number {
    let n = 0;
    for (const l of this.loads.values()) n += l.active;
    return n;
  }

  add(w: WorkerHandle): void {
    this.loads.set(w, { active: 0, told: undefined });
    this.update();
  }

  remove(w: WorkerHandle): void {
    if (this.loads.delete(w)) this.update();
  }

  /** A config reload changed --max-connections (workers take their new cap as they are replaced). */
  setPerWorkerMax(perWorkerMax: number): void {
    if (perWorkerMax === this.opts.perWorkerMax) return;
    this.opts.perWorkerMax = perWorkerMax;
    this.update();
  }

  report(w: WorkerHandle, active: number): void {
    const e = this.loads.get(w);
    if (!e) return;
    e.active = Math.max(0, active);
    this.update();
  }

  private update(): void {
    const workers = [...this.loads.keys()];
    const entries = [...this.loads.values()];
    const loads = entries.map((e) => e.active);
    const slack = fairSlack(loads);
    const { ceilings, full } = this.opts.enabled
      ? fairCeilings(loads, this.opts.perWorkerMax, slack)
      : { ceilings: entries.map(() => null), full: true }; // never pause: at the cap, close the excess
    workers.forEach((w, i) => {
      const e = entries[i]!;
      const ceiling = ceilings[i] ?? null;
      if (e.told && !this.worthTelling(e, ceiling, full, slack)) return;
      e.told = { ceiling, full };
      const msg: ToWorker = { tdm: 'accept', ceiling, full };
      w.send(msg).catch(() => undefined);
    });
  }

  /**
   * Ceilings move with every report; a worker hears of it only when it matters: it is near its
   * ceiling (it may be holding back and waits for a raise), or the ceiling moved by half the
   * slack (under churn the ceilings move with every report: telling each move woke every worker
   * about 80 times a second at 50 TLS connect loops).
   */
  private worthTelling(e: Entry, ceiling: number | null, full: boolean, slack: number): boolean {
    const told = e.told!;
    if (told.full !== full) return true;
    if (told.ceiling === null || ceiling === null) return told.ceiling !== ceiling;
    if (e.active >= told.ceiling - 1 || e.active >= ceiling) return told.ceiling !== ceiling;
    return Math.abs(ceiling - told.ceiling) >= slack / 2;
  }
}
