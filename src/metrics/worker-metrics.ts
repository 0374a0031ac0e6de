// --metrics in a worker process or TLF thread: meter its connection path and send the values with
// every heartbeat (the daemon merges them: src/metrics/hub.ts). Loaded only with --metrics.
import type { Socket } from 'node:net';
import type { Meter } from './meter.js';
import { meterRunner, processMeter } from './process-meter.js';

export function installWorkerMetrics(
  channel: { workerId: number; setMetrics(metrics: () => unknown): void },
  runner: { serve(socket: Socket, ...rest: never[]): void },
  /** Before the slot number in the worker label (the gateway's processes: 'gateway-'). */
  labelPrefix = '',
): Meter {
  const meter = processMeter({ totals: meterRunner(runner), worker: `${labelPrefix}${channel.workerId}` });
  channel.setMetrics(() => meter.snapshot());
  return meter;
}
