// `tcpdaemon gateway` and `tcpdaemon worker`: the daemon process. It supervises G gateway processes
// and (ipc) N business workers through src/supervisor, accepts client connections once and hands
// them out (acceptor.ts), hosts the ipc queue's directory (queues/ipc-hub.ts), and carries signals.
import { fork } from 'node:child_process';
import { rmSync, unlinkSync } from 'node:fs';
import type { AddressInfo, Server } from 'node:net';
import { resolve } from 'node:path';
import { type AddressGate, addressGateFor } from '../address-gate.js';
import { childEnv } from '../child-channel.js';
import { WorkerStartError } from '../errors.js';
import type { Announcer } from '../fleet/announcer.js';
import { boundAddress, listenOnce } from '../listen.js';
import { formatAddress, parseListenAddress } from '../listen-address.js';
import { createLogger } from '../logger.js';
import { createCodec } from '../message/codecs/index.js';
import type { DaemonOps } from '../metrics/daemon-ops.js';
import { attachSignals, HostFiles, stopInOrder } from '../platform/host.js';
import { type ConfigSource, describeChange, logApplied, planReload } from '../platform/reload-config.js';
import { makePrivateDir } from '../private-dir.js';
import type { SignalInbox } from '../signals.js';
import type { DaemonStatus } from '../status.js';
import { Supervisor, type WorkerHandle, type WorkerSpec } from '../supervisor/index.js';
import { workersProblem } from '../systemd/health.js';
import { passedSocketFor, systemdSocket } from '../systemd/listen-fds.js';
import type { ServiceManager } from '../systemd/notify.js';
import type { DaemonTls } from '../tls/daemon-tls.js';
import type { Logger } from '../types.js';
import { VERSION } from '../version.js';
import { Acceptor } from './acceptor.js';
import { loadBusiness } from './business.js';
import { childEntry, type GatewayChildVars, workerSocketPath } from './child-env.js';
import { raiseFdLimit } from './fd-limit.js';
import type { GatewayStats } from './gateway-server.js';
import { Rpc } from './ipc-rpc.js';
import { GATEWAY_LABEL, WORKER_LABEL } from './metric-labels.js';
import { type GatewayParams, type ResolvedGatewayParams, validateGatewayParams } from './params.js';
import { IpcHub } from './queues/ipc-hub.js';
import { assertNatsReachable } from './queues/nats-probe.js';
import { gatewayStatus } from './status.js';

export interface GatewayDaemonOptions {
  /** Act on SIGTERM/SIGINT (stop), SIGHUP (reload workers), SIGUSR1 (reopen logs). */
  signals?: SignalInbox;
  /** Called when the process should end (CLI: process.exit). */
  exit?: (code: number) => void;
  /** systemd (Type=notify): told of reloads and the stop; asked for the processes' health. */
  serviceManager?: ServiceManager;
  /** With --config: what SIGHUP re-reads (limits, timeouts, supervision, log level). */
  config?: ConfigSource;
}

export interface GatewayHandle {
  /** Where clients connect (gateway command); null for the worker command. */
  address(): AddressInfo | string | null;
  /** Per gateway process: sessions, pending, late replies, timeouts, retries. */
  stats(): Promise<GatewayStats[]>;
  /** Rolling reload of the business workers (SIGHUP). */
  reload(): Promise<void>;
  /** Graceful stop: no new connections; in-flight requests get shutdownTimeout; then workers stop. */
  close(): Promise<void>;
  readonly logger: Logger;
}

export async function startGateway(
  input: GatewayParams,
  options: GatewayDaemonOptions = {},
): Promise<GatewayHandle> {
  return start(validateGatewayParams(input, 'gateway'), 'gateway', options);
}

export async function startWorkers(
  input: GatewayParams,
  options: GatewayDaemonOptions = {},
): Promise<GatewayHandle> {
  return start(validateGatewayParams(input, 'worker'), 'worker', options);
}

