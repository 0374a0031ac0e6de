// tcpdaemon(params): validate, load the handler, listen once, start the model, stop gracefully.
import { EventEmitter, setMaxListeners } from 'node:events';
import type { AddressInfo, Server } from 'node:net';
import { resolve } from 'node:path';
import { type AddressGate, addressGateFor } from './address-gate.js';
import { watchDescriptors } from './fd-watch.js';
import type { Announcer } from './fleet/announcer.js';
import { loadHandler } from './handler/load.js';
import {
  bindReusePortGroup,
  bindShared,
  boundAddress,
  type Listening,
  listenOnce,
  type SharedListener,
} from './listen.js';
import { formatAddress } from './listen-address.js';
import { createLogger, type DaemonLogger } from './logger.js';
import type { DaemonOps } from './metrics/daemon-ops.js';
import type { Meter } from './metrics/meter.js';
import { modelFor } from './models/index.js';
import type { RunningModel } from './models/model.js';
import { DAEMON_FIELDS, type ResolvedParams, type TcpdaemonParams, validateParams } from './params.js';
import { applyLive } from './platform/fields.js';
import { attachSignals, HostFiles, stopInOrder } from './platform/host.js';
import type { SignalInbox } from './signals.js';
import type { DaemonStatus, StatusSection } from './status.js';
import type { Supervisor } from './supervisor/supervisor.js';
import { workersProblem } from './systemd/health.js';
import { passedSocketFor, systemdSocket } from './systemd/listen-fds.js';
import type { ServiceManager } from './systemd/notify.js';
import type { DaemonTls } from './tls/daemon-tls.js';
import type { Logger, Tcpmain } from './types.js';
import { VERSION } from './version.js';
import { currentWorkerConfig, takeWorkerConfig, type WorkerConfig } from './worker/config.js';
import { type RunningWorker, startWorker } from './worker/run.js';

export interface DaemonOptions {
  /** Act on SIGTERM/SIGINT (stop; a second one forces), SIGUSR1 (reopen log). The CLI passes its inbox. */
  signals?: SignalInbox;
  /** Called when the process should end (CLI: process.exit). Default: nothing. */
  exit?: (code: number) => void;
  /**
   * What each process that serves connections adds to its heartbeats (a small JSON value): the
   * daemon's status report hands them, from every worker, to `statusSections`.
   */
  workerReport?: () => unknown;
  /** Blocks the command adds to the status report, from the serving processes' reports. */
  statusSections?: (reports: unknown[]) => StatusSection[];
  /** --metrics: in each process that serves connections, the command adds its values to the meter. */
  workerMetrics?: (meter: Meter) => void;
  /** Why the command cannot take connections now (/readyz), from the serving processes' reports; undefined = it can. */
  notReady?: (reports: unknown[]) => string | undefined;
  /** systemd (Type=notify): told of reloads and the stop; asked for the workers' health. */
  serviceManager?: ServiceManager;
  /**
   * Called first on every reload (SIGHUP): the daemon parameters to run with from now on (their
   * live fields are applied, see Field.live), or undefined to keep them. `applied` is called once
   * they are. The CLI passes one when --config is given (platform/reload-config.ts).
   */
  reconfigure?: (logger: Logger) => { params: TcpdaemonParams; applied(): void } | undefined;
}

export interface TcpdaemonHandle extends EventEmitter {
  /** Like net.Server#address(): the real port when 0 was asked for; the path for a unix socket. */
  address(): AddressInfo | string | null;
  /** Open connections across all workers. */
  readonly connections: number;
  /** Graceful stop: stop accepting, let connections finish up to shutdownTimeout, cut the rest. */
  close(): Promise<void>;
  /** Serve new connections with the handler module as it is on disk now (what SIGHUP does). */
  reload(): Promise<void>;
  /** What runs now: the report `tcpdaemon status` prints. Inside a worker: undefined. */
  status(): DaemonStatus | undefined;
  /**
   * A worker-bus message (worker-bus.ts) from the daemon to every live worker process or thread,
   * `fromWorker` 0; workers started later do not get it. Nothing when the daemon serves alone
   * (IOMP -c 1) and inside a worker.
   */
  sendToWorkers(topic: string, data: Uint8Array | string): void;
  readonly logger: Logger;
}

/** tcpdaemon() calls made in this process so far: a re-run worker serves the call with its index. */
let calls = 0;

