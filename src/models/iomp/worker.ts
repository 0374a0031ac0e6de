// IOMP -c N, the worker's half: accept on the daemon's shared socket while under the ceiling the
// daemon sets (fair share, fair-share.ts) and under this worker's --max-connections share, report
// the load, and keep a spare copy of the listening handle so that accepting again needs no round trip.
import { createServer, type Server, type Socket } from 'node:net';
import { refused } from '../../close-reasons.js';
import { ThrottledCount } from '../../throttled-count.js';
import { closeHandle, type WorkerBase, type WorkerHalf, type WorkerRules } from '../../worker/half.js';
import { LOAD_REPORT_MS } from '../../worker/messages.js';

export const iompWorker: WorkerHalf = { single: false, create: iompRules };

function iompRules(base: WorkerBase): WorkerRules {
  const { logger, channel, tracker, admission } = base;
  const cap = base.config.maxConnections;
  let server: Server | undefined;
  let reportTimer: NodeJS.Timeout | undefined;
  /** From the daemon: stop accepting at this many open connections (fair share). */
  let ceiling = Number.POSITIVE_INFINITY;
  /** From the daemon: every worker is at its cap; accept and close the excess. */
  let full = false;
  /** A copy of the listening handle kept unused, so accepting again needs no round trip. */
  let spare: unknown;
  let handlesAsked = 0;
  let ready = false;
  const drops = new ThrottledCount(logger, 'connection refused: --max-connections reached');

  const reportNow = () => {
    clearTimeout(reportTimer);
    reportTimer = undefined;
    if (!base.retiring) base.send({ tdm: 'load', active: tracker.size }).catch(() => undefined);
  };
  const reportSoon = () => {
    if (!reportTimer && !base.retiring) reportTimer = setTimeout(reportNow, LOAD_REPORT_MS);
  };
  const atCap = () => cap > 0 && tracker.size >= cap;
  const wantAccept = () => tracker.size < ceiling && !(atCap() && !full) && !base.spent && !base.retiring;
  /** Keep one handle listening (when accepting) and one spare, asking the daemon for what is missing. */
  const askHandles = () => {
    const want = (!server && wantAccept() ? 1 : 0) + (spare === undefined ? 1 : 0) - handlesAsked;
    for (let k = 0; k < want; k++) {
      handlesAsked++;
      base.send({ tdm: 'want-listen' }).catch(() => {
        handlesAsked--;
      });
    }
  };
  /** Listen or not, from what this worker knows now. */
  const reconcile = () => {
    if (!ready) return;
    const accept = wantAccept();
    if (accept && !server && spare !== undefined) {
      const handle = spare;
      spare = undefined;
      listenOn(handle);
    } else if (!accept && server) {
      server.close();
      server = undefined;
      reportNow(); // the daemon raises the others' ceilings, or ours
    }
    if (!base.spent && !base.retiring) askHandles();
  };
  // Counted over all of this worker's connections: a server made by an earlier listenOn still has some.
  const onAccepted = (socket: Socket) => {
    if (atCap()) {
      refused('max_connections');
      drops.add({ max: cap, remote: socket.remoteAddress });
      socket.destroy();
      return;
    }
    base.serve(socket);
  };
  // --max-conns-per-ip, --max-conn-rate-per-ip: the daemon admits each connection first.
  const accepted = admission ? (socket: Socket) => admission.admit(socket, onAccepted) : onAccepted;
  const listenOn = (handle: unknown) => {
    const s = createServer(accepted);
    server = s;
    s.on('error', base.fail);
    s.listen(handle as Parameters<Server['listen']>[0], () => {
      if (!ready) {
        ready = true;
        channel.ready();
      }
      reconcile(); // things may have changed while the handle was on its way
    });
  };
  const onHandle = (handle: unknown) => {
    handlesAsked = Math.max(0, handlesAsked - 1);
    if (base.spent || base.retiring) closeHandle(handle);
    else if (!server && wantAccept()) listenOn(handle);
    else if (spare === undefined) spare = handle;
    else closeHandle(handle);
  };

  return {
    start: askHandles,
    message(msg, handle) {
      if (msg.tdm === 'listen') {
        if (handle) onHandle(handle);
      } else if (msg.tdm === 'accept') {
        ceiling = typeof msg.ceiling === 'number' ? msg.ceiling : Number.POSITIVE_INFINITY;
        full = msg.full === true;
        reconcile();
      }
    },
    served() {
      if (atCap())
        reportNow(); // the daemon decides at once whether all workers are full
      else reportSoon();
      reconcile();
    },
    closed() {
      reportSoon();
      reconcile();
    },
    retire() {
      server?.close();
      clearTimeout(reportTimer);
    },
  };
}