async function start(
  params: ResolvedGatewayParams,
  role: 'gateway' | 'worker',
  options: GatewayDaemonOptions,
): Promise<GatewayHandle> {
  const absolute = (p: string | undefined) => (p === undefined ? undefined : resolve(p));
  const resolved: ResolvedGatewayParams = {
    ...params,
    business: absolute(params.business),
    logfile: absolute(params.logfile),
    pidFile: absolute(params.pidFile),
    statusSocket: absolute(params.statusSocket),
  };
  if (resolved.workPath !== undefined) process.chdir(resolved.workPath);
  const log = createLogger({
    logfile: resolved.logfile,
    level: resolved.loglevel,
    format: resolved.logFormat,
    workerId: 0,
  });
  const logger = log.logger;
  // -l systemd[:NAME], or an address systemd passed a socket for: that socket, not a bind. Looked
  // up before any child starts: the gateway processes learn from it whether clients are on unix.
  if (resolved.listenAddress) resolved.listenAddress = passedSocketFor(resolved.listenAddress, logger);
  // Before any child starts: they inherit it.
  const fds = raiseFdLimit();
  // A broken business module is reported before anything starts, with the path and the reason.
  if (resolved.business !== undefined) await loadBusiness(resolved.business);
  if (resolved.queue.kind === 'nats') await assertNatsReachable(resolved.queue.servers);

  // The pid file, the status socket, the TLS snapshot and the socket folder go at the stop, also a forced one.
  const files = new HostFiles(logger);
  // Before anything starts or listens: a second daemon with the same pid file stops here.
  files.claimPidFile(resolved.pidFile);
  // Checked before anything starts (a broken certificate stops the start, naming the file); the
  // gateway processes terminate TLS with the daemon's snapshot of them.
  let tls: DaemonTls | undefined;
  try {
    tls =
      role === 'gateway' && resolved.tls
        ? new (await import('../tls/daemon-tls.js')).DaemonTls(resolved.tls, logger, true)
        : undefined;
  } catch (err) {
    files.removeNow();
    throw err;
  }
  if (tls) {
    const snapshot = tls;
    resolved.tlsWorker = snapshot.workerTls();
    files.onRemove(() => snapshot.close());
  }

  const ipc = resolved.queue.kind === 'ipc';
  const socketDir = ipc && role === 'gateway' ? makePrivateDir('tcpdaemon-gw-') : undefined;
  if (socketDir) files.onRemove(() => rmSync(socketDir, { recursive: true, force: true }));
  const childVars: GatewayChildVars = {
    gatewayParams: JSON.stringify(resolved),
    ...(socketDir ? { gatewaySocketDir: socketDir } : {}),
  };
  const spec = (entry: string): WorkerSpec => {
    const { file, execArgv } = childEntry(entry);
    return {
      start: (ctx) =>
        fork(file, [], {
          execArgv,
          env: childEnv({ ...childVars }, [], ctx.env),
          stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
        }),
    };
  };
  // Functions of `resolved`: a config reload changes its live values in place.
  const graceMs = () => resolved.shutdownTimeout * 1000;
  const reloadable = () => ({
    retireGraceMs: graceMs(),
    backoff: { initialMs: resolved.restartDelay * 1000, maxMs: resolved.restartDelayMax * 1000 },
    hangTimeoutMs: resolved.hangTimeout * 1000,
    maxRssBytes: resolved.maxMemory * 1048576,
  });
  const supervision = { logger, ...reloadable() };
  const storeLimits = () => ({
    maxPerName: resolved.storeMax,
    ttlMs: resolved.storeTtlMs,
    maxBytes: resolved.storeBytes,
    maxNames: resolved.storeNames,
  });
  // The per-address gate is built once (its limits need a restart); the connection limit is live.
  const acceptorLimits = () => ({ maxConnections: resolved.maxConnections, addressGate });

  let workers: Supervisor | undefined;
  let gateways: Supervisor | undefined;
  let server: Server | undefined;
  let hub: IpcHub | undefined;
  let addressGate: AddressGate | undefined;
  let closing: Promise<void> | undefined;
  /** --metrics: started before the processes, so their starts are counted; /readyz fails until listening. */
  let ops: DaemonOps | undefined;
  let serving = false;
  if (resolved.metrics !== undefined) {
    const { DaemonOps } = await import('../metrics/daemon-ops.js');
    try {
      ops = await DaemonOps.start(
        parseListenAddress(resolved.metrics),
        () => {
          if (closing) return 'stopping';
          if (!serving) return 'starting';
          if (gateways && gateways.readyWorkers().length === 0) return 'no gateway process ready';
          if (workers && workers.readyWorkers().length === 0) return 'no business worker ready';
          return undefined;
        },
        logger,
      );
    } catch (err) {
      files.removeNow();
      throw err;
    }
  }
  let acceptor: Acceptor | undefined;
  const rpcs = new Map<number, Rpc>();
  try {
    if (role === 'worker' || ipc) {
      workers = new Supervisor({
        ...supervision,
        spec: spec('worker-process'),
        size: resolved.businessWorkers,
        name: 'workers',
      });
      ops?.hub.watch(workers, WORKER_LABEL);
    }
    if (ipc && role === 'gateway') {
      hub = new IpcHub(storeLimits(), logger);
      const h = hub;
      workers!.on('ready', (w) => h.workerUp(w.spawnId, workerSocketPath(socketDir!, w.spawnId)));
      workers!.on('retire', (w) => h.workerGone(w.spawnId));
      workers!.on('exit', (w) => {
        h.workerGone(w.spawnId);
        try {
          unlinkSync(workerSocketPath(socketDir!, w.spawnId));
        } catch {
          // it removed its socket, or never made one
        }
      });
    }
    if (workers) await startOrFail(workers, 'worker');

    if (role === 'gateway') {
      const codec = createCodec(resolved.codec, { maxBody: resolved.maxBody });
      addressGate = addressGateFor(resolved, logger);
      const front = new Acceptor(codec, acceptorLimits(), logger);
      acceptor = front;
      gateways = new Supervisor({
        ...supervision,
        spec: spec('gateway-process'),
        size: resolved.gateways,
        name: 'gateways',
      });
      ops?.hub.watch(gateways, GATEWAY_LABEL);
      const rpcFor = (w: WorkerHandle): Rpc => {
        let rpc = rpcs.get(w.spawnId);
        if (!rpc) {
          rpc = new Rpc({
            post: (m, handle) => {
              w.send(m, handle as never).catch(() => undefined);
              return true;
            },
          });
          rpc.on('closed', (m) => front.closed(w.spawnId, (m.remotes as string[]) ?? []));
          rpcs.set(w.spawnId, rpc);
        }
        return rpc;
      };
      gateways.on('message', (w, m) => rpcFor(w).receive(m));
      gateways.on('ready', (w) => {
        // Made here whatever the queue: status, stats and TLS reloads reach the process through it.
        const rpc = rpcFor(w);
        hub?.addGateway(w, rpc);
        front.addGateway(w);
      });
      gateways.on('retire', (w) => front.retireGateway(w.spawnId));
      gateways.on('exit', (w) => {
        front.removeGateway(w.spawnId);
        hub?.removeGateway(w.spawnId);
        rpcs.get(w.spawnId)?.closed('gateway process exited');
        rpcs.delete(w.spawnId);
      });
      await startOrFail(gateways, 'gateway');
      server = await listenOnce(resolved.listenAddress!, { pauseOnConnect: true }, logger);
      front.attach(server);
    }
  } catch (err) {
    server?.close();
    await Promise.all([gateways?.stop(0), workers?.stop(0)]);
    hub?.close();
    await ops?.close();
    files.removeNow();
    log.flush();
    throw err;
  }
  serving = true;
  if (ops && hub) {
    const store = hub.store;
    ops.hub.collect((out) => out.gauge('gatewayStored', store.size));
  }

  const address = server ? formatAddress(boundAddress(server, resolved.listenAddress!)) : undefined;
  let announcer: Announcer | undefined;
  if (resolved.announce && address !== undefined) {
    try {
      const { Announcer } = await import('../fleet/announcer.js');
      announcer = await Announcer.start(
        resolved.announce,
        resolved.announce.advertise ?? address,
        tls !== undefined,
        logger,
      );
    } catch (err) {
      server?.close();
      await Promise.all([gateways?.stop(0), workers?.stop(0)]);
      hub?.close();
      files.removeNow();
      log.flush();
      throw err;
    }
  }

  const startedAt = Date.now();
  const report = async (): Promise<DaemonStatus> => {
    const stats = await handle.stats();
    return gatewayStatus({
      role,
      address: address ?? '(no listener)',
      business: resolved.business ?? '',
      queue: resolved.queue.kind === 'ipc' ? 'ipc' : resolved.queue.servers.join(','),
      state: closing ? 'stopping' : 'serving',
      startedAt,
      reloads,
      gateways: gateways?.status(),
      workers: workers?.status(),
      stats,
      stored: hub?.store.size,
      addressLimits: addressGate?.section(),
    });
  };
  let reloads = 0;
  const { config: source } = options;
  /** SIGHUP with --config: the live values of the file apply, in this process and the children. */
  const reconfigure = () => {
    if (!source) return;
    const plan = planReload(source, logger);
    if (!plan) return;
    const next = validateGatewayParams(plan.input as GatewayParams, role);
    const storeBefore = { max: resolved.storeMax, ttl: resolved.storeTtlMs };
    // Non-live fields kept their running values in plan.input; the paths were absolute at start.
    Object.assign(resolved, {
      ...next,
      business: resolved.business,
      logfile: resolved.logfile,
      pidFile: resolved.pidFile,
      statusSocket: resolved.statusSocket,
      tlsWorker: resolved.tlsWorker,
    });
    logger.level = resolved.loglevel;
    // Children started from now on (the business workers the reload replaces) read these.
    childVars.gatewayParams = JSON.stringify(resolved);
    for (const s of [gateways, workers]) s?.reconfigure(reloadable());
    acceptor?.setLimits(acceptorLimits());
    hub?.store.setLimits(storeLimits());
    const { loglevel, timeout, maxWaitingRequests, maxSessionBytes } = resolved;
    for (const rpc of rpcs.values()) {
      rpc.post({ gw: 'reconfigure', params: { loglevel, timeout, maxWaitingRequests, maxSessionBytes } });
    }
    if (
      role === 'gateway' &&
      !hub &&
      (storeBefore.max !== resolved.storeMax || storeBefore.ttl !== resolved.storeTtlMs)
    ) {
      // With NATS the kept messages live in the gateway processes' queue, set up at their start.
      const changes = plan.live.filter((c) => c.field.key === 'storeMax' || c.field.key === 'storeTtl');
      logger.warn(
        { key: changes.map((c) => c.field.key) },
        `needs a restart with --queue nats: ${changes.map(describeChange).join(', ')}`,
      );
    }
    logApplied(plan, logger);
  };
  const handle: GatewayHandle = {
    logger,
    address: () => server?.address() ?? null,
    stats: () =>
      Promise.all(
        (gateways?.readyWorkers() ?? []).flatMap((w) => {
          const rpc = rpcs.get(w.spawnId);
          return rpc ? [rpc.call<GatewayStats>({ gw: 'stats' })] : [];
        }),
      ),
    async reload() {
      reconfigure();
      // New certificates: each gateway process swaps them in for its next handshakes.
      if (tls?.reload()) for (const rpc of rpcs.values()) rpc.post({ gw: 'tls-reload' });
      if (!workers) return;
      reloads++;
      if (ops) ops.hub.reloads = reloads;
      const r = await workers.reload();
      if (!r.ok) logger.error({ slot: r.slot, err: r.error }, 'reload of the workers stopped');
    },
    close() {
      closing ??= stopInOrder({
        logger,
        announcer,
        listener: server,
        drainDelayS: resolved.drainDelay,
        shutdownTimeoutS: resolved.shutdownTimeout,
        drain: async (graceMs) => {
          // Gateways first, so requests in flight still find their workers.
          await gateways?.stop(graceMs);
          await workers?.stop(graceMs);
        },
        ops,
        finish: () => hub?.close(),
        files,
        flush: () => log.flush(),
      });
      return closing;
    },
  };
  try {
    await files.serveStatus(resolved.statusSocket, report);
  } catch (err) {
    await handle.close();
    throw err;
  }
  logger.info(
    {
      role,
      address,
      queue: resolved.queue.kind === 'ipc' ? 'ipc' : resolved.queue.servers.join(','),
      codec: resolved.codec,
      business: resolved.business,
      workers: workers ? resolved.businessWorkers : 0,
      gateways: gateways ? resolved.gateways : 0,
      openFiles: fds.soft ?? 'unlimited',
      ...systemdSocket(resolved.listenAddress),
      version: VERSION,
      node: process.version,
    },
    role === 'gateway' ? 'listening' : 'workers ready',
  );
  options.serviceManager?.watch((intervalMs) =>
    workersProblem([gateways?.status(), workers?.status()], intervalMs),
  );
  if (options.signals)
    attachSignals(
      {
        logger,
        close: () => handle.close(),
        reload: () => handle.reload(),
        reopenLogs: () => {
          log.reopen();
          for (const s of [gateways, workers]) s?.broadcast({ tdw: 'reopen-log' });
        },
        // A forced exit still leaves no pid file, status socket or socket directory behind.
        removeFiles: () => files.removeNow(),
        flush: () => log.flush(),
      },
      options.signals,
      options.exit ?? (() => undefined),
      options.serviceManager,
    );
  return handle;
}

/** Resolves once every slot had a ready process; rejects if one exits during start-up. */
function startOrFail(supervisor: Supervisor, what: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const onExit = (_w: WorkerHandle, info: { code: number | null; signal: NodeJS.Signals | null }) =>
      reject(
        new WorkerStartError(
          `a ${what} process exited during start-up (${info.signal ?? `code ${info.code}`}); its log line says why`,
        ),
      );
    supervisor.once('exit', onExit);
    supervisor.start().then(() => {
      supervisor.off('exit', onExit);
      resolve();
    }, reject);
  });
}
