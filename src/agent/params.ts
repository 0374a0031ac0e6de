// The agent's parameter schema: `tcpdaemon agent` flags and its --config file turn their input into
// this object; everything is validated here, one message per mistake naming the key and its flag.
// Times are in seconds (fractions allowed), as everywhere else; the resolved config holds ms.

import { STRATEGY_NAMES, type StrategyName } from '../balance/strategies/index.js';
import { ParamError } from '../errors.js';
import { SERVICE_NAME } from '../fleet/route.js';
import { parseListenAddress } from '../listen-address.js';
import { createCodec } from '../message/codecs/index.js';
import type { TcpdaemonParams } from '../params.js';
import { type CommandSpec, type Field, readFields } from '../platform/fields.js';
import { SHARED_FIELDS, withHelp } from '../platform/shared-fields.js';
import { integer, seconds, text } from '../platform/values.js';

/**
 * The library's input (`startAgent(config)`), as the flags and --config keys spell it. Besides these,
 * every shared field of the platform (logfile, loglevel, pidFile, statusSocket, timeout, ...) is
 * taken as the daemon takes it. Times are seconds.
 */
export interface AgentConfig {
  /** `-l`: the local socket (`unix:PATH`, a path, or ip:port). */
  listen: string;
  /** `--upstream`: `SERVICE` (with discovery) or `HOST:PORT[,HOST:PORT...]`. */
  upstream: string;
  /** `--discovery`: the route table's NATS servers (for a SERVICE upstream). */
  discovery?: string | string[];
  codec?: string;
  connections?: number;
  strategy?: string;
  requestTimeout?: number;
  connectTimeout?: number;
  maxInFlight?: number;
  maxInFlightPerConn?: number;
  reconnectDelay?: number;
  reconnectDelayMax?: number;
  [shared: string]: unknown;
}

/** One upstream host: TCP or a unix socket path. */
export type UpstreamAddress = { host: string; port: number } | { path: string };

/** Where requests go: a fixed list of hosts, or a service of the route table. */
export type UpstreamTarget =
  | { kind: 'hosts'; hosts: { id: string; address: UpstreamAddress }[] }
  | { kind: 'service'; service: string; servers: string[] };

export interface ResolvedAgentConfig {
  listen: string;
  upstream: UpstreamTarget;
  /** The codec's name (a codec that carries seq: replies are matched by it). */
  codec: string;
  /** Upstream connections held (each to a host the strategy picks). */
  connections: number;
  strategy: StrategyName;
  requestTimeoutMs: number;
  connectTimeoutMs: number;
  /** Requests waiting for their reply, per local connection and in all. */
  maxInFlightPerConn: number;
  maxInFlight: number;
  /** Reconnect delays of a lost upstream connection, ms. */
  reconnectDelayMs: number;
  reconnectDelayMaxMs: number;
  /** The shared fields, for the daemon that holds the local connections. */
  daemon: Omit<TcpdaemonParams, 'handler'>;
}

export const DEFAULT_CONNECTIONS = 2;
export const DEFAULT_MAX_IN_FLIGHT = 10_000;
export const DEFAULT_MAX_IN_FLIGHT_PER_CONN = 1000;
export const DEFAULT_AGENT_STRATEGY: StrategyName = 'leastconn';

const secondsField = (key: string, flag: string, help: string, shownDefault: string): Field<number> => ({
  key,
  flags: [flag],
  arg: 'SECONDS',
  help,
  shownDefault,
  parse: seconds({ min: 0.001, max: 86400 }),
});

