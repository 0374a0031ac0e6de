// `tcpdaemon agent` as a library call: a daemon whose handler is the agent's local side, with the
// agent's upstream connections in every process that serves local connections. Hosts are the
// --upstream list, or follow the route table (--upstream SERVICE --discovery nats://...).

import { type DaemonOptions, type TcpdaemonHandle, tcpdaemon } from '../daemon.js';
import type { RouteEntry } from '../fleet/route.js';
import type { RouteTable } from '../fleet/route-table.js';
import { parseListenAddress } from '../listen-address.js';
import { createCodec } from '../message/codecs/index.js';
import { defaultLogger } from '../message/default-logger.js';
import { type ConfigSource, logApplied, planReload } from '../platform/reload-config.js';
import type { Logger, Tcpmain } from '../types.js';
import { isWorkerProcess } from '../worker/config.js';
import { Agent, type AgentSnapshot } from './agent.js';
import { HostSet, type HostSpec } from './hosts.js';
import { createLocalHandler } from './local.js';
import { meterAgent } from './metrics.js';
import { type AgentConfig, type ResolvedAgentConfig, validateAgentConfig } from './params.js';
import { agentSections } from './status.js';

export interface AgentHandle extends TcpdaemonHandle {
  /** This process's agent (undefined in a primary of -c N, which serves no connection). */
  readonly agent: Agent | undefined;
  snapshot(): AgentSnapshot | undefined;
}

export interface AgentOptions extends DaemonOptions {
  /** With --config: what SIGHUP re-reads (the --upstream host list and the daemon's live values). */
  config?: ConfigSource;
}

/** Starts `tcpdaemon agent`: validates (ParamError), listens, connects upstream; close() drains. */
export async function startAgent(input: AgentConfig, options: AgentOptions = {}): Promise<AgentHandle> {
  let cfg = validateAgentConfig(input);
  const codec = createCodec(cfg.codec);
  const serves = isWorkerProcess() || (cfg.daemon.workers ?? 1) === 1;
  let agent: Agent | undefined;
  let ready!: (a: Agent) => void;
  const agentReady = new Promise<Agent>((r) => {
    ready = r;
  });
  let local: Tcpmain | undefined;
  const handler: Tcpmain = (socket, env) =>
    local ? local(socket, env) : agentReady.then((a) => createLocalHandler(a)(socket, env));
  // The route table is read before anything listens: NATS unreachable stops the start with one
  // line and no socket left behind. It logs through the daemon's logger once that exists.
  const logs = lateLogger();
  let table: RouteTable | undefined;
  if (serves && cfg.upstream.kind === 'service') {
    const { RouteTable } = await import('../fleet/route-table.js');
    const { service, servers } = cfg.upstream;
    table = await RouteTable.open({
      servers,
      logger: logs.logger,
      services: [service],
      name: 'tcpdaemon agent',
    });
  }
  const { config: source, ...daemonOptions } = options;
  const reconfigure: DaemonOptions['reconfigure'] = source
    ? (log) => {
        const plan = planReload(source, log);
        if (!plan) return undefined;
        const next = validateAgentConfig(plan.input);
        const from = cfg.upstream;
        const to = next.upstream;
        if (from.kind === 'hosts' && to.kind === 'hosts') {
          if (JSON.stringify(from.hosts) !== JSON.stringify(to.hosts))
            agent?.setHosts(to.hosts.map((h) => ({ ...h, weight: 1 })));
        } else if (JSON.stringify(from) !== JSON.stringify(to)) {
          log.warn(
            { key: 'upstream' },
            'needs a restart: upstream (--upstream) between a service and hosts, or another service; the running value is kept',
          );
          next.upstream = from;
        }
        cfg = next;
        return {
          params: { ...next.daemon, listen: next.listen, handler },
          applied: () => logApplied(plan, log),
        };
      }
    : undefined;
  let handle: TcpdaemonHandle;
  try {
    handle = await tcpdaemon(
      { ...cfg.daemon, listen: cfg.listen, handler },
      {
        ...daemonOptions,
        workerReport: () => agent?.snapshot(),
        workerMetrics: (m) => meterAgent(m, () => agent),
        statusSections: agentSections,
        notReady: (reports) => notReady(reports),
        reconfigure,
      },
    );
  } catch (err) {
    await table?.close();
    throw err;
  }
  const logger = handle.logger;
  logs.bind(logger);
  if (serves) {
    const hosts = new HostSet(cfg.strategy, logger);
    const a = new Agent(cfg, codec, hosts, logger);
    if (cfg.upstream.kind === 'hosts') {
      hosts.set(cfg.upstream.hosts.map((h) => ({ ...h, weight: 1 })));
    } else if (table) {
      const { service } = cfg.upstream;
      hosts.set(toHostSpecs(table.entries(service)));
      table.on('change', (s, entries) => {
        if (s !== service) return;
        const specs = toHostSpecs(entries);
        logger.info({ service, upstreams: specs.map((h) => h.id) }, 'upstream hosts from the route table');
        a.setHosts(specs);
      });
    }
    a.start();
    agent = a;
    local = createLocalHandler(a);
    ready(a);
    logger.info(
      {
        upstream: describe(cfg),
        hosts: hosts.list().map((h) => h.id),
        connections: cfg.connections,
        strategy: cfg.strategy,
        requestTimeoutMs: cfg.requestTimeoutMs,
        maxInFlight: cfg.maxInFlight,
        maxInFlightPerConn: cfg.maxInFlightPerConn,
      },
      'agent ready',
    );
  }
  const closeDaemon = handle.close.bind(handle);
  let closing: Promise<void> | undefined;
  const close = () => {
    closing ??= (async () => {
      // Local connections get their requests in flight answered before they close.
      await closeDaemon();
      agent?.close();
      await table?.close();
    })();
    return closing;
  };
  return Object.assign(handle, { close, agent, snapshot: () => agent?.snapshot() });
}

