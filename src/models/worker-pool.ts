// The workers of IOMP -c N, LF and IF (processes) and of TLF (threads): how to start one
// (WorkerSpec), the supervisor built from the daemon's parameters, and a start that fails fast when
// the workers (processes or threads) cannot start at all.
import { fork } from 'node:child_process';
import { childEnv } from '../child-channel.js';
import { WorkerStartError } from '../errors.js';
import type { ResolvedParams } from '../params.js';
import type { SupervisedChild } from '../supervisor/child.js';
import { Supervisor } from '../supervisor/index.js';
import type {
  ExitInfo,
  SupervisorOptions,
  WorkerHandle,
  WorkerSpec,
  WorkerStartContext,
} from '../supervisor/supervisor.js';
import { type WorkerConfig, workerEnv } from '../worker/config.js';
import { entryLaunch, rerunLaunch } from '../worker/launch.js';
import { isModelMessage } from '../worker/messages.js';
import type { ModelHost } from './model.js';

export { WorkerStartError };

/** Failed starts of one slot, before its first ready worker, after which start-up gives up. */
const START_ATTEMPTS = 3;

export interface WorkerPoolOptions {
  accept: WorkerConfig['accept'];
  /** Supervisor slots; default -c (IF: its spares). */
  size?: number;
  /**
   * TLF: the workers are threads of the daemon process, started by this with the config built
   * for each. They send heartbeats over their port; --max-memory does not apply (no RSS of their own).
   */
  thread?: (ctx: WorkerStartContext, config: WorkerConfig) => SupervisedChild;
}

/** Why a function handler cannot run in worker processes here, or undefined. */
export function workerLaunchProblem(handler: unknown): string | undefined {
  if (typeof handler !== 'function' || rerunLaunch()) return undefined;
  return 'a function handler with worker processes needs a script to re-run (process.argv[1]); pass a module path instead';
}

/** A worker's share of --max-connections where workers accept themselves (IOMP -c N, TLF); 0 = none. */
export function perWorkerShare(params: ResolvedParams): number {
  return params.maxConnections > 0 ? Math.ceil(params.maxConnections / params.workers) : 0;
}

/** The supervisor's values a config reload may change (SupervisorOptions, from the parameters). */
export function supervision(
  params: ResolvedParams,
  opts?: Pick<WorkerPoolOptions, 'thread'>,
): Pick<SupervisorOptions, 'backoff' | 'hangTimeoutMs' | 'maxRssBytes' | 'retireGraceMs'> {
  return {
    backoff: { initialMs: params.restartDelay * 1000, maxMs: params.restartDelayMax * 1000 },
    hangTimeoutMs: params.hangTimeout * 1000,
    maxRssBytes: opts?.thread ? 0 : params.maxMemory * 1048576,
    retireGraceMs: params.shutdownTimeout * 1000,
  };
}

/**
 * What every worker (process or thread) of this daemon is told: plain JSON. Built for each start
 * from host.params, so a worker started after a config reload gets the reloaded values.
 */
export function workerConfig(host: ModelHost, opts: WorkerPoolOptions): WorkerConfig {
  const { params } = host;
  return {
    model: params.model,
    accept: opts.accept,
    handlerPath: host.handlerPath ?? null,
    callIndex: host.callIndex,
    address: host.address,
    addressInfo: (host.shared ?? host.server)?.address() ?? null,
    idleTimeout: params.timeout,
    proxyHeaderTimeoutMs: params.proxyProtocol ? params.proxyHeaderTimeout * 1000 : null,
    tcpNodelay: params.tcpNodelay,
    tcpLinger: params.tcpLinger ?? null,
    unix: params.listenAddress.kind === 'unix',
    params: { ...params.params },
    loglevel: params.loglevel,
    logFormat: params.logFormat,
    logfile: host.logfile ?? null,
    // An IF process serves one connection anyway.
    recycleAfter: opts.accept === 'single' ? 0 : params.recycleAfter,
    maxConnections: opts.accept === 'shared' ? perWorkerShare(params) : 0,
    maxOutputBuffer: params.maxOutputBuffer,
    tls: host.tls?.workerTls() ?? null,
    admission: host.addressGate !== undefined && opts.accept !== 'single',
    metrics: host.metrics !== undefined,
  };
}

export function createSupervisor(host: ModelHost, opts: WorkerPoolOptions): Supervisor {
  const { params } = host;
  const thread = opts.thread;
  const supervisor = new Supervisor({
    name: thread ? 'threads' : params.model.toLowerCase(),
    size: opts.size ?? params.workers,
    logger: host.logger,
    spec: thread
      ? { heartbeats: true, start: (ctx) => thread(ctx, workerConfig(host, opts)) }
      : processSpec(host, opts),
    ...supervision(params, opts),
  });
  host.metrics?.watch(supervisor);
  host.adopt?.(supervisor);
  return supervisor;
}

/** Forked worker processes: the worker entry for a handler module, else the calling script again. */
function processSpec(host: ModelHost, opts: WorkerPoolOptions): WorkerSpec {
  const { params } = host;
  const launch = host.handlerPath === undefined ? rerunLaunch() : entryLaunch();
  if (!launch) throw new WorkerStartError(workerLaunchProblem(params.handler));
  // Per start: a reload changes the config (and, for a re-run command, its handed-down input).
  const env = (): NodeJS.ProcessEnv => childEnv(workerEnv(workerConfig(host, opts)), ['detached']);
  return {
    start: (ctx) =>
      fork(launch.file, launch.args, {
        execArgv: launch.execArgv,
        env: { ...env(), ...ctx.env },
        stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
      }),
  };
}

/**
 * Starts every worker; resolves once all are ready. If a slot dies START_ATTEMPTS times before
 * its first ready worker, stops them all and rejects with the reason the worker gave.
 */
export function startWorkers(supervisor: Supervisor): Promise<void> {
  let lastFatal: string | undefined;
  const failures = new Map<number, number>();
  const readySlots = new Set<number>();
  let failed = false;
  return new Promise((resolve, reject) => {
    const onMessage = (_w: WorkerHandle, m: unknown) => {
      if (isModelMessage(m) && m.tdm === 'fatal') lastFatal = String((m as { message?: unknown }).message);
    };
    const onReady = (w: WorkerHandle) => {
      readySlots.add(w.slot);
    };
    const onExit = (w: WorkerHandle, info: ExitInfo) => {
      if (readySlots.has(w.slot)) return;
      const n = (failures.get(w.slot) ?? 0) + 1;
      failures.set(w.slot, n);
      if (n < START_ATTEMPTS || failed) return;
      failed = true;
      done();
      const how = info.signal ? `signal ${info.signal}` : `code ${info.code}`;
      const why = lastFatal ?? `worker exited with ${how} (${info.reason})`;
      supervisor.stop(0).then(() => reject(new WorkerStartError(`workers could not start: ${why}`)));
    };
    const done = () => {
      supervisor.off('message', onMessage).off('ready', onReady).off('exit', onExit);
    };
    supervisor.on('message', onMessage).on('ready', onReady).on('exit', onExit);
    supervisor.start().then(() => {
      if (failed) return;
      done();
      resolve();
    });
  });
}