export const AGENT_OWN_FIELDS: readonly Field[] = [
  {
    key: 'upstream',
    live: true,
    flags: ['--upstream'],
    arg: 'SERVICE|HOST:PORT[,...]',
    help: 'where requests go: a service of the route table on --discovery, or hosts (HOST:PORT, [IPV6]:PORT, unix:PATH), comma-separated',
    parse: text,
  },
  {
    key: 'codec',
    flags: ['--codec'],
    arg: 'NAME',
    help: 'framing on both sides; it must carry a sequence number (seq) to match replies to requests',
    shownDefault: 'seq',
    parse: text,
  },
  {
    key: 'connections',
    flags: ['--connections'],
    arg: 'N',
    help: 'upstream connections held, each to a host the strategy picks; requests go to the one with the fewest in flight',
    shownDefault: String(DEFAULT_CONNECTIONS),
    parse: integer({ min: 1, max: 64 }),
  },
  {
    key: 'strategy',
    flags: ['--strategy'],
    arg: 'NAME',
    help: `how an upstream connection picks its host: ${STRATEGY_NAMES.join(', ')} (with passive Lars health)`,
    shownDefault: DEFAULT_AGENT_STRATEGY,
    parse: (value, where) => {
      const name = text(value, where);
      if (!(STRATEGY_NAMES as string[]).includes(name))
        throw new ParamError(`${where} must be one of ${STRATEGY_NAMES.join(', ')}, got '${name}'`);
      return name;
    },
  },
  secondsField(
    'requestTimeout',
    '--request-timeout',
    'a request with no reply within this is answered with an error frame; its late reply is dropped (counted)',
    '10',
  ),
  secondsField('connectTimeout', '--connect-timeout', 'per connect attempt to an upstream host', '3'),
  {
    key: 'maxInFlight',
    flags: ['--max-in-flight'],
    arg: 'N',
    help: "requests waiting for replies, in all; one more is answered at once with a 'busy' error frame",
    shownDefault: String(DEFAULT_MAX_IN_FLIGHT),
    parse: integer({ min: 1, max: 10_000_000 }),
  },
  {
    key: 'maxInFlightPerConn',
    flags: ['--max-in-flight-per-conn'],
    arg: 'N',
    help: "requests waiting for replies from one local connection; one more gets a 'busy' error frame",
    shownDefault: String(DEFAULT_MAX_IN_FLIGHT_PER_CONN),
    parse: integer({ min: 1, max: 10_000_000 }),
  },
  secondsField(
    'reconnectDelay',
    '--reconnect-delay',
    'first delay before a lost or failed upstream connection tries again (doubling, with jitter)',
    '0.1',
  ),
  secondsField('reconnectDelayMax', '--reconnect-delay-max', 'cap of that delay', '5'),
];

export const AGENT_FIELDS: readonly Field[] = [
  ...AGENT_OWN_FIELDS,
  ...SHARED_FIELDS.map((f) =>
    f.key === 'workers'
      ? withHelp(f, 'agent processes on the one socket (each holds its own upstream connections and bounds)')
      : f.key === 'params'
        ? withHelp(f, 'accepted for symmetry; the agent reads none')
        : f.key === 'discovery'
          ? withHelp(
              f,
              'the NATS servers (JetStream on) that hold the route table: --upstream SERVICE follows it, --announce publishes into it',
            )
          : f,
  ),
];

export const AGENT_COMMAND: CommandSpec = {
  name: 'tcpdaemon agent',
  synopsis: [
    'tcpdaemon agent -l unix:PATH --upstream HOST:PORT[,HOST:PORT...] [options]',
    'tcpdaemon agent -l unix:PATH --upstream SERVICE --discovery nats://HOST:PORT[,...] [options]',
  ],
  fields: AGENT_FIELDS,
  footer:
    "local processes send requests (seq codec) on the listening socket; each is sent upstream under a sequence number of the agent's and its reply goes back to the connection that asked. Error frames (REPLY|ERROR flags, the body says why): 'busy: ...' past --max-in-flight(-per-conn), 'timeout: ...', 'upstream lost: ...', 'unavailable: ...' (no upstream connected).\nsignals: SIGTERM/SIGINT stop gracefully (requests in flight are answered first, up to --shutdown-timeout), SIGHUP re-reads --config (a new --upstream host list applies live), SIGUSR1 reopens the log file",
};

const OWN_KEYS = new Set(AGENT_OWN_FIELDS.map((f) => f.key));
const ms = (s: number) => Math.round(s * 1000);

