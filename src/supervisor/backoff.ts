// Restart delays for crashed workers: exponential, capped, jittered, and forgiven after a healthy run.
// Pure functions; the supervisor keeps one failure count per slot.

export interface BackoffOptions {
  /** Delay before the first restart of a slot, ms. */
  initialMs: number;
  /** No delay exceeds this, ms. */
  maxMs: number;
  /** Growth per consecutive failure (2 = doubling). */
  factor: number;
  /** 0..1: a delay is drawn uniformly from [d * (1 - jitter), d], so restarts never exceed the cap. */
  jitter: number;
  /** A worker that was ready at least this long (ms) clears its slot's failure count. */
  resetAfterMs: number;
}

export const DEFAULT_BACKOFF: Readonly<BackoffOptions> = Object.freeze({
  initialMs: 100,
  maxMs: 10_000,
  factor: 2,
  jitter: 0.2,
  resetAfterMs: 10_000,
});

/** Delay (ms, integer) before the restart that follows `failures` earlier consecutive failures. */
export function restartDelay(
  failures: number,
  opts: BackoffOptions,
  random: () => number = Math.random,
): number {
  const exp = Math.max(0, failures);
  // Computed by repeated multiplication that stops at the cap: no Infinity for huge counts.
  let base = opts.initialMs;
  for (let i = 0; i < exp && base < opts.maxMs; i++) base *= opts.factor;
  base = Math.min(base, opts.maxMs);
  const jitter = Math.min(1, Math.max(0, opts.jitter));
  return Math.max(0, Math.round(base * (1 - jitter * random())));
}

export interface ExitAccounting {
  /** Consecutive failures including this exit. */
  failures: number;
  /** Wait this long (ms) before starting the replacement. */
  delayMs: number;
}

/**
 * Accounts one unexpected exit. `healthyMs` is how long the worker was ready (0 if it never was):
 * a long healthy run forgives earlier failures, so a rare crash restarts after ~initialMs again.
 */
export function accountExit(
  prevFailures: number,
  healthyMs: number,
  opts: BackoffOptions,
  random: () => number = Math.random,
): ExitAccounting {
  const before = healthyMs >= opts.resetAfterMs ? 0 : prevFailures;
  return { failures: before + 1, delayMs: restartDelay(before, opts, random) };
}

/** Throws a clear error for options no supervisor can work with. */
export function checkBackoff(opts: BackoffOptions): void {
  const bad = (what: string) => {
    throw new RangeError(`backoff: ${what}`);
  };
  if (!(Number.isFinite(opts.initialMs) && opts.initialMs >= 0))
    bad(`initialMs must be >= 0, got ${opts.initialMs}`);
  if (!(Number.isFinite(opts.maxMs) && opts.maxMs >= opts.initialMs))
    bad(`maxMs must be >= initialMs (${opts.initialMs}), got ${opts.maxMs}`);
  if (!(Number.isFinite(opts.factor) && opts.factor >= 1)) bad(`factor must be >= 1, got ${opts.factor}`);
  if (!(opts.jitter >= 0 && opts.jitter <= 1)) bad(`jitter must be within 0..1, got ${opts.jitter}`);
  if (!(opts.resetAfterMs >= 0)) bad(`resetAfterMs must be >= 0, got ${opts.resetAfterMs}`);
}
