// Messages between the daemon and its workers about connections (the supervisor's own messages
// carry `tdw`; these carry `tdm`). A listening handle or a socket travels with some of them.
import type { Admission } from '../address-limits.js';
import { channelOf } from '../child-channel.js';

export type ToWorker =
  /**
   * With the listening handle, in answer to 'want-listen' (IOMP); LF: accept one connection on it,
   * and with `own` make the next copies yourself (native dup) after short connections.
   */
  | { tdm: 'listen'; own?: boolean }
  /** LF: make no more copies yourself (--max-connections became a limit): each comes from the daemon. */
  | { tdm: 'own-copies-off' }
  /** With an accepted socket: serve it (LF: one that waited in the daemon; IF). */
  | { tdm: 'conn' }
  /** With the listening handle: send it back ('copy'), so the daemon gets a descriptor of its own (LF). */
  | { tdm: 'copy-back' }
  /** With the daemon's own warm-up connection: echo what comes, then close (LF, IF). */
  | { tdm: 'warm' }
  /**
   * ceiling: stop accepting while this many connections are open here, so that less loaded
   * workers take the next ones (null = none). full: every worker is at its --max-connections
   * share: accept and close the excess instead of pausing (IOMP).
   */
  | { tdm: 'accept'; ceiling: number | null; full: boolean }
  /** The answer to 'admit' (src/address-admission.ts). */
  | { tdm: 'admitted'; id: number; admission: Admission };

export type FromWorker =
  /** Send me a copy of the listening handle (to accept on, or to keep as a spare). */
  | { tdm: 'want-listen' }
  /** Open connections (IOMP): at once on reaching or leaving the cap, within LOAD_REPORT_MS of a move by the count's square root (at least 2), else within LOAD_SETTLE_MS. */
  | { tdm: 'load'; active: number }
  /** The one connection is over: send the next, or a copy to accept on (LF). */
  | { tdm: 'idle' }
  /** LF: the connection taken has been open for TOOK_REPORT_MS (src/models/lf/accept-turns.ts). */
  | { tdm: 'took' }
  /** LF: the handle of a 'copy-back', returned. */
  | { tdm: 'copy' }
  /** Served its -n connections: send nothing more; a replacement is on its way. */
  | { tdm: 'spent' }
  /** Could not start (handler failed to load, ...): why, just before exiting 1. */
  | { tdm: 'fatal'; message: string }
  /** TLF thread: the helper process that copied its listening socket has been reaped. */
  | { tdm: 'copied' }
  /** --max-conns-per-ip, --max-conn-rate-per-ip: may I serve this new connection from `address`? (IOMP -c N, TLF) */
  | { tdm: 'admit'; id: number; address: string }
  /** Counted connections from these addresses have closed (one entry per connection). */
  | { tdm: 'release'; addresses: string[] };

/** Delay (ms) between a move of a worker's connection count by its square root (at least 2) and its report, LOAD_REPORT_GAP_MS after the last one at the soonest. */
export const LOAD_REPORT_MS = 10;
/** Such reports come at least this far apart (ms); reaching or leaving the cap, and stopping accepting, go at once. */
export const LOAD_REPORT_GAP_MS = 50;
/** Longest delay (ms) between a smaller move and its report (IOMP: models/iomp/worker.ts). */
export const LOAD_SETTLE_MS = 250;

export function isModelMessage(m: unknown): m is { tdm: string } {
  return channelOf(m) === 'model';
}