/** A logger to hand out before the daemon's exists: warnings before bind() go to stderr. */
function lateLogger(): { logger: Logger; bind(real: Logger): void } {
  let real: Logger | undefined;
  let early: Logger | undefined;
  const logger = new Proxy({} as Logger, {
    get(_target, prop) {
      if (real === undefined && early === undefined) early = defaultLogger('tcpdaemon agent');
      const target = (real ?? early) as unknown as Record<string | symbol, unknown>;
      const value = target[prop];
      return typeof value === 'function' ? value.bind(target) : value;
    },
  });
  return {
    logger,
    bind: (r) => {
      real = r;
    },
  };
}

/** /readyz: not ready while no upstream connection is up in some serving process. */
function notReady(reports: unknown[]): string | undefined {
  const snaps = reports.filter(
    (r): r is AgentSnapshot =>
      typeof r === 'object' && r !== null && Array.isArray((r as AgentSnapshot).links),
  );
  if (snaps.length === 0) return 'the agent is starting';
  const up = snaps.some((s) => s.links.some((l) => l.state === 'connected'));
  return up ? undefined : 'no upstream connection is up';
}

/** Route entries (HOST:PORT) as hosts; an entry whose address cannot be parsed is skipped. */
function toHostSpecs(entries: RouteEntry[]): HostSpec[] {
  const out: HostSpec[] = [];
  for (const e of entries) {
    try {
      const a = parseListenAddress(e.address);
      if (a.kind === 'tcp')
        out.push({ id: e.address, address: { host: a.host, port: a.port }, weight: e.weight });
    } catch {
      // not an address we can connect to
    }
  }
  return out;
}

function describe(cfg: ResolvedAgentConfig): string {
  return cfg.upstream.kind === 'service'
    ? `service ${cfg.upstream.service} on ${cfg.upstream.servers.join(',')}`
    : cfg.upstream.hosts.map((h) => h.id).join(',');
}
