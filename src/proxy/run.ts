// The proxy as a library call: a daemon whose handler forwards to a pool of backends, and
// (with spawn) the supervised backend processes behind it.
import { readFileSync } from 'node:fs';
import type { ConnectionOptions } from 'node:tls';
import { handDown, readVar } from '../child-channel.js';
import { type DaemonOptions, type TcpdaemonHandle, tcpdaemon } from '../daemon.js';
import { ConnectError, describeErrno, TlsConfigError } from '../errors.js';
import type { Meter } from '../metrics/meter.js';
import { type ConfigSource, logApplied, planReload } from '../platform/reload-config.js';
import type { Tcpmain } from '../types.js';
import { isWorkerProcess } from '../worker/config.js';
import type { BackendAddress, BackendSpec } from './backend.js';
import { backendId } from './backend.js';
import { type ProxyConfig, type ResolvedProxyConfig, validateProxyConfig } from './config.js';
import { DISCOVERED_TOPIC, type DiscoveredList, DiscoveryFeed, followDiscovered } from './discovery.js';
import type { ForwardOptions } from './forward.js';
import { createProxyHandler } from './front.js';
import { meterPool, proxyNotReady } from './metrics.js';
import { BackendPool } from './pool.js';
import { reloadBackends, reloadForwarding } from './reload.js';
import { planAddresses, SpawnedBackends } from './spawn.js';
import { logStatsEvery, type ProxyStatsSnapshot } from './stats.js';
import { backendSection } from './status.js';

export interface ProxyHandle extends TcpdaemonHandle {
  /** Per-backend state and counters of this process's pool. */
  stats(): ProxyStatsSnapshot;
  readonly pool: BackendPool;
  /** The spawned backends (primary process only). */
  readonly spawned: SpawnedBackends | undefined;
}

export interface ProxyOptions extends DaemonOptions {
  /** With --config: what SIGHUP re-reads (backends, limits and the front's live values). */
  config?: ConfigSource;
}

/** How long the first clients may wait for the first spawned backend to accept, ms. */
const FIRST_BACKEND_WAIT_MS = 10_000;

/**
 * Starts `tcpdaemon proxy`: validates `config` (ParamError), listens like the daemon,
 * forwards every connection to a backend. Health checks, the stats log and spawned backends run
 * until close(), which lets open connections finish before it stops the backends.
 */
