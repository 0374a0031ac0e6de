// IOMP -c N: N worker processes, each an event loop serving many connections, all accepting from
// the one socket the daemon bound (no IPC per connection). FairShare keeps the spread even.
// --reuse-port: the worker of slot k accepts on member k of the daemon's SO_REUSEPORT group and
// the kernel spreads connections over the members; no worker pauses (closing its descriptor
// would only leave its member's queue waiting), so at its --max-connections share it closes the excess.
import type { SendHandle } from 'node:child_process';
import { serveAdmissions } from '../address-admission.js';
import type { WorkerHandle } from '../supervisor/supervisor.js';
import { type FromWorker, isModelMessage, type ToWorker } from '../worker/messages.js';
import { FairShare } from './fair-share.js';
import type { ModelHost, RunningModel } from './model.js';
import { createSupervisor, perWorkerShare, startWorkers, supervision } from './worker-pool.js';

export async function startIompWorkers(host: ModelHost): Promise<RunningModel> {
  const { params } = host;
  const shared = host.shared;
  if (!shared) throw new Error('IOMP -c N needs the shared listening socket');
  // --max-connections is split evenly: each worker holds at most its share and closes the excess.
  const supervisor = createSupervisor(host, { accept: 'shared' });
  const fair = new FairShare({
    perWorkerMax: perWorkerShare(params),
    enabled: params.listenAddress.kind === 'tcp' && !params.reusePort,
  });
  const listen: ToWorker = { tdm: 'listen' };
  // One member per slot (a replacement takes its slot's, with what queued there meanwhile).
  const handleOf = (w: WorkerHandle) => shared.members[w.slot % shared.members.length] as SendHandle;

  supervisor.on('message', (w: WorkerHandle, m: unknown) => {
    if (!isModelMessage(m)) return;
    const msg = m as FromWorker;
    if (msg.tdm === 'want-listen') w.send(listen, handleOf(w)).catch(() => undefined);
    else if (msg.tdm === 'load') fair.report(w, Number(msg.active));
    else if (msg.tdm === 'spent') fair.remove(w);
  });
  if (host.addressGate) serveAdmissions(supervisor, host.addressGate);
  supervisor.on('ready', (w) => fair.add(w));
  supervisor.on('retire', (w) => fair.remove(w));
  supervisor.on('exit', (w) => fair.remove(w));
  await startWorkers(supervisor);

  return {
    get connections() {
      return fair.connections;
    },
    close: (deadlineMs) => supervisor.stop(deadlineMs),
    reopenLogs: () => supervisor.broadcast({ tdw: 'reopen-log' }),
    status: () => ({ workers: supervisor.status(), reports: supervisor.reports() }),
    reload: async () => {
      await supervisor.reload();
    },
    // Workers take their new share as the reload replaces them.
    reconfigure: () => {
      supervisor.reconfigure(supervision(params));
      fair.setPerWorkerMax(perWorkerShare(params));
    },
  };
}
