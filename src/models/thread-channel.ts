// The thread side of the supervisor protocol (worker-channel.ts is the process side): readiness,
// heartbeats from the thread's event loop, retire and log-reopen requests, over parentPort.
import { parentPort } from 'node:worker_threads';
import {
  ENV,
  isProtocolMessage,
  type SupervisorMessage,
  type WorkerMessage,
} from '../supervisor/protocol.js';
import type { WorkerChannel, WorkerChannelOptions } from '../supervisor/worker-channel.js';

export function joinSupervisorFromThread(
  opts: WorkerChannelOptions & { onMessage?: (m: unknown) => void } = {},
): WorkerChannel {
  const port = parentPort;
  if (!port) throw new Error('joinSupervisorFromThread: not in a worker thread');
  const heartbeatMs = Number(process.env[ENV.heartbeatMs]) || 1000;
  const counts = opts.counts ?? (() => ({ served: 0, active: 0 }));
  let retiring = false;
  const send = (m: WorkerMessage) => port.postMessage(m);

  const heartbeat = () => {
    const { served, active } = counts();
    send({ tdw: 'hb', served, active, rssBytes: process.memoryUsage.rss() });
  };
  const beat = setInterval(heartbeat, heartbeatMs);
  beat.unref();

  port.on('message', (m: unknown) => {
    if (!isProtocolMessage(m)) {
      opts.onMessage?.(m);
      return;
    }
    const msg = m as SupervisorMessage;
    if (msg.tdw === 'retire') {
      if (retiring) return;
      retiring = true;
      clearInterval(beat);
      if (opts.onRetire) opts.onRetire(Number(msg.graceMs) || 0);
      else process.exit(0);
    } else if (msg.tdw === 'reopen-log') {
      opts.onReopenLog?.();
    }
  });

  const channel = {
    workerId: Number(process.env[ENV.workerId]) || 0,
    spawnId: Number(process.env[ENV.spawnId]) || 0,
    ready: () => send({ tdw: 'ready' }),
    requestRecycle: (reason: string) => send({ tdw: 'recycle', reason }),
    /** postMessage is synchronous: written once this returns. */
    beat: () => {
      heartbeat();
      return Promise.resolve();
    },
    get retiring() {
      return retiring;
    },
  };
  return channel;
}
