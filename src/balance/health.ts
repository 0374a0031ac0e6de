/**
 * Backend health: which backends new connections may go to.
 *
 *   up          in rotation
 *   overloaded  passive tracking (after the Lars load balancer) saw too many errors; it gets
 *               only probe connections (one pick in `probeNum`) until it recovers
 *   down        not reachable (active connect checks, or the supervisor saw it exit); no
 *               traffic until `markUp`
 *
 * Passive counts work as in Lars: an up backend starts a window with `initSuccCnt` virtual
 * successes (so a few early errors do not condemn it); it is overloaded when its virtual
 * error rate exceeds `errRate` or after `continErrLimit` errors in a row. An overloaded one
 * starts with `initErrCnt` virtual errors and comes back when its virtual success rate
 * exceeds `succRate` or after `continSuccLimit` successes in a row. Unlike Lars, whose
 * windows were only looked at when a report came in, windows run on real timers: every
 * `idleWindowMs` an up backend's counts restart (or it is overloaded if the window's real
 * error rate reached `windowErrRate`), and an overloaded backend goes back up after
 * `overloadTimeoutMs` even when no probe came through.
 */

export type BackendState = 'up' | 'overloaded' | 'down';

export interface PassiveHealthOptions {
  /** Every probeNum-th pick, while some backend is overloaded, goes to one of them. */
  probeNum: number;
  /** Virtual successes an up backend starts its window with. */
  initSuccCnt: number;
  /** Virtual errors an overloaded backend starts with. */
  initErrCnt: number;
  /** Up -> overloaded when verr / (vsucc + verr) > errRate. 0..1. */
  errRate: number;
  /** Overloaded -> up when vsucc / (vsucc + verr) > succRate. 0..1. */
  succRate: number;
  /** Up -> overloaded after this many errors in a row. */
  continErrLimit: number;
  /** Overloaded -> up after this many successes in a row. */
  continSuccLimit: number;
  /** At the end of a window: overloaded when real errors / real reports >= this. 0..1. */
  windowErrRate: number;
  /** Length of an up backend's counting window, ms. */
  idleWindowMs: number;
  /** Longest stay in the overloaded state, ms. */
  overloadTimeoutMs: number;
}

/** Lars' lb_agent defaults, windows converted from seconds. */
export const DEFAULT_PASSIVE_HEALTH: Readonly<PassiveHealthOptions> = Object.freeze({
  probeNum: 10,
  initSuccCnt: 180,
  initErrCnt: 5,
  errRate: 0.1,
  succRate: 0.95,
  continErrLimit: 15,
  continSuccLimit: 15,
  windowErrRate: 0.7,
  idleWindowMs: 15000,
  overloadTimeoutMs: 15000,
});

export interface HealthChange {
  id: string;
  from: BackendState;
  to: BackendState;
  /** Why, in a few words: 'error rate 0.12 > 0.1', 'overload timeout', 'connect check failed: ECONNREFUSED'. */
  reason: string;
}

export interface HealthCounts {
  state: BackendState;
  /** Real successes and errors in the current window. */
  succ: number;
  err: number;
  continSucc: number;
  continErr: number;
}

interface Entry {
  state: BackendState;
  vsucc: number;
  verr: number;
  rsucc: number;
  rerr: number;
  continSucc: number;
  continErr: number;
  /** Window end (up) or overload timeout (overloaded); undefined when down. */
  timer: NodeJS.Timeout | undefined;
}

export class HealthTracker {
  readonly options: Readonly<PassiveHealthOptions>;
  private readonly entries = new Map<string, Entry>();
  private readonly onChange: (change: HealthChange) => void;
  /** Picks since the last probe (counted only while something is overloaded). */
  private access = 0;
  /** Rotates probes over the overloaded backends. */
  private probeTurn = 0;
  /** Entries in the overloaded state, so a pick with none costs nothing. */
  private overloadedCount = 0;

  constructor(options: Partial<PassiveHealthOptions>, onChange: (change: HealthChange) => void = () => {}) {
    this.options = { ...DEFAULT_PASSIVE_HEALTH, ...options };
    this.onChange = onChange;
  }

  /** Starts tracking `id` in `initial` state (default up). No-op when already tracked. */
  add(id: string, initial: BackendState = 'up'): void {
    if (this.entries.has(id)) return;
    const e: Entry = {
      state: initial,
      vsucc: 0,
      verr: 0,
      rsucc: 0,
      rerr: 0,
      continSucc: 0,
      continErr: 0,
      timer: undefined,
    };
    this.entries.set(id, e);
    if (initial === 'up') this.resetUp(id, e);
    else if (initial === 'overloaded') {
      this.overloadedCount++;
      this.resetOverloaded(id, e);
    }
  }

  remove(id: string): void {
    const e = this.entries.get(id);
    if (!e) return;
    clearTimeout(e.timer);
    if (e.state === 'overloaded') this.overloadedCount--;
    this.entries.delete(id);
  }

