// The wire between the supervisor and a node worker: IPC messages and environment variables.
// Imported by the worker side too, so it imports only the child channel (which imports nothing).
import { CHANNEL_VARS, channelOf } from '../child-channel.js';

/** Environment a supervised worker is started with (declared in src/child-channel.ts). */
export const ENV = {
  /** Set to '1' in every supervised worker. */
  supervised: CHANNEL_VARS.supervised.name,
  /** 1..N: the slot the worker fills (a replacement keeps its slot's id). */
  workerId: CHANNEL_VARS.workerId.name,
  /** Unique per start within one supervisor, increasing from 1. */
  spawnId: CHANNEL_VARS.spawnId.name,
  /** Send a heartbeat this often, ms. */
  heartbeatMs: CHANNEL_VARS.heartbeatMs.name,
  /** Drain this long (ms) when the supervisor disappears or SIGTERM arrives without a retire message. */
  graceMs: CHANNEL_VARS.graceMs.name,
} as const;

/** Every supervisor-protocol message carries `tdw` (tcpdaemon worker); other messages go to the model. */
export type WorkerMessage =
  /** The worker can take work now. */
  | { tdw: 'ready' }
  /**
   * Sent from the worker's event loop: proof that it turns. Counts are totals since start; rssBytes
   * 0 = not known; `report` is what the command asked the worker to add (the proxy's backend
   * counters), if anything; `metrics` its metric values (--metrics only: src/metrics/meter.ts).
   */
  | { tdw: 'hb'; served: number; active: number; rssBytes: number; report?: unknown; metrics?: unknown }
  /** The worker asks to be replaced (served its `-n` connections, ...); it keeps serving until retired. */
  | { tdw: 'recycle'; reason: string }
  /** The answer to a retire: it takes no new work from now on (its listener is closed), and drains. */
  | { tdw: 'retiring' }
  /** A message for every worker's bus (worker-bus.ts); `data` is base64. */
  | { tdw: 'bcast'; topic: string; data: string };

export type SupervisorMessage =
  /** Stop taking work, finish what is open within `graceMs`, then exit 0. SIGKILL follows the deadline. */
  | { tdw: 'retire'; graceMs: number }
  /** Reopen the log file (SIGUSR1 in the daemon). */
  | { tdw: 'reopen-log' }
  /** A bus message relayed from worker `from` (worker-bus.ts); `data` is base64. */
  | { tdw: 'bcast'; topic: string; data: string; from: number };

/** True for a supervisor-protocol message (either direction); the caller then switches on `tdw`. */
export function isProtocolMessage(m: unknown): m is { tdw: string } {
  return channelOf(m) === 'supervisor';
}