export async function tcpdaemon(
  input: TcpdaemonParams,
  options: DaemonOptions = {},
): Promise<TcpdaemonHandle> {
  const callIndex = calls++;
  let params = validateParams(input);
  const worker = currentWorkerConfig() ?? takeWorkerConfig();
  if (worker) return workerHandle(params, worker, callIndex, options);
  const model = modelFor(params);
  const handlerPath = typeof params.handler === 'string' ? resolve(params.handler) : undefined;
  const logfile = params.logfile === undefined ? undefined : resolve(params.logfile);
  const pidFile = params.pidFile === undefined ? undefined : resolve(params.pidFile);
  const statusPath = params.statusSocket === undefined ? undefined : resolve(params.statusSocket);
  if (params.workPath !== undefined) process.chdir(params.workPath);

  const log = createLogger({ logfile, level: params.loglevel, format: params.logFormat, workerId: 0 });
  const { logger } = log;
  // -l systemd[:NAME], or an address systemd passed a socket for: that socket, not a bind.
  params = { ...params, listenAddress: passedSocketFor(params.listenAddress, logger) };
  const tcpmain: Tcpmain =
    handlerPath === undefined ? (params.handler as Tcpmain) : await loadHandler(handlerPath, { logger });
  // Before listening: a certificate that cannot serve stops the start (TlsConfigError names the file).
  const tls = params.tls
    ? new (await import('./tls/daemon-tls.js')).DaemonTls(params.tls, logger, model.servesInWorkers(params))
    : undefined;

  // The pid file, the status socket and the TLS snapshot go at the stop, also a forced one.
  const files = new HostFiles(logger);
  if (tls) files.onRemove(() => tls.close());
  // Before anything listens: a second daemon with the same pid file stops here, touching nothing.
  files.claimPidFile(pidFile);
  const sharedMode = model.listenMode?.(params) === 'shared';
  let server: Server | null = null;
  let shared: SharedListener | null = null;
  try {
    if (sharedMode && params.reusePort)
      shared = await bindReusePortGroup(params.listenAddress, params.workers);
    else if (sharedMode) shared = await bindShared(params.listenAddress, logger);
    else
      server = await listenOnce(
        params.listenAddress,
        { pauseOnConnect: model.pauseOnConnect(params) },
        logger,
      );
  } catch (err) {
    await files.close();
    throw err;
  }
  const listening: Listening = (server ?? shared)!;
  const address = formatAddress(boundAddress(listening, params.listenAddress));
  const about: StatusBasics = {
    model: `${params.model} -c ${params.workers}`,
    address,
    handler: handlerPath ?? '<function>',
    startedAt: Date.now(),
  };
  let handle: DaemonHandle | undefined;
  let ops: DaemonOps | undefined;
  if (params.metrics !== undefined) {
    try {
      const { DaemonOps } = await import('./metrics/daemon-ops.js');
      ops = await DaemonOps.start(params.metrics, () => (handle ? handle.notReady() : 'starting'), logger);
    } catch (err) {
      listening.close();
      await files.close();
      throw err;
    }
  }
  try {
    await files.serveStatus(statusPath, () => handle?.status() ?? basicStatus(about, 'starting'));
  } catch (err) {
    listening.close();
    await ops?.close();
    await files.close();
    throw err;
  }
  const addressGate = addressGateFor(params, logger);
  const stopper = new AbortController();
  const supervisors: Supervisor[] = [];
  // Handlers listen on the shared stop signal once per connection: thousands of listeners are normal.
  setMaxListeners(0, stopper.signal);
  let running: RunningModel;
  try {
    running = await model.start({
      params,
      server,
      shared,
      address,
      logger,
      tcpmain,
      handlerPath,
      callIndex,
      logfile,
      stopSignal: stopper.signal,
      tls,
      addressGate,
      metrics: ops?.hub,
      adopt: (s) => supervisors.push(s),
    });
  } catch (err) {
    listening.close();
    await ops?.close();
    await files.close();
    throw err;
  }
  let announcer: Announcer | undefined;
  if (params.announce) {
    try {
      const { Announcer } = await import('./fleet/announcer.js');
      announcer = await Announcer.start(
        params.announce,
        params.announce.advertise ?? address,
        tls !== undefined,
        logger,
      );
    } catch (err) {
      stopper.abort();
      await running.close(0);
      listening.close();
      await ops?.close();
      await files.close();
      throw err;
    }
  }
  logger.info(
    {
      model: params.model,
      address,
      handler: handlerPath ?? '<function>',
      workers: params.workers,
      ...(params.reusePort ? { reusePort: true } : {}),
      ...systemdSocket(params.listenAddress),
      ...(tls ? { tls: true } : {}),
      version: VERSION,
      node: process.version,
    },
    'listening',
  );

  if (ops) {
    const { hub } = ops;
    const serving = running;
    hub.collect((out) => {
      const waiting = serving.status?.().waiting;
      if (waiting !== undefined) out.gauge('waiting', waiting);
    });
    // The daemon serves the connections itself (IOMP -c 1): the command's values are its own.
    if (!model.servesInWorkers(params)) options.workerMetrics?.(hub.daemonMeter);
  }
  // Covers the daemon process: IOMP -c 1's connections, LF's and IF's waiting ones, TLF's threads.
  const stopWatching = watchDescriptors(logger);
  stopper.signal.addEventListener('abort', stopWatching, { once: true });
  handle = new DaemonHandle(
    params,
    listening,
    running,
    stopper,
    log,
    files,
    about,
    options,
    tls,
    addressGate,
    ops,
    announcer,
    supervisors,
  );
  const service = options.serviceManager;
  service?.watch((intervalMs) => workersProblem([running.status?.().workers], intervalMs));
  if (options.signals) attachSignals(handle, options.signals, options.exit ?? (() => undefined), service);
  return handle;
}

