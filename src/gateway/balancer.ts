// Request-level balancing: each request goes to the worker with the fewest outstanding requests,
// never to one at its bound. A plain function over the candidates, so it is tested on its own.

export interface Candidate {
  /** Requests sent to it and not answered yet. */
  readonly outstanding: number;
  /** False once it said goodbye (retiring) or its link is closing. */
  readonly accepting: boolean;
}

/**
 * Index of the accepting candidate with the fewest outstanding requests below `bound`, or -1 when
 * every one is full or none accepts. Ties go to the first at or after `start` (the caller rotates
 * `start`), so idle workers share the load instead of the first one taking it all.
 */
export function leastOutstanding(candidates: readonly Candidate[], bound: number, start = 0): number {
  const n = candidates.length;
  let best = -1;
  let bestLoad = bound;
  for (let k = 0; k < n; k++) {
    const i = (start + k) % n;
    const c = candidates[i]!;
    if (c.accepting && c.outstanding < bestLoad) {
      best = i;
      bestLoad = c.outstanding;
      if (bestLoad === 0) break;
    }
  }
  return best;
}

/** Each gateway's share of a worker's bound, so that G gateways together stay within it (at least 1). */
export function perGatewayBound(workerBound: number, gateways: number): number {
  return Math.max(1, Math.floor(workerBound / Math.max(1, gateways)));
}

/**
 * Requests a worker holds when it is busy: the --worker-concurrency it runs plus as many queued
 * at it, so that it has its next batch at hand while its answers travel back and the gateway's
 * next batch is on its way (with only what it runs, each worker idles one round trip per batch,
 * and a request crosses one link write per batch of at most that many).
 */
export const WORKER_PIPELINE = 2;

/** Each gateway's bound of outstanding requests at one worker: its share of the worker's pipeline. */
export function outstandingPerWorker(workerConcurrency: number, gateways: number): number {
  return perGatewayBound(workerConcurrency * WORKER_PIPELINE, gateways);
}
