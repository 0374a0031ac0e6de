// Counters one load thread keeps, and how the main thread adds them up.
import { type HistogramData, LatencyHistogram } from './histogram.js';

/**
 * connect: the connection could not be made (refused, unreachable, ...);
 * timeout: no connection, or no progress, within the tool's time limit;
 * reset: an error on an open connection (ECONNRESET, EPIPE, ...);
 * eof: the server closed a connection the tool was still using;
 * verify: echoed bytes differ from what was sent (corrupt, lost, reordered, extra);
 * stalled: a reply still missing after STALL_MS when the run ended.
 */
export const ERROR_KINDS = ['connect', 'timeout', 'reset', 'eof', 'verify', 'stalled'] as const;
export type ErrorKind = (typeof ERROR_KINDS)[number];

/** ms a reply may be outstanding at the end of a run before it counts as `stalled`. */
export const STALL_MS = 2000;

export class Tally {
  /** Messages echoed (echo), connect cycles finished (connect), connections opened (hold). */
  done = 0;
  /** Body bytes echoed back and verified. */
  bytes = 0;
  /** hold: connections lost after they were open (also counted as eof or reset errors). */
  dropped = 0;
  /** connect --rate: starts that came due before the end of the run. */
  due = 0;
  /** connect --rate: starts that came due while the cap was in flight, so began late or never. */
  late = 0;
  /** connect --rate: late starts still waiting for a free slot when the run ended. */
  unstarted = 0;
  readonly errors: Record<ErrorKind, number> = {
    connect: 0,
    timeout: 0,
    reset: 0,
    eof: 0,
    verify: 0,
    stalled: 0,
  };
  /** errno codes behind connect/reset errors, e.g. { ECONNREFUSED: 12 }. */
  readonly codes: Record<string, number> = {};
  /** Per message (echo), connect to echo (connect, hold). */
  readonly latency = new LatencyHistogram();

  error(kind: ErrorKind, code?: string): void {
    this.errors[kind] += 1;
    if (code) this.codes[code] = (this.codes[code] ?? 0) + 1;
  }

  toData(): TallyData {
    return {
      done: this.done,
      bytes: this.bytes,
      dropped: this.dropped,
      due: this.due,
      late: this.late,
      unstarted: this.unstarted,
      errors: { ...this.errors },
      codes: { ...this.codes },
      latency: this.latency.toData(),
    };
  }

  /** Adds what another thread counted. */
  add(other: TallyData): void {
    this.done += other.done;
    this.bytes += other.bytes;
    this.dropped += other.dropped;
    this.due += other.due;
    this.late += other.late;
    this.unstarted += other.unstarted;
    for (const k of ERROR_KINDS) this.errors[k] += other.errors[k];
    for (const [code, n] of Object.entries(other.codes)) this.codes[code] = (this.codes[code] ?? 0) + n;
    this.latency.merge(other.latency);
  }

  get errorTotal(): number {
    return ERROR_KINDS.reduce((sum, k) => sum + this.errors[k], 0);
  }
}

/** A Tally as it crosses a thread boundary. */
export interface TallyData {
  done: number;
  bytes: number;
  dropped: number;
  due: number;
  late: number;
  unstarted: number;
  errors: Record<ErrorKind, number>;
  codes: Record<string, number>;
  latency: HistogramData;
}
