// Why connections ended, counted per process with plain integers (the metrics read them; with
// --metrics off nothing else does). Only the rare paths count: a timeout, a refusal, an error.
// A connection is counted once, under the first reason that closed it.

export type CloseReason =
  | 'idle_timeout'
  | 'max_connections'
  | 'output_cap'
  | 'peer_reset'
  | 'handler_error'
  | 'queue_full'
  | 'wait_timeout';

/** Connections closed per reason in this process since it started (every key always present). */
export const closeCounts: Record<CloseReason, number> = {
  idle_timeout: 0,
  max_connections: 0,
  output_cap: 0,
  peer_reset: 0,
  handler_error: 0,
  queue_full: 0,
  wait_timeout: 0,
};

const kClosedBy = Symbol('tcpdaemon.closedBy');

/** Counts `socket` as closed for `reason`, unless it was counted already. */
export function closedBy(socket: object, reason: CloseReason): void {
  const s = socket as { [kClosedBy]?: CloseReason };
  if (s[kClosedBy] !== undefined) return;
  s[kClosedBy] = reason;
  closeCounts[reason]++;
}

/** Counts a connection that was closed before it was served (a refusal): no socket to mark. */
export function refused(reason: CloseReason): void {
  closeCounts[reason]++;
}
