// A worker process of IOMP -c N or LF: joins the supervisor, loads the handler, takes connections
// from the shared listening socket (IOMP) or from the daemon (LF), serves them through the
// connection path, and when retired stops taking new ones, drains, and exits 0.
import { createServer, type Server, type Socket } from 'node:net';
import { ConnectionRunner } from '../connection.js';
import { ConnectionTracker } from '../connection-tracker.js';
import { createLogger, type DaemonLogger } from '../logger.js';
import { keepServingOnUncaught } from '../process-guards.js';
import { joinSupervisor } from '../supervisor/worker-channel.js';
import { ThrottledCount } from '../throttled-count.js';
import type { Logger, Tcpmain } from '../types.js';
import type { WorkerConfig } from './config.js';
import { type FromWorker, isModelMessage, LOAD_REPORT_MS, type ToWorker } from './messages.js';

export interface RunningWorker {
  readonly logger: Logger;
  /** Open connections in this worker. */
  readonly connections: number;
  /** Drain (up to `graceMs`) and exit, as when the supervisor retires this worker. */
  retire(graceMs: number): Promise<void>;
}

function send(m: FromWorker): Promise<void> {
  return new Promise((resolve, reject) => {
    if (!process.connected) return reject(new Error('no channel to the daemon'));
    process.send!(m, undefined, {}, (err: Error | null) => (err ? reject(err) : resolve()));
  });
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
  getHandler: () => Promise<Tcpmain> | Tcpmain,
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
  log = createLogger({
    logfile: config.logfile ?? undefined,
    level: config.loglevel,
    workerId: channel.workerId,
  });
  const { logger } = log;

  let tcpmain: Tcpmain;
  try {
    tcpmain = await getHandler();
  } catch (err) {
    const message = (err as Error).message;
    logger.fatal({ err: message }, 'worker could not start');
    log.flush();
    await send({ tdm: 'fatal', message }).catch(() => undefined);
    process.exit(1);
  }
  keepServingOnUncaught(logger);

  const runner = new ConnectionRunner({
    model: config.model,
    workerId: channel.workerId,
    connectionIdPrefix: `${channel.workerId}.${channel.spawnId}`,
    tcpmain,
    logger,
    signal: stopper.signal,
    tracker,
    params: Object.freeze({ ...config.params }),
    idleTimeout: config.idleTimeout,
    tcpNodelay: config.tcpNodelay,
    tcpLinger: config.tcpLinger ?? undefined,
    unix: config.unix,
  });
  const shared = config.accept === 'shared';
  /** IOMP: stop accepting while this many connections are open (the daemon's fair share). */
  let limit = Number.POSITIVE_INFINITY;
  let wantPending = false;
  let ready = false;
  const drops = new ThrottledCount(logger, 'connection refused: --max-connections reached');

  const reportNow = () => {
    clearTimeout(reportTimer);
    reportTimer = undefined;
    if (!retiring)
      send({ tdm: 'load', active: tracker.size, listening: server !== undefined }).catch(() => undefined);
  };
  const reportSoon = () => {
    if (shared && !reportTimer && !retiring) reportTimer = setTimeout(reportNow, LOAD_REPORT_MS);
  };
  const wantListen = () => {
    if (server || wantPending || spent || retiring || tracker.size >= limit) return;
    wantPending = true;
    send({ tdm: 'want-listen' }).catch(() => {
      wantPending = false;
    });
  };
  const stopListening = () => {
    server?.close();
    server = undefined;
    reportNow();
  };
  const onClosed = () => {
    if (shared) {
      reportSoon();
      wantListen();
    } else if (!spent && !retiring) {
      send({ tdm: 'idle' }).catch(() => undefined);
    }
  };
  const serve = (socket: Socket) => {
    served++;
    runner.serve(socket);
    socket.once('close', onClosed);
    if (config.recycleAfter > 0 && served >= config.recycleAfter && !spent) {
      spent = true;
      if (server) stopListening();
      send({ tdm: 'spent' }).catch(() => undefined);
      channel.requestRecycle(`served ${served} connections`);
    } else if (shared) {
      if (tracker.size >= limit && server) stopListening();
      else reportSoon();
    }
  };
  // Counted over all of this worker's connections: a server made by an earlier listenOn still has some.
  const onAccepted = (socket: Socket) => {
    if (config.maxConnections > 0 && tracker.size >= config.maxConnections) {
      drops.add({ max: config.maxConnections, remote: socket.remoteAddress });
      socket.destroy();
      return;
    }
    serve(socket);
  };
  const listenOn = (handle: unknown) => {
    wantPending = false;
    if (server || spent || retiring) return closeHandle(handle);
    const s = createServer(onAccepted);
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
      reportNow();
      // The limit may have dropped while the handle was on its way.
      if (server === s && tracker.size >= limit) stopListening();
    });
  };

  process.on('message', (m: unknown, handle: unknown) => {
    if (!isModelMessage(m)) return;
    const msg = m as ToWorker;
    if (msg.tdm === 'listen') {
      if (handle) listenOn(handle);
    } else if (msg.tdm === 'conn') {
      // A message whose socket was lost on the way still frees this worker.
      if (handle) serve(handle as Socket);
      else onClosed();
    } else if (msg.tdm === 'limit') {
      limit = msg.n === null ? Number.POSITIVE_INFINITY : Number(msg.n);
      if (server && tracker.size >= limit) stopListening();
      else wantListen();
    }
  });

  // A declaration: the channel may call it while the handler is still loading.
  function retire(graceMs: number): Promise<void> {
    retiring ??= (async () => {
      stopper.abort();
      server?.close();
      clearTimeout(reportTimer);
      const cut = await tracker.drain(graceMs);
      if (cut > 0) log?.logger.warn({ count: cut }, 'shutdown timeout: open connections destroyed');
      await channel.beat();
      log?.flush();
      process.exit(0);
    })();
    return retiring;
  }

  if (shared) wantListen();
  else channel.ready();

  return {
    logger,
    get connections() {
      return tracker.size;
    },
    retire,
  };
}
