import { connect, type Socket } from 'node:net';
import type { BackendAddress } from './backend.js';

/**
 * Active health checks: a TCP connect (then an immediate close) to every backend each
 * `intervalMs`. `fall` failures in a row report the backend down; `rise` successes in a
 * row after that report it up again. At most one check per backend is in flight.
 */

export interface ActiveCheckOptions {
  /** Between rounds of checks, ms. */
  intervalMs: number;
  /** A connect that takes longer fails, ms. */
  timeoutMs: number;
  /** Consecutive successes that bring a down backend back. */
  rise: number;
  /** Consecutive failures that take a backend down. */
  fall: number;
}

export const DEFAULT_ACTIVE_CHECK: Readonly<ActiveCheckOptions> = Object.freeze({
  intervalMs: 2000,
  timeoutMs: 1000,
  rise: 2,
  fall: 2,
});

export interface CheckTarget {
  readonly id: string;
  readonly address: BackendAddress;
}

export interface CheckListener {
  /** After `fall` failures in a row; `reason` names the last one (ECONNREFUSED, timeout). */
  down(id: string, reason: string): void;
  /** After `rise` successes in a row following a `down`. */
  up(id: string, reason: string): void;
}

interface Track {
  target: CheckTarget;
  ok: number;
  failed: number;
  /** What this checker last reported; a fresh target counts as up. */
  reportedDown: boolean;
  inFlight: Socket | undefined;
}

export class ConnectChecker {
  readonly options: Readonly<ActiveCheckOptions>;
  private readonly tracks = new Map<string, Track>();
  private readonly listener: CheckListener;
  private timer: NodeJS.Timeout | undefined;

  constructor(options: Partial<ActiveCheckOptions>, listener: CheckListener) {
    this.options = { ...DEFAULT_ACTIVE_CHECK, ...options };
    this.listener = listener;
  }

  /** `startsDown`: the target is not in rotation yet; `rise` successes bring it up. */
  add(target: CheckTarget, startsDown = false): void {
    if (this.tracks.has(target.id)) return;
    this.tracks.set(target.id, { target, ok: 0, failed: 0, reportedDown: startsDown, inFlight: undefined });
  }

  /** `id` went down by other means (its process exited): `rise` passes bring it up again. */
  setDown(id: string): void {
    const t = this.tracks.get(id);
    if (!t) return;
    t.reportedDown = true;
    t.ok = 0;
  }

  remove(id: string): void {
    this.tracks.get(id)?.inFlight?.destroy();
    this.tracks.delete(id);
  }

  /** Checks every `intervalMs` until `stop`. */
  start(): void {
    if (this.timer) return;
    this.timer = setInterval(() => {
      for (const id of this.tracks.keys()) this.checkNow(id);
    }, this.options.intervalMs);
    this.timer.unref();
  }

  /** One check of `id` now, unless one is in flight. */
  checkNow(id: string): void {
    const t = this.tracks.get(id);
    if (!t || t.inFlight) return;
    const a = t.target.address;
    const socket = 'path' in a ? connect(a.path) : connect(a.port, a.host);
    t.inFlight = socket;
    socket.setTimeout(this.options.timeoutMs);
    const done = (ok: boolean, reason: string) => {
      socket.removeAllListeners();
      socket.on('error', () => {});
      socket.destroy();
      if (this.tracks.get(id) !== t) return;
      t.inFlight = undefined;
      this.record(t, ok, reason);
    };
    socket.once('connect', () => done(true, 'connect check passed'));
    socket.once('timeout', () => done(false, `connect check timed out after ${this.options.timeoutMs} ms`));
    socket.once('error', (err: NodeJS.ErrnoException) =>
      done(false, `connect check failed: ${err.code ?? err.message}`),
    );
  }

  stop(): void {
    clearInterval(this.timer);
    this.timer = undefined;
    for (const t of this.tracks.values()) t.inFlight?.destroy();
    this.tracks.clear();
  }

  private record(t: Track, ok: boolean, reason: string): void {
    if (ok) {
      t.ok++;
      t.failed = 0;
      if (t.reportedDown && t.ok >= this.options.rise) {
        t.reportedDown = false;
        this.listener.up(t.target.id, `${reason} ${t.ok} times in a row`);
      }
    } else {
      t.failed++;
      t.ok = 0;
      if (!t.reportedDown && t.failed >= this.options.fall) {
        t.reportedDown = true;
        this.listener.down(t.target.id, `${reason} (${t.failed} in a row)`);
      }
    }
  }
}
