// IF, the worker's half: serve the one socket the daemon sends, then exit when it closes.
import type { Socket } from 'node:net';
import type { WorkerBase, WorkerHalf, WorkerRules } from '../../worker/half.js';

export const ifWorker: WorkerHalf = { single: true, create: ifRules };

function ifRules(base: WorkerBase): WorkerRules {
  let taken = false;
  const closed = () => {
    base.flush();
    // With --metrics the last heartbeat carries this connection's counts first.
    if (base.meter) void base.channel.beat().finally(() => process.exit(0));
    else process.exit(0);
  };
  return {
    start: () => base.channel.ready(),
    message(msg, handle) {
      if (msg.tdm !== 'conn') return;
      // A message whose socket was lost on the way still ends this process.
      if (!handle) closed();
      else if (taken)
        (handle as Socket).destroy(); // never a second connection in one IF process
      else {
        taken = true;
        base.serve(handle as Socket);
      }
    },
    // The raw socket's 'close' can come just before the TLS layer reports a handshake the peer
    // left (in the same turn): exit on the next, so that line is logged too.
    closed: () => setImmediate(closed),
    retire: () => undefined,
  };
}