/** Validates library, flag or config input; throws ParamError with a one-line reason. */
export function validateAgentConfig(input: unknown): ResolvedAgentConfig {
  const read = readFields(AGENT_FIELDS, input, 'agent');
  const listen = read.listen as string | undefined;
  if (listen === undefined) throw new ParamError('listen (-l) is required');
  const upstreamText = read.upstream as string | undefined;
  if (upstreamText === undefined)
    throw new ParamError('upstream (--upstream) is required: SERVICE or HOST:PORT[,HOST:PORT...]');
  const discovery = read.discovery as string[] | undefined;
  const upstream = parseUpstream(upstreamText, discovery);
  const codec = (read.codec as string | undefined) ?? 'seq';
  let hasSeq: boolean;
  try {
    hasSeq = createCodec(codec).hasSeq;
  } catch (err) {
    throw new ParamError(`codec (--codec) ${(err as Error).message}`);
  }
  if (!hasSeq)
    throw new ParamError(
      `codec (--codec) '${codec}' carries no sequence number: the agent matches replies to requests by it (use seq)`,
    );
  const maxInFlight = (read.maxInFlight as number | undefined) ?? DEFAULT_MAX_IN_FLIGHT;
  const perConn = (read.maxInFlightPerConn as number | undefined) ?? DEFAULT_MAX_IN_FLIGHT_PER_CONN;
  const reconnectDelayMs = ms((read.reconnectDelay as number | undefined) ?? 0.1);
  const reconnectDelayMaxMs = ms((read.reconnectDelayMax as number | undefined) ?? 5);
  if (reconnectDelayMaxMs < reconnectDelayMs)
    throw new ParamError(
      'reconnectDelayMax (--reconnect-delay-max) must not be below reconnectDelay (--reconnect-delay)',
    );
  const daemon: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(read)) if (!OWN_KEYS.has(key)) daemon[key] = value;
  return {
    listen,
    upstream,
    codec,
    connections: (read.connections as number | undefined) ?? DEFAULT_CONNECTIONS,
    strategy: (read.strategy as StrategyName | undefined) ?? DEFAULT_AGENT_STRATEGY,
    requestTimeoutMs: ms((read.requestTimeout as number | undefined) ?? 10),
    connectTimeoutMs: ms((read.connectTimeout as number | undefined) ?? 3),
    maxInFlight,
    maxInFlightPerConn: Math.min(perConn, maxInFlight),
    reconnectDelayMs,
    reconnectDelayMaxMs,
    daemon: daemon as ResolvedAgentConfig['daemon'],
  };
}

/** `SERVICE` (with --discovery) or `HOST:PORT[,HOST:PORT...]`. */
export function parseUpstream(textValue: string, discovery: string[] | undefined): UpstreamTarget {
  const items = textValue.split(',').map((s) => s.trim());
  if (items.length === 1 && SERVICE_NAME.test(items[0]!)) {
    if (discovery === undefined || discovery.length === 0)
      throw new ParamError(
        `upstream (--upstream) '${items[0]}' is a service name: it needs discovery (--discovery nats://HOST:PORT[,...]) to find its hosts`,
      );
    for (const url of discovery) {
      if (!/^(nats|tls):\/\/[^/\s]+$/.test(url))
        throw new ParamError(`discovery (--discovery) '${url}' is not a nats://HOST:PORT URL`);
    }
    return { kind: 'service', service: items[0]!, servers: discovery };
  }
  const hosts: { id: string; address: UpstreamAddress }[] = [];
  for (const item of items) {
    const address = parseHost(item, textValue);
    const id = 'path' in address ? address.path : formatHost(address);
    if (hosts.some((h) => h.id === id)) throw new ParamError(`upstream (--upstream) ${id} is given twice`);
    hosts.push({ id, address });
  }
  return { kind: 'hosts', hosts };
}

function parseHost(item: string, whole: string): UpstreamAddress {
  let a: ReturnType<typeof parseListenAddress>;
  try {
    if (item === '') throw new Error('an empty item');
    a = parseListenAddress(item);
  } catch (err) {
    throw new ParamError(
      `upstream (--upstream) '${whole}': ${(err as Error).message} (expected SERVICE or HOST:PORT[,HOST:PORT...])`,
    );
  }
  if (a.kind === 'unix') return { path: a.path };
  if (a.kind !== 'tcp' || a.port === 0 || a.host === '0.0.0.0' || a.host === '::')
    throw new ParamError(
      `upstream (--upstream) '${item}' is not an address to connect to (HOST:PORT with a port, not a wildcard)`,
    );
  return { host: a.host, port: a.port };
}

export function formatHost(a: { host: string; port: number }): string {
  return a.host.includes(':') ? `[${a.host}]:${a.port}` : `${a.host}:${a.port}`;
}
