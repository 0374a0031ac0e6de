// The proxy as a library call: a daemon whose handler forwards to a pool of backends.
import { type DaemonOptions, type TcpdaemonHandle, tcpdaemon } from '../daemon.js';
import type { Tcpmain } from '../types.js';
import { type ProxyConfig, ProxyConfigError, validateProxyConfig } from './config.js';
import { createProxyHandler } from './front.js';
import { BackendPool } from './pool.js';
import { logStatsEvery, type ProxyStatsSnapshot } from './stats.js';

export interface ProxyHandle extends TcpdaemonHandle {
  /** Per-backend state and counters of this process's pool. */
  stats(): ProxyStatsSnapshot;
  readonly pool: BackendPool;
}

/**
 * Starts `tcpdaemon proxy`: validates `config` (ProxyConfigError), listens like the daemon,
 * forwards every connection to a backend. Health checks and the stats log run until close().
 */
export async function startProxy(config: ProxyConfig, options: DaemonOptions = {}): Promise<ProxyHandle> {
  const cfg = validateProxyConfig(config);
  if (cfg.spawn !== undefined)
    throw new ProxyConfigError('--spawn is not available yet (the supervisor has not landed)');
  // The pool logs through the daemon's own logger, which exists once tcpdaemon() resolves; a
  // connection accepted before that waits for it.
  let handler: Tcpmain | undefined;
  let ready!: (h: Tcpmain) => void;
  const handlerReady = new Promise<Tcpmain>((r) => {
    ready = r;
  });
  const tcpmain: Tcpmain = (socket, env) =>
    handler ? handler(socket, env) : handlerReady.then((h) => h(socket, env));
  const d = cfg.daemon;
  const handle = await tcpdaemon(
    {
      listen: cfg.listen,
      handler: tcpmain,
      model: d.model,
      workers: d.workers,
      logfile: d.logfile,
      loglevel: d.loglevel,
      pidFile: d.pidFile,
      maxConnections: d.maxConnections,
      shutdownTimeout: d.shutdownTimeout,
      tcpNodelay: d.tcpNodelay,
      timeout: cfg.timeout,
    },
    options,
  );
  const logger = handle.logger;
  const pool = new BackendPool(cfg.backends, {
    strategy: cfg.strategy,
    passive: cfg.passive,
    checks:
      cfg.healthIntervalMs > 0
        ? {
            intervalMs: cfg.healthIntervalMs,
            timeoutMs: cfg.checks.timeoutMs,
            rise: cfg.checks.rise,
            fall: cfg.checks.fall,
          }
        : false,
    logger,
  });
  handler = createProxyHandler(pool, {
    connectTimeoutMs: cfg.connectTimeoutMs,
    retries: cfg.retries,
    idleTimeoutMs: 0, // the daemon's --timeout covers the client socket, hence both directions
    sendProxy: cfg.sendProxy,
    noDelay: true,
    proxyProtocol: cfg.proxyProtocol,
    headerTimeoutMs: cfg.headerTimeoutMs,
  });
  ready(handler);
  logger.info(
    {
      backends: cfg.backends.map((b) => (b.weight === 1 ? b.id : `${b.id},weight=${b.weight}`)),
      strategy: cfg.strategy,
      healthIntervalMs: cfg.healthIntervalMs,
      connectTimeoutMs: cfg.connectTimeoutMs,
      retries: cfg.retries,
      sendProxy: cfg.sendProxy ?? null,
      proxyProtocol: cfg.proxyProtocol,
    },
    'proxy ready',
  );
  const stopStats = logStatsEvery(cfg.statsIntervalMs, () => pool.snapshot(), logger);
  handle.once('close', () => {
    stopStats();
    pool.close();
  });
  return Object.assign(handle, { stats: () => pool.snapshot(), pool });
}