export async function startProxy(config: ProxyConfig, options: ProxyOptions = {}): Promise<ProxyHandle> {
  let cfg = validateProxyConfig(config);
  const backendTls = cfg.backendTls ? readBackendTls(cfg.backendTls) : undefined;
  const inWorker = isWorkerProcess();
  let planned: { addresses: BackendAddress[]; dir?: string } | undefined;
  if (cfg.spawn !== undefined) {
    planned = inWorker ? { addresses: spawnedFromPrimary() } : await planAddresses(cfg.spawn);
    if (!inWorker) handDown('proxySpawned', JSON.stringify(planned.addresses));
  }
  // The pool logs through the daemon's own logger, which exists once tcpdaemon() resolves; a
  // connection accepted before that waits for it.
  let handler: Tcpmain | undefined;
  let ready!: (h: Tcpmain) => void;
  const handlerReady = new Promise<Tcpmain>((r) => {
    ready = r;
  });
  const tcpmain: Tcpmain = (socket, env) =>
    handler ? handler(socket, env) : handlerReady.then((h) => h(socket, env));
  let pool: BackendPool | undefined;
  const forwarding: ForwardOptions = {
    connectTimeoutMs: cfg.connectTimeoutMs,
    retries: cfg.retries,
    idleTimeoutMs: 0, // the daemon's --timeout covers the client socket, hence both directions
    sendProxy: cfg.sendProxy,
    noDelay: true,
    backendTls,
  };
  // --discover: the daemon follows the route table; each front takes the lists it pushes (discovery.ts).
  let discovered: BackendSpec[] = [];
  let applyList: (list: DiscoveredList) => void = (list) => {
    discovered = list.backends;
  };
  let feed: DiscoveryFeed | undefined;
  if (cfg.discover !== undefined) {
    if (inWorker) followDiscovered((list) => applyList(list));
    else feed = await openFeed(cfg.discover, cfg.backendTls !== undefined);
    if (feed) discovered = feed.current.backends;
  }
  let meter: Meter | undefined;
  const { config: source, ...daemonOptions } = options;
  const reconfigure: DaemonOptions['reconfigure'] = source
    ? (logger) => {
        const plan = planReload(source, logger);
        if (!plan) return undefined;
        // --discover is no live field: plan.input keeps the running one, so backends beside it are refused.
        const next = validateProxyConfig(plan.input);
        if (pool) reloadBackends(pool, cfg.backends, next.backends, logger);
        reloadForwarding(forwarding, next);
        cfg = next;
        return { params: frontParams(next, tcpmain), applied: () => logApplied(plan, logger) };
      }
    : undefined;
  let handle: Awaited<ReturnType<typeof tcpdaemon>>;
  try {
    handle = await tcpdaemon(frontParams(cfg, tcpmain), {
      ...daemonOptions,
      workerReport: () => pool?.snapshot(),
      statusSections: feed ? (reports) => [...backendSection(reports), feed.section()] : backendSection,
      workerMetrics: (m) => {
        meter = m;
        meterPool(m, () => pool);
      },
      notReady: proxyNotReady,
      reconfigure,
    });
  } catch (err) {
    await feed?.close();
    throw err;
  }
  const logger = handle.logger;
  feed?.useLogger(logger);
  pool = new BackendPool([...cfg.backends, ...discovered], {
    strategy: cfg.strategy,
    passive: cfg.passive,
    checks: checkOptions(cfg),
    logger,
  });
  pool.meter = meter;
  if (cfg.discover !== undefined) {
    const livePool = pool;
    // A front logs its changes at debug: the daemon's lines say the same once.
    const level = inWorker ? 'debug' : 'info';
    applyList = (list) => {
      reloadBackends(livePool, discovered, list.backends, logger, 'route table', level);
      discovered = list.backends;
    };
    if (feed) {
      const push = (list: DiscoveredList) => {
        applyList(list);
        handle.sendToWorkers(DISCOVERED_TOPIC, JSON.stringify(list));
      };
      feed.onList(push);
      // A change while the daemon started: fronts forked before it have not seen it.
      push(feed.current);
    }
  }
  let spawned: SpawnedBackends | undefined;
  if (cfg.spawn !== undefined && planned !== undefined) {
    if (inWorker) {
      // The primary supervises them; here connect checks and passive tracking follow them.
      for (const address of planned.addresses) pool.add({ id: backendId(address), address, weight: 1 });
    } else {
      spawned = new SpawnedBackends(cfg.spawn, planned.addresses, planned.dir, pool, logger, {
        graceMs: (cfg.daemon.shutdownTimeout ?? 10) * 1000,
      });
      for (const spec of spawned.specs) pool.add(spec, { down: true });
      // The first clients wait for the first backend, unless every one failed its first start.
      const firstUp = pool.whenAnyUp(FIRST_BACKEND_WAIT_MS);
      spawned.start();
      await Promise.race([firstUp, spawned.firstOutcomes]);
    }
  }
  handler = createProxyHandler(pool, forwarding);
  ready(handler);
  logger.info(
    {
      backends: describe(pool, [...cfg.backends, ...discovered], spawned?.specs ?? []),
      ...(cfg.discover ? { discover: cfg.discover.service, discovery: cfg.discover.servers.join(',') } : {}),
      spawned: spawned ? { count: spawned.specs.length, pids: spawned.pids() } : null,
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
  // Open connections finish first (they need their backends), then the backends stop.
  const closeDaemon = handle.close.bind(handle);
  let closing: Promise<void> | undefined;
  const close = () => {
    closing ??= (async () => {
      await closeDaemon();
      await feed?.close();
      stopStats();
      pool.close();
      await spawned?.stop();
    })();
    return closing;
  };
  return Object.assign(handle, { close, stats: () => pool.snapshot(), pool, spawned });
}

/** The front daemon's parameters: the daemon's own keys, with the proxy's handler. */
function frontParams(cfg: ResolvedProxyConfig, handler: Tcpmain) {
  return {
    ...cfg.daemon,
    listen: cfg.listen,
    handler,
    timeout: cfg.timeout,
    // The daemon reads a balancer's PROXY header; env then names the client (hash key, --send-proxy).
    proxyProtocol: cfg.proxyProtocol,
    proxyHeaderTimeout: cfg.proxyHeaderTimeout,
  };
}

/** The --backend-tls files, read once per process (TlsConfigError names one that cannot be read). */
function readBackendTls(files: NonNullable<ResolvedProxyConfig['backendTls']>): ConnectionOptions {
  const read = (file: string) => {
    try {
      return readFileSync(file, 'utf8');
    } catch (err) {
      throw new TlsConfigError(file, `cannot read: ${describeErrno(err)}`);
    }
  };
  return {
    ...(files.ca ? { ca: read(files.ca) } : {}),
    ...(files.cert && files.key ? { cert: read(files.cert), key: read(files.key) } : {}),
    ...(files.servername ? { servername: files.servername } : {}),
  };
}

function checkOptions(cfg: ResolvedProxyConfig) {
  if (cfg.healthIntervalMs === 0) return false as const;
  const { rise, fall, timeoutMs } = cfg.checks;
  return { intervalMs: cfg.healthIntervalMs, timeoutMs, rise, fall };
}

/** The daemon's route-table feed; ConnectError (one line naming the URL) when NATS cannot be reached. */
async function openFeed(
  discover: NonNullable<ResolvedProxyConfig['discover']>,
  backendTls: boolean,
): Promise<DiscoveryFeed> {
  const { RouteTable } = await import('../fleet/route-table.js');
  const { default: pino } = await import('pino');
  // The daemon's logger exists once tcpdaemon() resolves (feed.useLogger); until then the route
  // table's own warnings (JetStream retries while opening) go to stderr.
  const early = pino({ level: 'warn' }, process.stderr);
  let table: Awaited<ReturnType<typeof RouteTable.open>>;
  try {
    table = await RouteTable.open({
      servers: discover.servers,
      logger: early,
      services: [discover.service],
      name: `tcpdaemon proxy --discover ${discover.service}`,
    });
  } catch (err) {
    throw new ConnectError(`--discover ${discover.service}: ${(err as Error).message}`);
  }
  return new DiscoveryFeed(table, discover.service, backendTls);
}

function spawnedFromPrimary(): BackendAddress[] {
  const raw = readVar('proxySpawned');
  return raw === undefined ? [] : (JSON.parse(raw) as BackendAddress[]);
}

function describe(pool: BackendPool, listed: BackendSpec[], spawned: BackendSpec[]): string[] {
  return [...listed, ...spawned].map((b) => {
    const text = b.weight === 1 ? b.id : `${b.id},weight=${b.weight}`;
    return spawned.includes(b) ? `${text} (spawned, ${pool.state(b.id)})` : text;
  });
}
