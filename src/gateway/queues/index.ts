// The queue table: the one place a --queue value picks an adapter.

import type { Rpc } from '../ipc-rpc.js';
import type { QueueSpec } from '../params.js';
import { IpcGatewayQueue, IpcWorkerQueue } from './ipc.js';
import type {
  GatewayQueue,
  GatewayQueueEvents,
  GatewayQueueOptions,
  WorkerQueue,
  WorkerQueueOptions,
} from './queue.js';

/** What an adapter may need from the process it runs in. */
export interface QueueContext {
  /** ipc: the channel to the daemon (worker list, names, store). */
  rpc?: Rpc;
  /** ipc worker: the unix socket to listen on. */
  socketPath?: string;
}

export async function openGatewayQueue(
  spec: QueueSpec,
  opts: GatewayQueueOptions,
  events: GatewayQueueEvents,
  ctx: QueueContext,
): Promise<GatewayQueue> {
  if (spec.kind === 'ipc') {
    if (!ctx.rpc) throw new Error('the ipc queue runs only in a gateway process started by the daemon');
    return new IpcGatewayQueue(opts, events, ctx.rpc);
  }
  const { NatsGatewayQueue } = await import('./nats/gateway-queue.js');
  return NatsGatewayQueue.open(spec, opts, events);
}

export async function openWorkerQueue(
  spec: QueueSpec,
  opts: WorkerQueueOptions,
  ctx: QueueContext,
): Promise<WorkerQueue> {
  if (spec.kind === 'ipc') {
    if (!ctx.socketPath) throw new Error('the ipc queue runs only in a worker process started by the daemon');
    return IpcWorkerQueue.open(opts, ctx.socketPath);
  }
  const { NatsWorkerQueue } = await import('./nats/worker-queue.js');
  return NatsWorkerQueue.open(spec, opts);
}
