// Whether the workers are well enough for the daemon to send systemd its WATCHDOG=1: every worker
// in service has sent a heartbeat lately, and at least one serves when slots are crash-looping.
// The daemon's own loop needs no check here: the ping is sent from it, so a blocked loop sends none.
import type { SupervisorStatus } from '../supervisor/supervisor.js';

/** A worker silent at least this long holds the ping back, whatever the watchdog interval, ms. */
export const MIN_SILENCE_MS = 3000;

/**
 * Why the workers are not healthy, or undefined when they are. `maxSilentMs`: the longest a
 * worker in service may go without a heartbeat (they come every second at most).
 */
export function workersProblem(
  supervisors: readonly (SupervisorStatus | undefined)[],
  maxSilentMs: number,
): string | undefined {
  const limit = Math.max(maxSilentMs, MIN_SILENCE_MS);
  for (const s of supervisors) {
    if (!s) continue;
    const silent = s.workers.find((w) => w.state === 'ready' && w.silentMs > limit);
    if (silent)
      return `worker ${silent.workerId} (pid ${silent.pid}) sent no heartbeat for ${Math.round(silent.silentMs / 1000)} s`;
    if (s.crashLooping.length > 0 && !s.workers.some((w) => w.state === 'ready'))
      return `no worker in service: slot ${s.crashLooping.join(', ')} crash-looping`;
  }
  return undefined;
}
