// LF, the worker's half: one connection at a time, accepted on a copy of the daemon's socket
// (accept-turns.ts) or sent by the daemon (one that waited there); when it is over, the worker
// listens again on a copy of its own (a short connection, with the native dup) or says 'idle'.
import type { SendHandle } from 'node:child_process';
import type { Socket } from 'node:net';
import { nativeDup } from '../../native/addon.js';
import { closeHandle, type WorkerBase, type WorkerHalf, type WorkerRules } from '../../worker/half.js';
import type { FromWorker } from '../../worker/messages.js';
import { AcceptTurns } from './accept-turns.js';

export const lfWorker: WorkerHalf = { single: false, create: lfRules };

const IDLE: FromWorker = { tdm: 'idle' };

function lfRules(base: WorkerBase): WorkerRules {
  const { admission } = base;
  const closed = () => {
    // A short connection of its own: listening again already, nothing to tell the daemon.
    if (turns.finished()) return;
    if (!base.spent && !base.retiring) base.post(IDLE);
  };
  const turns = new AcceptTurns({
    send: base.post,
    // A refused connection ends the turn as a served one would.
    serve: admission ? (socket: Socket) => admission.admit(socket, base.serve, closed) : base.serve,
    fail: base.fail,
    onFirstTurn: () => base.channel.ready(),
    dup: nativeDup(),
  });
  return {
    start: () => void base.send({ tdm: 'want-listen' }).catch(() => undefined),
    message(msg, handle) {
      if (msg.tdm === 'listen') {
        if (!handle) turns.hold();
        else if (base.spent || base.retiring) closeHandle(handle);
        else turns.arm(handle, msg.own === true);
      } else if (msg.tdm === 'copy-back') {
        // The daemon needs a descriptor of its own of the socket: it arrives as a new one.
        if (handle)
          process.send?.({ tdm: 'copy' } satisfies FromWorker, handle as SendHandle, {}, () =>
            closeHandle(handle),
          );
      } else if (msg.tdm === 'conn') {
        // A message whose socket was lost on the way still frees this worker.
        if (handle) turns.take(handle as Socket);
        else {
          turns.takeLost();
          closed();
        }
      } else if (msg.tdm === 'own-copies-off') {
        turns.ownCopiesOff();
      }
    },
    closed,
    spent: () => turns.stop(),
    retire: () => turns.stop(),
  };
}
