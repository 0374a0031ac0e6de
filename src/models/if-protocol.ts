// Messages between the IF daemon and its connection processes (besides the supervisor's own).
// Imported by the child: it imports nothing.

/** The child reads its WorkerConfig (JSON) from this environment variable. */
export const IF_CONFIG_ENV = 'TCPDAEMON_IF_CONFIG';

export type IfMessage =
  /** Sent with the accepted socket as the IPC handle: serve it, then exit. */
  | { tdif: 'conn' }
  /** The daemon is stopping: abort env.signal; finish before the shutdown timeout. */
  | { tdif: 'stop' };

export function isIfMessage(m: unknown): m is IfMessage {
  return typeof m === 'object' && m !== null && typeof (m as { tdif?: unknown }).tdif === 'string';
}