/** What the daemon knows of itself from its start. */
interface StatusBasics {
  model: string;
  address: string;
  handler: string;
  /** Date.now() once listening, ms. */
  startedAt: number;
}

function basicStatus(about: StatusBasics, state: DaemonStatus['state']): DaemonStatus {
  return {
    pid: process.pid,
    version: VERSION,
    node: process.version,
    model: about.model,
    address: about.address,
    handler: about.handler,
    state,
    startedAt: new Date(about.startedAt).toISOString(),
    uptimeS: Math.round((Date.now() - about.startedAt) / 100) / 10,
    connections: 0,
    reloads: 0,
  };
}

class DaemonHandle extends EventEmitter implements TcpdaemonHandle {
  private closing: Promise<void> | undefined;
  private reloading: Promise<void> | undefined;
  private reloadQueued: Promise<void> | undefined;
  private reloads = 0;
  private stopped = false;
  /** Set when a stop is asked for: /readyz fails from then on. */
  private stopRequested = false;

  constructor(
    private readonly params: ResolvedParams,
    private readonly server: Listening,
    private readonly running: RunningModel,
    private readonly stopper: AbortController,
    readonly log: DaemonLogger,
    /** The pid file, the status socket (answered until the daemon has stopped), the TLS snapshot. */
    private readonly files: HostFiles,
    private readonly about: StatusBasics,
    private readonly options: DaemonOptions,
    private readonly tls: DaemonTls | undefined,
    private readonly addressGate: AddressGate | undefined,
    /** --metrics: the operations listener, answered until the daemon has stopped. */
    private readonly ops: DaemonOps | undefined,
    /** --announce: withdrawn first on stop, so clients stop coming before the drain. */
    private readonly announcer: Announcer | undefined,
    /** The model's supervisors (none for IOMP -c 1). */
    private readonly supervisors: readonly Supervisor[],
  ) {
    super();
  }

  sendToWorkers(topic: string, data: Uint8Array | string): void {
    const bytes = typeof data === 'string' ? Buffer.from(data) : data;
    for (const s of this.supervisors) s.publish(topic, bytes);
  }

  /** Why this daemon does not take connections now (/readyz); undefined when it does. */
  notReady(): string | undefined {
    if (this.stopRequested) return 'stopping';
    const model = this.running.status?.();
    if (model && !model.workers.workers.some((w) => w.state === 'ready')) return 'no worker ready';
    const { workerReport, notReady } = this.options;
    if (!notReady) return undefined;
    return notReady(model ? model.reports : workerReport ? [workerReport()] : []);
  }

  status(): DaemonStatus {
    const model = this.running.status?.();
    const { workerReport, statusSections } = this.options;
    const reports = model ? model.reports : workerReport ? [workerReport()] : [];
    const sections = [...(statusSections?.(reports) ?? [])];
    if (this.addressGate) sections.push(this.addressGate.section());
    return {
      ...basicStatus(this.about, this.stopped ? 'stopped' : this.closing ? 'stopping' : 'serving'),
      connections: this.running.connections,
      reloads: this.reloads,
      ...(model?.waiting !== undefined ? { waiting: model.waiting } : {}),
      ...(model ? { workers: model.workers } : {}),
      ...(sections.length > 0 ? { sections } : {}),
    };
  }

  get logger(): Logger {
    return this.log.logger;
  }

  address(): AddressInfo | string | null {
    return this.server.address();
  }

  get connections(): number {
    return this.running.connections;
  }

