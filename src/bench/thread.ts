// Entry of a load thread: runs its share of the connections between the main thread's
// `start` and `stop`, then posts what it counted. Messages: see protocol.ts.
import { parentPort, workerData } from 'node:worker_threads';
import { ConnectLoad } from './connect-load.js';
import { EchoLoad } from './echo-load.js';
import { type LoadEngine, type LoadShare, makeShare } from './engine.js';
import { HoldLoad } from './hold-load.js';
import type { BenchMode } from './options.js';
import { PacedConnectLoad } from './paced-connect-load.js';
import type { FromThread, ThreadInit, ToThread } from './protocol.js';
import { RequestLoad } from './request-load.js';
import { loadProtocol } from './request-protocol.js';
import { Tally } from './tally.js';

const ENGINES: Record<BenchMode, (share: LoadShare) => LoadEngine | Promise<LoadEngine>> = {
  echo: (share) => new EchoLoad(share),
  connect: (share) =>
    share.options.rate === undefined ? new ConnectLoad(share) : new PacedConnectLoad(share),
  hold: (share) => new HoldLoad(share),
  // Its module is imported in this thread (functions do not cross threads).
  request: async (share) => new RequestLoad(share, await loadProtocol(share.options.request!)),
};

const port = parentPort!;
const init = workerData as ThreadInit;
const tally = new Tally();
const engine = await ENGINES[init.options.mode](makeShare(init.options, init.connIds, tally));
let elu = performance.eventLoopUtilization();

function post(msg: FromThread): void {
  port.postMessage(msg);
}

port.on('message', (msg: ToThread) => {
  if (msg.type === 'start') {
    elu = performance.eventLoopUtilization();
    engine.start();
    engine.ramped?.then((r) => post({ type: 'ramped', ...r }));
  } else if (msg.type === 'stop') {
    const busy = performance.eventLoopUtilization(elu).utilization;
    engine.stop().then(() => {
      post({ type: 'result', tally: tally.toData(), busy });
      port.close();
    });
  }
});
post({ type: 'ready' });
