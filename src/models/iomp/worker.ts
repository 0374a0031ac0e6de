// IOMP -c N, the worker's half: accept on the daemon's shared socket while under the ceiling the
// daemon sets (fair share, fair-share.ts) and under this worker's --max-connections share, report
// the load, and keep a spare copy of the listening handle so that accepting again needs no round trip.
// With the native dup (src/native/addon.ts) the spares are made here from a descriptor of the
// socket kept for the worker's life, as LF's are; without it each comes from the daemon.
import { createServer, type Server, type Socket } from 'node:net';
import { refused } from '../../close-reasons.js';
import { closeDup, dupHandle, nativeDup } from '../../native/addon.js';
import { ThrottledCount } from '../../throttled-count.js';
import { closeHandle, type WorkerBase, type WorkerHalf, type WorkerRules } from '../../worker/half.js';
import { LOAD_REPORT_GAP_MS, LOAD_REPORT_MS } from '../../worker/messages.js';
import { loadReportDelay } from './fair-share.js';

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
  const dup = nativeDup();
  /** With dup: this worker's own descriptor of the listening socket, each spare is a dup of. */
  let master: number | undefined;
  let handlesAsked = 0;
  let ready = false;
  const drops = new ThrottledCount(logger, 'connection refused: --max-connections reached');

  /** Connections accepted at the cap whose fate is decided at the end of this turn (onAccepted). */
  let deciding = 0;
  const atCap = () => cap > 0 && tracker.size >= cap;
  /** What the daemon last heard: at the cap or not (it decides "full" from that), and the count. */
  let reportedAtCap = false;
  let reported = 0;
  /** Date.now() of the last report. */
  let reportedAt = 0;
  /** reportTimer is a slow one (LOAD_SETTLE_MS): a larger move replaces it with a fast one. */
  let settling = false;
  const reportNow = () => {
    clearTimeout(reportTimer);
    reportTimer = undefined;
    settling = false;
    if (base.retiring) return;
    reportedAtCap = atCap();
    reported = tracker.size;
    reportedAt = Date.now();
    base.send({ tdm: 'load', active: reported }).catch(() => undefined);
  };
  /**
   * Reaching the cap and leaving it are reported at once: the daemon tells every worker to close
   * the excess while all are at theirs, so a worker it still counts at its cap after a close
   * would have the others refuse connections it has room for. Other moves: loadReportDelay.
   */
  const reportSoon = () => {
    if (base.retiring) return;
    if (atCap() !== reportedAtCap) return reportNow();
    const delay = loadReportDelay(tracker.size, reported);
    if (delay === LOAD_REPORT_MS && settling) {
      clearTimeout(reportTimer);
      reportTimer = undefined;
    }
    if (delay === undefined || reportTimer !== undefined) return;
    settling = delay !== LOAD_REPORT_MS;
    // Under churn the count moves by that much all the time: one report per gap is enough.
    const wait = settling ? delay : Math.max(delay, reportedAt + LOAD_REPORT_GAP_MS - Date.now());
    reportTimer = setTimeout(reportNow, wait);
  };
  const wantAccept = () => tracker.size < ceiling && !(atCap() && !full) && !base.spent && !base.retiring;
  /** A spare made here ({ fd }, which listen() takes), or undefined: no dup, no master, or out of descriptors. */
  const ownCopy = () => {
    if (!dup || master === undefined) return undefined;
    try {
      return { fd: dup(master) };
    } catch {
      return undefined; // out of descriptors: the daemon sends the next one
    }
  };
  /** Keep one handle listening (when accepting) and one spare, asking the daemon for what is missing. */
  const askHandles = () => {
    if (spare === undefined) spare = ownCopy();
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
    else dropCopies();
  };
  /** Spent or retiring: no spare and no master left open. */
  const dropCopies = () => {
    if (spare !== undefined) closeCopy(spare);
    spare = undefined;
    if (master !== undefined) closeDup(master);
    master = undefined;
  };
  // Counted over all of this worker's connections: a server made by an earlier listenOn still has some.
  const onAccepted = (socket: Socket) => {
    if (!atCap()) return base.serve(socket);
    // At the cap while accepting (every worker is full, or --reuse-port): the connection a client
    // closed just before opening this one may still be counted (its FIN can be read in this same
    // turn, its 'close' comes at the turn's end). Decide once this turn's reads are in, counting
    // only connections still in use; retiring waits for these decisions (settled) before it drains.
    socket.on('error', ignoreError);
    deciding++;
    setImmediate(() => {
      deciding--;
      socket.off('error', ignoreError);
      if (socket.destroyed) return; // the peer gave up meanwhile
      if (tracker.inUse() < cap) return base.serve(socket);
      refused('max_connections');
      drops.add({ max: cap, remote: socket.remoteAddress });
      socket.destroy();
    });
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
    if (base.spent || base.retiring) {
      closeHandle(handle);
      return;
    }
    if (dup && master === undefined) master = dupHandle(dup, handle);
    if (!server && wantAccept()) listenOn(handle);
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
      reportSoon(); // reaching the cap goes out at once: the daemon decides whether all are full
      reconcile();
    },
    closed() {
      reportSoon();
      reconcile();
    },
    retire() {
      server?.close();
      clearTimeout(reportTimer);
      dropCopies();
    },
    // setImmediate callbacks run in order: one queued now runs after every pending decision.
    settled: () => (deciding > 0 ? new Promise((r) => setImmediate(r)) : Promise.resolve()),
  };
}

function ignoreError(): void {}

/** Closes a spare: a handle from the daemon, or a { fd } made here. */
function closeCopy(copy: unknown): void {
  const { fd } = copy as { fd?: unknown };
  if (typeof (copy as { close?: unknown }).close === 'function') closeHandle(copy);
  else if (typeof fd === 'number') closeDup(fd);
}