  /**
   * Re-reads the handler module from disk (SIGHUP). A call while a reload runs queues one more
   * (the file may have changed after the running one read it); further calls join the queued one.
   */
  reload(): Promise<void> {
    this.reconfigure();
    // The certificates first: workers the model replaces next start with them (or the old ones, when broken).
    this.tls?.reload();
    if (!this.running.reload) {
      this.log.logger.warn('reload requested, but this model cannot reload');
      return Promise.resolve();
    }
    if (this.reloading === undefined) {
      this.reloading = this.running
        .reload()
        .then(() => {
          this.reloads++;
          if (this.ops) this.ops.hub.reloads = this.reloads;
        })
        .finally(() => {
          this.reloading = undefined;
        });
      return this.reloading;
    }
    this.reloadQueued ??= this.reloading.then(() => {
      this.reloadQueued = undefined;
      return this.reload();
    });
    return this.reloadQueued;
  }

  /** New live parameter values (a config reload), before the workers are replaced. */
  private reconfigure(): void {
    const next = this.options.reconfigure?.(this.log.logger);
    if (!next) return;
    let resolved: ResolvedParams;
    try {
      resolved = validateParams(next.params);
    } catch (err) {
      this.log.logger.error(
        { reason: (err as Error).message },
        `config reload failed: ${(err as Error).message}`,
      );
      return;
    }
    const changed = applyLive(DAEMON_FIELDS, this.params, resolved);
    if (changed.includes('loglevel')) this.log.logger.level = this.params.loglevel;
    if (changed.length > 0) this.running.reconfigure?.();
    next.applied();
  }

  reopenLogs(): void {
    this.log.reopen();
    this.running.reopenLogs?.();
  }

  close(): Promise<void> {
    this.closing ??= this.stop();
    return this.closing;
  }

  private async stop(): Promise<void> {
    await stopInOrder({
      logger: this.log.logger,
      announcer: this.announcer,
      markStopping: () => {
        this.stopRequested = true;
      },
      listener: this.server,
      drainDelayS: this.params.drainDelay,
      shutdownTimeoutS: this.params.shutdownTimeout,
      stoppingFields: () => ({ connections: this.running.connections }),
      drain: (graceMs) => {
        this.stopper.abort();
        return this.running.close(graceMs);
      },
      ops: this.ops,
      files: this.files,
      flush: () => this.log.flush(),
    });
    this.stopped = true;
    this.emit('close');
  }

  /** The pid file (while it holds our pid), the status socket and the TLS snapshot, which outlive a process that exits without stopping. */
  removeFiles(): void {
    this.files.removeNow();
  }

  flush(): void {
    this.log.flush();
  }
}

/**
 * In a worker that re-runs the calling script (function handler): the call the worker serves runs
 * the worker; the script's other tcpdaemon() calls return an idle handle and listen nowhere.
 */
async function workerHandle(
  params: ResolvedParams,
  config: WorkerConfig,
  callIndex: number,
  options: DaemonOptions,
): Promise<TcpdaemonHandle> {
  if (callIndex !== config.callIndex || typeof params.handler !== 'function')
    return new WorkerSideHandle(config);
  const tcpmain = params.handler;
  const running = await startWorker(config, () => tcpmain);
  if (options.workerReport) running.setReport(options.workerReport);
  if (options.workerMetrics && running.meter) options.workerMetrics(running.meter);
  return new WorkerSideHandle(config, running, params.shutdownTimeout * 1000);
}

/** What tcpdaemon() returns inside a worker: address() is the daemon's, close() retires this worker. */
class WorkerSideHandle extends EventEmitter implements TcpdaemonHandle {
  readonly logger: Logger;

  constructor(
    private readonly config: WorkerConfig,
    private readonly running?: RunningWorker,
    private readonly graceMs = 0,
  ) {
    super();
    this.logger = running?.logger ?? createLogger({ level: 'fatal', workerId: 0 }).logger;
  }

  address(): AddressInfo | string | null {
    return this.running ? (this.config.addressInfo as AddressInfo | string | null) : null;
  }

  get connections(): number {
    return this.running?.connections ?? 0;
  }

  async close(): Promise<void> {
    await this.running?.retire(this.graceMs);
  }

  status(): undefined {
    return undefined;
  }

  /** Only the daemon sends to its workers (a worker publishes on workerBus). */
  sendToWorkers(): void {}

  /** Reloading replaces every worker: the daemon's job (SIGHUP to the daemon), not a worker's. */
  async reload(): Promise<void> {
    this.logger.warn('reload asked inside a worker; send SIGHUP to the daemon instead');
  }
}
