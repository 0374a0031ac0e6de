// A worker process of IOMP -c N, LF or IF, the model-neutral part: joins the supervisor, loads the
// handler, serves the connections its model's worker half (src/models/<model>/worker.ts) takes
// through the connection path, recycles at -n, and when retired stops taking new ones, drains, and
// exits 0.
import type { Socket } from 'node:net';
import { AdmissionClient } from '../address-admission.js';
import { ConnectionTracker } from '../connection-tracker.js';
import { watchDescriptors } from '../fd-watch.js';
import { createLazyLogger } from '../lazy-logger.js';
import { createLogger, type DaemonLogger } from '../logger.js';
import type { Meter } from '../metrics/meter.js';
import { workerHalfFor } from '../models/worker-halves.js';
import { exitOnUncaught, keepServingOnUncaught } from '../process-guards.js';
import { joinSupervisor } from '../supervisor/worker-channel.js';
import type { Logger, Tcpmain } from '../types.js';
import type { WorkerConfig } from './config.js';
import type { WorkerRules } from './half.js';
import { type FromWorker, isModelMessage, type ToWorker } from './messages.js';
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

/** The daemon's warm-up connection (src/models/handoff-warmup.ts): echo, then close. */
function echoWarmup(socket: Socket): void {
  socket.unref();
  socket.on('error', () => socket.destroy());
  (async () => {
    for await (const chunk of socket) socket.write(chunk);
    socket.end();
  })().catch(() => socket.destroy());
}

/**
 * Runs this process as a worker. A handler that cannot be loaded is reported to the daemon and
 * the log, and the process exits 1 (the supervisor backs off before the next try).
 */
export async function startWorker(
  config: WorkerConfig,
  getHandler: (logger: Logger) => Promise<Tcpmain> | Tcpmain,
): Promise<RunningWorker> {
  const half = workerHalfFor(config.model);
  // Everything the channel's callbacks touch exists before the channel does.
  let retiring: Promise<void> | undefined;
  let served = 0;
  let spent = false;
  let rules: WorkerRules | undefined;
  let log: DaemonLogger | undefined;
  const tracker = new ConnectionTracker();
  const stopper = new AbortController();
  const channel = joinSupervisor({
    counts: () => ({ served, active: tracker.size }),
    onRetire: (graceMs) => void retire(graceMs),
    onReopenLog: () => log?.reopen(),
  });
  const single = half.single;
  const logOptions = {
    logfile: config.logfile ?? undefined,
    level: config.loglevel,
    format: config.logFormat,
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

  const onClosed = () => rules?.closed();
  const serve = (socket: Socket) => {
    served++;
    runner.serve(socket);
    socket.on('close', onClosed); // 'close' comes once: no once() wrapper per connection
    if (config.recycleAfter > 0 && served >= config.recycleAfter && !spent) {
      spent = true;
      rules?.spent?.();
      send({ tdm: 'spent' }).catch(() => undefined);
      channel.requestRecycle(`served ${served} connections`);
    }
    rules?.served?.();
  };
  // --max-conns-per-ip, --max-conn-rate-per-ip: the daemon admits each connection first.
  const admission = !single && config.admission ? new AdmissionClient(send) : undefined;
  rules = half.create({
    config,
    logger,
    channel,
    tracker,
    meter,
    admission,
    serve,
    send,
    post,
    fail: (err) => {
      logger.fatal({ err: err.message }, 'worker cannot accept on the shared socket');
      log?.flush();
      process.exit(1);
    },
    flush: () => log?.flush(),
    get spent() {
      return spent;
    },
    get retiring() {
      return retiring !== undefined;
    },
  });

  process.on('message', (m: unknown, handle: unknown) => {
    if (!isModelMessage(m)) return;
    const msg = m as ToWorker;
    if (msg.tdm === 'warm') {
      if (handle) echoWarmup(handle as Socket);
    } else if (msg.tdm === 'admitted') {
      admission?.answer(msg.id, msg.admission);
    } else rules?.message(msg, handle);
  });

  // A declaration: the channel may call it while the handler is still loading.
  function retire(graceMs: number): Promise<void> {
    retiring ??= (async () => {
      const deadline = Date.now() + graceMs;
      stopper.abort();
      rules?.retire();
      // Connections accepted already are served with the others: those waiting for the daemon's
      // admission get their answer first, those a half is still deciding on its decision.
      await admission?.finish(process.connected ? graceMs : 0); // no daemon: no answer comes
      await rules?.settled?.();
      const cut = await tracker.drain(Math.max(0, deadline - Date.now()));
      if (cut > 0) log?.logger.warn({ count: cut }, 'shutdown timeout: open connections destroyed');
      await channel.beat();
      log?.flush();
      process.exit(0);
    })();
    return retiring;
  }

  rules.start();

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
