// tcpdaemon(params): validate, load the handler, listen once, start the model, stop gracefully.
import { EventEmitter } from 'node:events';
import { unlinkSync, writeFileSync } from 'node:fs';
import type { AddressInfo, Server } from 'node:net';
import { resolve } from 'node:path';
import { loadHandler } from './handler/load.js';
import { boundAddress, listenOnce } from './listen.js';
import { formatAddress } from './listen-address.js';
import { createLogger, type DaemonLogger } from './logger.js';
import { modelFor } from './models/index.js';
import type { RunningModel } from './models/model.js';
import { type ResolvedParams, type TcpdaemonParams, validateParams } from './params.js';
import type { SignalInbox } from './signals.js';
import type { Logger, Tcpmain } from './types.js';
import { VERSION } from './version.js';

export interface DaemonOptions {
  /** Act on SIGTERM/SIGINT (stop; a second one forces), SIGUSR1 (reopen log). The CLI passes its inbox. */
  signals?: SignalInbox;
  /** Called when the process should end (CLI: process.exit). Default: nothing. */
  exit?: (code: number) => void;
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
  readonly logger: Logger;
}

export async function tcpdaemon(
  input: TcpdaemonParams,
  options: DaemonOptions = {},
): Promise<TcpdaemonHandle> {
  const params = validateParams(input);
  const model = modelFor(params);
  const handlerPath = typeof params.handler === 'string' ? resolve(params.handler) : undefined;
  const logfile = params.logfile === undefined ? undefined : resolve(params.logfile);
  const pidFile = params.pidFile === undefined ? undefined : resolve(params.pidFile);
  if (params.workPath !== undefined) process.chdir(params.workPath);

  const log = createLogger({ logfile, level: params.loglevel, workerId: 0 });
  const { logger } = log;
  const tcpmain: Tcpmain =
    handlerPath === undefined ? (params.handler as Tcpmain) : await loadHandler(handlerPath);

  const server = await listenOnce(
    params.listenAddress,
    { pauseOnConnect: model.pauseOnConnect(params) },
    logger,
  );
  const bound = server.address();
  const address = formatAddress(boundAddress(server, params.listenAddress));
  const stopper = new AbortController();
  let running: RunningModel;
  try {
    running = await model.start({
      params,
      server,
      logger,
      logfile,
      tcpmain,
      handlerPath,
      stopSignal: stopper.signal,
    });
  } catch (err) {
    server.close();
    throw err;
  }
  if (pidFile !== undefined) writeFileSync(pidFile, `${process.pid}\n`);
  logger.info(
    {
      model: params.model,
      address,
      handler: handlerPath ?? '<function>',
      workers: params.workers,
      version: VERSION,
      node: process.version,
    },
    'listening',
  );

  const handle = new DaemonHandle(params, server, bound, running, stopper, log, pidFile);
  if (options.signals) attachSignals(handle, options.signals, options.exit ?? (() => undefined));
  return handle;
}

class DaemonHandle extends EventEmitter implements TcpdaemonHandle {
  private closing: Promise<void> | undefined;
  private reloading: Promise<void> | undefined;

  constructor(
    private readonly params: ResolvedParams,
    private readonly server: Server,
    /** Read once: a model may stop the daemon's own accepting (TLF), the address stays. */
    private readonly bound: AddressInfo | string | null,
    private readonly running: RunningModel,
    private readonly stopper: AbortController,
    readonly log: DaemonLogger,
    private readonly pidFile: string | undefined,
  ) {
    super();
  }

  get logger(): Logger {
    return this.log.logger;
  }

  address(): AddressInfo | string | null {
    return this.bound;
  }

  get connections(): number {
    return this.running.connections;
  }

  /** Re-reads the handler module from disk (SIGHUP); overlapping calls share one reload. */
  reload(): Promise<void> {
    if (!this.running.reload) {
      this.log.logger.warn('reload requested, but this model cannot reload');
      return Promise.resolve();
    }
    this.reloading ??= this.running.reload().finally(() => {
      this.reloading = undefined;
    });
    return this.reloading;
  }

  reopenWorkerLogs(): void {
    this.running.reopenLogs?.();
  }

  close(): Promise<void> {
    this.closing ??= this.stop();
    return this.closing;
  }

  private async stop(): Promise<void> {
    const { logger } = this.log;
    const open = this.running.connections;
    logger.info({ connections: open, timeoutS: this.params.shutdownTimeout }, 'stopping: no new connections');
    const closed = new Promise<void>((r) => this.server.close(() => r()));
    this.stopper.abort();
    await this.running.close(this.params.shutdownTimeout * 1000);
    await closed;
    this.removePidFile();
    logger.info('stopped');
    this.log.flush();
    this.emit('close');
  }

  removePidFile(): void {
    if (this.pidFile === undefined) return;
    try {
      unlinkSync(this.pidFile);
    } catch {
      // already gone
    }
  }
}

function attachSignals(handle: DaemonHandle, inbox: SignalInbox, exit: (code: number) => void): void {
  let stopping = false;
  inbox.attach((sig) => {
    const { logger } = handle.log;
    if (sig === 'SIGUSR1') {
      handle.log.reopen();
      handle.reopenWorkerLogs();
      logger.info('log file reopened (SIGUSR1)');
    } else if (sig === 'SIGHUP') {
      if (!stopping) handle.reload();
    } else if (!stopping) {
      stopping = true;
      logger.info({ signal: sig }, 'stop requested');
      handle.close().then(
        () => exit(0),
        (err: unknown) => {
          logger.error({ err }, 'stop failed');
          handle.log.flush();
          exit(1);
        },
      );
    } else {
      logger.warn({ signal: sig }, 'second stop signal: exiting now');
      handle.removePidFile();
      handle.log.flush();
      exit(1);
    }
  });
}
