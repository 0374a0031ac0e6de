// LF (leader/follower): a pool of worker processes, each serving ONE connection at a time. Idle
// workers accept from the socket the daemon bound, each on a copy of it, one connection per copy
// (accept-turns.ts): a connection reaches a free worker with no daemon in its path. When
// every worker is busy, connections wait in the daemon, accepted (not refused), until one is free
// (turns.ts).
import type { SendHandle } from 'node:child_process';
import { serveAdmissions } from '../../address-admission.js';
import { canBindShared } from '../../listen.js';
import type { WorkerHandle } from '../../supervisor/supervisor.js';
import { type FromWorker, isModelMessage } from '../../worker/messages.js';
import { Handoff, handoffLimits, handoffRunning } from '../handoff.js';
import { openHandoffWarmup } from '../handoff-warmup.js';
import type { Model, ModelHost, RunningModel } from '../model.js';
import { createSupervisor, startWorkers, workerLaunchProblem } from '../worker-pool.js';
import { LfTurns } from './turns.js';

export const lf: Model = {
  unavailable: (params) => {
    if (!canBindShared()) return 'model LF needs a Node.js that can share a listening socket';
    return workerLaunchProblem(params.handler);
  },
  pauseOnConnect: () => false,
  servesInWorkers: () => true,
  listenMode: () => 'shared',
  start: startLf,
};

async function startLf(host: ModelHost): Promise<RunningModel> {
  const { params, logger } = host;
  const shared = host.shared;
  if (!shared) throw new Error('LF needs the shared listening socket');
  const supervisor = createSupervisor(host, { accept: 'one-at-a-time' });
  const handoff = new Handoff({ logger, ...handoffLimits(params), addressGate: host.addressGate });
  // Connections a worker accepts itself are admitted by asking the daemon (the ones it hands over, by handoff).
  if (host.addressGate) serveAdmissions(supervisor, host.addressGate);
  const turns = new LfTurns({
    handle: shared.handle as SendHandle,
    handoff,
    maxConnections: params.maxConnections,
    logger,
    workers: () => supervisor.readyWorkers(),
  });
  // Warms what a connection the daemon hands over costs a fresh worker (one that waited).
  const warmup = await openHandoffWarmup().catch(() => undefined);
  supervisor.on('message', (w: WorkerHandle, m: unknown, handle: unknown) => {
    if (!isModelMessage(m)) return;
    const msg = m as FromWorker;
    if (msg.tdm === 'idle') turns.idle(w);
    else if (msg.tdm === 'took') turns.took(w);
    else if (msg.tdm === 'want-listen') turns.join(w);
    else if (msg.tdm === 'copy') turns.copy(w, handle);
    else if (msg.tdm === 'spent') turns.remove(w);
  });
  supervisor.on('ready', (w) => {
    warmup?.warm(w);
    turns.ready();
  });
  supervisor.on('retire', (w) => turns.remove(w));
  supervisor.on('exit', (w) => turns.remove(w));
  await startWorkers(supervisor);
  return handoffRunning(host, supervisor, handoff, warmup, {
    close: () => turns.close(),
    reconfigure: () => turns.setMaxConnections(host.params.maxConnections),
  });
}
