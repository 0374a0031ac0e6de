// A worker process of IOMP -c N, LF or IF: joins the supervisor, loads the handler, takes
// connections from the shared listening socket (IOMP; LF one at a time) or from the daemon (IF;
// LF: those that waited there), serves them
// through the connection path, and when retired stops taking new ones, drains, and exits 0.
// An IF process serves one connection and exits when it closes.
import type { SendHandle } from 'node:child_process';
import { createServer, type Server, type Socket } from 'node:net';
import { AdmissionClient } from '../address-admission.js';
import { refused } from '../close-reasons.js';
import { ConnectionTracker } from '../connection-tracker.js';
import { watchDescriptors } from '../fd-watch.js';
import { createLazyLogger } from '../lazy-logger.js';
import { createLogger, type DaemonLogger } from '../logger.js';
import type { Meter } from '../metrics/meter.js';
import { exitOnUncaught, keepServingOnUncaught } from '../process-guards.js';
import { joinSupervisor } from '../supervisor/worker-channel.js';
import { ThrottledCount } from '../throttled-count.js';
import type { Logger, Tcpmain } from '../types.js';
import { AcceptTurns } from './accept-turns.js';
import type { WorkerConfig } from './config.js';
import { type FromWorker, isModelMessage, LOAD_REPORT_MS, type ToWorker } from './messages.js';
import { workerRunner, workerTls } from './runner.js';

export interface RunningWorker {
  readonly logger: Logger;
  /** Open connections in this worker. */
  readonly connections: number;
  /** Drain (up to `graceMs`) and exit, as when the supervisor retires this worker. */
  retire(graceMs: number): Promise<void>;
  /** Adds `report()` to every heartbeat (the daemon's status merges the workers' reports). */
  setReport(report: () => unknown): void;
  /** --metrics: this worker's meter (a command adds its own values to it); undefined without. */
  readonly meter: Meter | undefined;
}

/** Fire and forget: no promise per message (LF sends one per connection). */
function post(m: FromWorker): void {
  if (process.connected) process.send!(m, undefined, {}, ignoreError);
}

function ignoreError(): void {}

function send(m: FromWorker): Promise<void> {
  return new Promise((resolve, reject) => {
    if (!process.connected) return reject(new Error('no channel to the daemon'));
    process.send!(m, undefined, {}, (err: Error | null) => (err ? reject(err) : resolve()));
  });
}

const IDLE: FromWorker = { tdm: 'idle' };

/** The daemon's warm-up connection (src/models/handoff-warmup.ts): echo, then close. */
function echoWarmup(socket: Socket): void {
  socket.unref();
  socket.on('error', () => socket.destroy());
  (async () => {
    for await (const chunk of socket) socket.write(chunk);
    socket.end();
  })().catch(() => socket.destroy());
}

function closeHandle(handle: unknown): void {
  try {
    (handle as { close(): void }).close();
  } catch {
    // not a handle we can close; nothing leaks with it
  }
}

/**
 * Runs this process as a worker. A handler that cannot be loaded is reported to the daemon and
 * the log, and the process exits 1 (the supervisor backs off before the next try).
 */
