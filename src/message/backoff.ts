// Exponential backoff with jitter, for reconnects.

export interface BackoffOptions {
  /** First delay, ms. Default 100. */
  initialDelay?: number;
  /** Largest delay, ms. Default 10000. */
  maxDelay?: number;
  /** Growth per attempt. Default 2. */
  factor?: number;
  /** 0..1: each delay is drawn uniformly from [d * (1 - jitter), d]. Default 0.5. */
  jitter?: number;
}

export class Backoff {
  private attempt = 0;
  private readonly initialDelay: number;
  private readonly maxDelay: number;
  private readonly factor: number;
  private readonly jitter: number;

  constructor(
    opts: BackoffOptions = {},
    private readonly random: () => number = Math.random,
  ) {
    this.initialDelay = opts.initialDelay ?? 100;
    this.maxDelay = opts.maxDelay ?? 10_000;
    this.factor = opts.factor ?? 2;
    this.jitter = opts.jitter ?? 0.5;
    if (!(this.initialDelay >= 0) || !(this.maxDelay >= this.initialDelay)) {
      throw new RangeError('backoff: need 0 <= initialDelay <= maxDelay (ms)');
    }
    if (!(this.factor >= 1)) throw new RangeError('backoff: factor must be >= 1');
    if (!(this.jitter >= 0 && this.jitter <= 1)) throw new RangeError('backoff: jitter must be within 0..1');
  }

  /** The delay before the next attempt, ms; grows until reset(). */
  next(): number {
    const base = Math.min(this.maxDelay, this.initialDelay * this.factor ** this.attempt);
    if (base < this.maxDelay) this.attempt++;
    return Math.round(base * (1 - this.jitter * this.random()));
  }

  /** After a success: the next delay is the initial one again. */
  reset(): void {
    this.attempt = 0;
  }
}
