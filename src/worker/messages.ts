// Messages between the daemon and its workers about connections (the supervisor's own messages
// carry `tdw`; these carry `tdm`). A listening handle or a socket travels with some of them.

export type ToWorker =
  /** With the listening handle, in answer to 'want-listen' (IOMP). */
  | { tdm: 'listen' }
  /** With an accepted socket: serve it (LF). */
  | { tdm: 'conn' }
  /**
   * Stop accepting while `n` or more connections are open here, so that less loaded workers take
   * the next ones; null = never stop (IOMP).
   */
  | { tdm: 'limit'; n: number | null };

export type FromWorker =
  /** Send me the listening handle: I am ready to accept (again). */
  | { tdm: 'want-listen' }
  /** Open connections and whether this worker accepts; sent on change, at most every LOAD_REPORT_MS (IOMP). */
  | { tdm: 'load'; active: number; listening: boolean }
  /** The one connection is over: send the next (LF). */
  | { tdm: 'idle' }
  /** Served its -n connections: send nothing more; a replacement is on its way. */
  | { tdm: 'spent' }
  /** Could not start (handler failed to load, ...): why, just before exiting 1. */
  | { tdm: 'fatal'; message: string };

/** Longest delay (ms) between a change of a worker's connection count and its report. */
export const LOAD_REPORT_MS = 10;

export function isModelMessage(m: unknown): m is { tdm: string } {
  return typeof m === 'object' && m !== null && typeof (m as { tdm?: unknown }).tdm === 'string';
}