export async function startWorker(
  config: WorkerConfig,
  getHandler: (logger: Logger) => Promise<Tcpmain> | Tcpmain,
): Promise<RunningWorker> {
  // Everything the channel's callbacks touch exists before the channel does.
  let retiring: Promise<void> | undefined;
  let served = 0;
  let spent = false;
  let server: Server | undefined;
  let reportTimer: NodeJS.Timeout | undefined;
  let log: DaemonLogger | undefined;
  const tracker = new ConnectionTracker();
  const stopper = new AbortController();
  const channel = joinSupervisor({
    counts: () => ({ served, active: tracker.size }),
    onRetire: (graceMs) => void retire(graceMs),
    onReopenLog: () => log?.reopen(),
  });
  const single = config.accept === 'single';
  const logOptions = {
    logfile: config.logfile ?? undefined,
    level: config.loglevel,
    workerId: channel.workerId,
  };
  // An IF process loads pino with its first line logged (most log nothing, and start sooner). A
  // long-lived worker loads it now: a module loaded later needs a descriptor, and when it logs
  // may be just when it is out of them (EMFILE).
  log = single ? createLazyLogger(logOptions) : createLogger(logOptions);
  const { logger } = log;

  let tcpmain: Tcpmain;
  let tls: Awaited<ReturnType<typeof workerTls>>;
  try {
    tcpmain = await getHandler(logger);
    tls = await workerTls(config, logger);
  } catch (err) {
    const message = (err as Error).message;
    logger.fatal({ err: message }, 'worker could not start');
    log.flush();
    await send({ tdm: 'fatal', message }).catch(() => undefined);
    process.exit(1);
  }
  // An IF process has one connection: a throw from its callbacks ends it (and only it).
  if (single) exitOnUncaught(logger, () => log?.flush());
  else {
    keepServingOnUncaught(logger);
    watchDescriptors(logger);
  }

  const runner = workerRunner(config, channel, {
    tcpmain,
    logger,
    signal: stopper.signal,
    tracker,
    tls,
  });
  const meter = config.metrics
    ? (await import('../metrics/worker-metrics.js')).installWorkerMetrics(channel, runner)
    : undefined;
  const shared = config.accept === 'shared';
  const cap = config.maxConnections;
  /** IOMP, from the daemon: stop accepting at this many open connections (fair share). */
  let ceiling = Number.POSITIVE_INFINITY;
  /** IOMP, from the daemon: every worker is at its cap; accept and close the excess. */
  let full = false;
  /** IOMP: a copy of the listening handle kept unused, so accepting again needs no round trip. */
  let spare: unknown;
  let handlesAsked = 0;
  let ready = false;
  /** Connections accepted at the cap whose fate is decided at the end of this turn (onAccepted). */
  let deciding = 0;
  const drops = new ThrottledCount(logger, 'connection refused: --max-connections reached');

  const atCap = () => cap > 0 && tracker.size >= cap;
  /** What the daemon last heard: at the cap or not (it decides "full" from that). */
  let reportedAtCap = false;
  const reportNow = () => {
    clearTimeout(reportTimer);
    reportTimer = undefined;
    if (retiring) return;
    reportedAtCap = atCap();
    send({ tdm: 'load', active: tracker.size }).catch(() => undefined);
  };
  /**
   * Reaching the cap and leaving it are reported at once: the daemon tells every worker to close
   * the excess while all are at theirs, so a worker it still counts at its cap after a close
   * would have the others refuse connections it has room for. Other changes wait LOAD_REPORT_MS.
   */
  const reportSoon = () => {
    if (!shared || retiring) return;
    if (atCap() !== reportedAtCap) reportNow();
    else reportTimer ??= setTimeout(reportNow, LOAD_REPORT_MS);
  };
  const wantAccept = () => tracker.size < ceiling && !(atCap() && !full) && !spent && !retiring;
  /** Keep one handle listening (when accepting) and one spare, asking the daemon for what is missing. */
  const askHandles = () => {
    const want = (!server && wantAccept() ? 1 : 0) + (spare === undefined ? 1 : 0) - handlesAsked;
    for (let k = 0; k < want; k++) {
      handlesAsked++;
      send({ tdm: 'want-listen' }).catch(() => {
        handlesAsked--;
      });
    }
  };
  /** IOMP: listen or not, from what this worker knows now. */
  const reconcile = () => {
    if (!shared || !ready) return;
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
    if (!spent && !retiring) askHandles();
  };
  const onClosed = () => {
    turns?.finished();
    if (single) {
      log?.flush();
      // With --metrics the last heartbeat carries this connection's counts first.
      if (meter) void channel.beat().finally(() => process.exit(0));
      else process.exit(0);
    } else if (shared) {
      reportSoon();
      reconcile();
    } else if (!spent && !retiring) {
      post(IDLE);
    }
  };
  const serve = (socket: Socket) => {
    if (single && served > 0) {
      socket.destroy(); // never a second connection in one IF process
      return;
    }
    served++;
    runner.serve(socket);
    socket.on('close', onClosed); // 'close' comes once: no once() wrapper per connection
    if (config.recycleAfter > 0 && served >= config.recycleAfter && !spent) {
      spent = true;
      turns?.stop();
      send({ tdm: 'spent' }).catch(() => undefined);
      channel.requestRecycle(`served ${served} connections`);
    }
    if (!shared) return;
    reportSoon();
    reconcile();
  };
  // Counted over all of this worker's connections: a server made by an earlier listenOn still has some.
  const onAccepted = (socket: Socket) => {
    if (!atCap()) return serve(socket);
    // At the cap while accepting (every worker is full, or --reuse-port): the connection a client
    // closed just before opening this one may still be counted (its FIN can be read in this same
    // turn, its 'close' comes at the turn's end). Decide once this turn's reads are in, counting
    // only connections still in use; retire() waits for these decisions before it drains.
    socket.on('error', ignoreError);
    deciding++;
    setImmediate(() => {
      deciding--;
      socket.off('error', ignoreError);
      if (socket.destroyed) return; // the peer gave up meanwhile
      if (tracker.inUse() < cap) return serve(socket);
      refused('max_connections');
      drops.add({ max: cap, remote: socket.remoteAddress });
      socket.destroy();
    });
  };
  // --max-conns-per-ip, --max-conn-rate-per-ip: the daemon admits each connection first.
  const admission = config.accept !== 'single' && config.admission ? new AdmissionClient(send) : undefined;
  const accepted = admission ? (socket: Socket) => admission.admit(socket, onAccepted) : onAccepted;
  const listenOn = (handle: unknown) => {
    const s = createServer(accepted);
    server = s;
    s.on('error', (err) => {
      logger.fatal({ err: err.message }, 'worker cannot accept on the shared socket');
      log?.flush();
      process.exit(1);
    });
    s.listen(handle as Parameters<Server['listen']>[0], () => {
      if (!ready) {
        ready = true;
        channel.ready();
      }
      reconcile(); // things may have changed while the handle was on its way
    });
  };
  /** LF: this worker accepts on copies of the daemon's socket, one connection at a time. */
  const turns =
    config.accept === 'one-at-a-time'
      ? new AcceptTurns({
          send: post,
          // A refused connection ends the turn as a served one would.
          serve: admission ? (socket: Socket) => admission.admit(socket, serve, onClosed) : serve,
          fail: (err) => {
            logger.fatal({ err: err.message }, 'worker cannot accept on the shared socket');
            log?.flush();
            process.exit(1);
          },
          onFirstTurn: () => channel.ready(),
        })
      : undefined;
  const onHandle = (handle: unknown) => {
    handlesAsked = Math.max(0, handlesAsked - 1);
    if (spent || retiring) closeHandle(handle);
    else if (!server && wantAccept()) listenOn(handle);
    else if (spare === undefined) spare = handle;
    else closeHandle(handle);
  };

  process.on('message', (m: unknown, handle: unknown) => {
    if (!isModelMessage(m)) return;
    const msg = m as ToWorker;
    if (msg.tdm === 'listen') {
      if (turns) {
        if (!handle) turns.hold();
        else if (spent || retiring) closeHandle(handle);
        else turns.arm(handle);
      } else if (handle) onHandle(handle);
    } else if (msg.tdm === 'copy-back') {
      // The daemon needs a descriptor of its own of the socket: it arrives as a new one.
      if (handle)
        process.send?.({ tdm: 'copy' } satisfies FromWorker, handle as SendHandle, {}, () =>
          closeHandle(handle),
        );
    } else if (msg.tdm === 'warm') {
      if (handle) echoWarmup(handle as Socket);
    } else if (msg.tdm === 'conn') {
      // A message whose socket was lost on the way still frees this worker.
      if (handle && turns) turns.take(handle as Socket);
      else if (handle) serve(handle as Socket);
      else onClosed();
    } else if (msg.tdm === 'accept') {
      ceiling = typeof msg.ceiling === 'number' ? msg.ceiling : Number.POSITIVE_INFINITY;
      full = msg.full === true;
      reconcile();
    } else if (msg.tdm === 'admitted') {
      admission?.answer(msg.id, msg.admission);
    }
  });

  // A declaration: the channel may call it while the handler is still loading.
  function retire(graceMs: number): Promise<void> {
    retiring ??= (async () => {
      const deadline = Date.now() + graceMs;
      stopper.abort();
      server?.close();
      turns?.stop();
      clearTimeout(reportTimer);
      // Connections accepted already are served with the others: those waiting for the daemon's
      // admission get their answer first, those accepted at the cap their decision.
      await admission?.finish(process.connected ? graceMs : 0); // no daemon: no answer comes
      if (deciding > 0) await new Promise((r) => setImmediate(r)); // setImmediate runs in order
      const cut = await tracker.drain(Math.max(0, deadline - Date.now()));
      if (cut > 0) log?.logger.warn({ count: cut }, 'shutdown timeout: open connections destroyed');
      await channel.beat();
      log?.flush();
      process.exit(0);
    })();
    return retiring;
  }

  if (shared) askHandles();
  else if (turns) send({ tdm: 'want-listen' }).catch(() => undefined);
  else channel.ready();

  return {
    logger,
    get connections() {
      return tracker.size;
    },
    retire,
    setReport: (report) => channel.setReport(report),
    meter,
  };
}