  state(id: string): BackendState | undefined {
    return this.entries.get(id)?.state;
  }

  counts(id: string): HealthCounts | undefined {
    const e = this.entries.get(id);
    if (!e) return undefined;
    return { state: e.state, succ: e.rsucc, err: e.rerr, continSucc: e.continSucc, continErr: e.continErr };
  }

  /**
   * Call once per pick. Returns an overloaded backend (not in `exclude`) when this pick is
   * a probe, undefined otherwise.
   */
  probe(exclude: ReadonlySet<string>): string | undefined {
    if (this.overloadedCount === 0) return undefined;
    const overloaded: string[] = [];
    for (const [id, e] of this.entries) if (e.state === 'overloaded' && !exclude.has(id)) overloaded.push(id);
    if (overloaded.length === 0) return undefined;
    if (++this.access < this.options.probeNum) return undefined;
    this.access = 0;
    return overloaded[this.probeTurn++ % overloaded.length];
  }

  /** A connection to `id` succeeded. */
  reportSuccess(id: string): void {
    const e = this.entries.get(id);
    if (!e) return;
    e.vsucc++;
    e.rsucc++;
    e.continSucc++;
    e.continErr = 0;
    if (e.state !== 'overloaded') return;
    const rate = e.vsucc / (e.vsucc + e.verr);
    if (rate > this.options.succRate)
      this.toUp(id, e, `success rate ${rate.toFixed(2)} > ${this.options.succRate}`);
    else if (e.continSucc >= this.options.continSuccLimit)
      this.toUp(id, e, `${e.continSucc} successes in a row`);
  }

  /** A connection to `id` failed (connect error or timeout, reset by the backend). */
  reportError(id: string): void {
    const e = this.entries.get(id);
    if (!e) return;
    e.verr++;
    e.rerr++;
    e.continErr++;
    e.continSucc = 0;
    if (e.state !== 'up') return;
    const rate = e.verr / (e.vsucc + e.verr);
    if (rate > this.options.errRate)
      this.toOverloaded(id, e, `error rate ${rate.toFixed(2)} > ${this.options.errRate}`);
    else if (e.continErr >= this.options.continErrLimit)
      this.toOverloaded(id, e, `${e.continErr} errors in a row`);
  }

  /** Takes `id` out of rotation (failed connect checks, process exited). */
  markDown(id: string, reason: string): void {
    const e = this.entries.get(id);
    if (!e || e.state === 'down') return;
    clearTimeout(e.timer);
    e.timer = undefined;
    this.transition(id, e, 'down', reason);
  }

  /** Puts a down backend back in rotation with fresh counts. No-op unless down. */
  markUp(id: string, reason: string): void {
    const e = this.entries.get(id);
    if (e?.state === 'down') this.toUp(id, e, reason);
  }

  /** Stops every timer. */
  close(): void {
    for (const e of this.entries.values()) clearTimeout(e.timer);
    this.entries.clear();
    this.overloadedCount = 0;
  }

  private toUp(id: string, e: Entry, reason: string): void {
    this.resetUp(id, e);
    this.transition(id, e, 'up', reason);
  }

  private toOverloaded(id: string, e: Entry, reason: string): void {
    this.resetOverloaded(id, e);
    this.transition(id, e, 'overloaded', reason);
  }

  private transition(id: string, e: Entry, to: BackendState, reason: string): void {
    const from = e.state;
    e.state = to;
    this.overloadedCount += (to === 'overloaded' ? 1 : 0) - (from === 'overloaded' ? 1 : 0);
    if (from !== to) this.onChange({ id, from, to, reason });
  }

  private resetUp(id: string, e: Entry): void {
    Object.assign(e, {
      vsucc: this.options.initSuccCnt,
      verr: 0,
      rsucc: 0,
      rerr: 0,
      continSucc: 0,
      continErr: 0,
    });
    this.arm(e, this.options.idleWindowMs, () => this.endWindow(id, e));
  }

  private resetOverloaded(id: string, e: Entry): void {
    Object.assign(e, {
      vsucc: 0,
      verr: this.options.initErrCnt,
      rsucc: 0,
      rerr: 0,
      continSucc: 0,
      continErr: 0,
    });
    this.arm(e, this.options.overloadTimeoutMs, () => {
      if (e.state === 'overloaded') this.toUp(id, e, 'overload timeout');
    });
  }

  private endWindow(id: string, e: Entry): void {
    if (e.state !== 'up') return;
    const total = e.rsucc + e.rerr;
    const rate = total === 0 ? 0 : e.rerr / total;
    if (total > 0 && rate >= this.options.windowErrRate) {
      this.toOverloaded(id, e, `window error rate ${rate.toFixed(2)} >= ${this.options.windowErrRate}`);
    } else {
      this.resetUp(id, e);
    }
  }

  private arm(e: Entry, ms: number, fn: () => void): void {
    clearTimeout(e.timer);
    e.timer = setTimeout(fn, ms);
    e.timer.unref();
  }
}
