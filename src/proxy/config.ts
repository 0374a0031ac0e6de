// The proxy's parameter schema. `tcpdaemon proxy` flags and its --config file only turn their
// input into this object; everything is validated here, one message per mistake naming the
// key and its flag. Times are in seconds (fractions allowed), like the daemon's --timeout.

import { DEFAULT_PASSIVE_HEALTH, type PassiveHealthOptions } from '../balance/health.js';
import { DEFAULT_STRATEGY, STRATEGY_NAMES, type StrategyName } from '../balance/strategies/index.js';
import { ParamError } from '../errors.js';
import { checkDiscovery, checkServiceName } from '../fleet/settings.js';
import type { LogFormat } from '../log-format.js';
import type { LogLevel } from '../logger.js';
import { DAEMON_FIELDS, type TcpdaemonParams } from '../params.js';
import { type CommandSpec, type Field, readFields, where } from '../platform/fields.js';
import { LISTEN, SHARED_FIELDS, withHelp } from '../platform/shared-fields.js';
import { boolean, choice, decimal, fail, integer, list, seconds, text } from '../platform/values.js';
import { DEFAULT_HEADER_TIMEOUT_MS } from '../proxy-protocol/header.js';
import type { ModelFlag } from '../types.js';
import { type BackendSpec, parseBackendSpec } from './backend.js';
import { DEFAULT_ACTIVE_CHECK } from './health-check.js';
import { PORT_PLACEHOLDER, splitCommand } from './spawn-command.js';
import { DEFAULT_STATS_INTERVAL_MS } from './stats.js';

export interface ProxyConfig {
  /** `-l`: where the front listens (same spelling as the daemon's -l). */
  listen: string;
  /** `--backend HOST:PORT[,weight=N]` (repeatable); also `[v6]:port` and socket paths. */
  backends?: string[];
  /** `--discover SERVICE`: the backends are the service's entries in the route table on `discovery`, followed live. */
  discover?: string;
  /** `--discovery nats://H:P[,...]`: the NATS servers of the route table (shared with --announce). */
  discovery?: string | string[];
  /** `--spawn 'COMMAND {port}'`: backends the proxy starts and supervises. */
  spawn?: string;
  /** `--spawn-count N`: how many of them. Default 1 when --spawn is given. */
  spawnCount?: number;
  /** `--spawn-port BASE`: spawned backends listen on BASE..BASE+N-1 (default: free ports picked at start). */
  spawnPort?: number;
  /** `--spawn-unix`: spawned backends get unix socket paths in a private directory instead of ports. */
  spawnUnix?: boolean;
  /** `--strategy`: roundrobin, leastconn, p2c, hash. */
  strategy?: string;
  /** `--health-interval S`: seconds between active connect checks; 0 = passive tracking only. */
  healthInterval?: number;
  /** `--connect-timeout S`: per connect attempt to a backend. */
  connectTimeout?: number;
  /** `--retries N`: further backends tried after a failed connect. */
  retries?: number;
  /** `--timeout S`: idle timeout per client connection (the daemon's own); 0 = none. */
  timeout?: number;
  /** `--send-proxy v1|v2`: PROXY header to every backend connection. */
  sendProxy?: 'v1' | 'v2';
  /** `--backend-tls`: speak TLS to the backends (verified against backendTlsCa, else the system CAs). */
  backendTls?: boolean;
  /** `--backend-tls-ca FILE`: PEM CAs the backends' certificates must chain to. */
  backendTlsCa?: string;
  /** `--backend-tls-servername NAME`: SNI name sent and checked; default the backend's host name. */
  backendTlsServername?: string;
  /** `--backend-tls-cert FILE`, `--backend-tls-key FILE`: our client certificate for the backends. */
  backendTlsCert?: string;
  backendTlsKey?: string;
  /** `--proxy-protocol`: clients arrive through a balancer that sends a PROXY header. */
  proxyProtocol?: boolean;
  /** `--proxy-header-timeout S`: the PROXY header must arrive within this. */
  proxyHeaderTimeout?: number;
  /** `--stats-interval S`: per-backend stats logged at info level; 0 = never. */
  statsInterval?: number;
  /** Passive (Lars) thresholds; config file only. */
  passive?: Partial<PassiveHealthOptions>;
  /** Active check details; config file only. `rise`/`fall`: passes/failures in a row; `timeout` in seconds. */
  checks?: { rise?: number; fall?: number; timeout?: number };
  // The daemon's own parameters, for the front: the same keys, flags and meaning as tcpdaemon's.
  model?: ModelFlag;
  workers?: number;
  recycleAfter?: number;
  logfile?: string;
  loglevel?: LogLevel;
  logFormat?: LogFormat;
  pidFile?: string;
  statusSocket?: string;
  daemonLevel?: boolean;
  workPath?: string;
  maxConnections?: number;
  /** Per client address, as tcpdaemon's (the TCP peer at accept time, also with proxyProtocol). */
  maxConnsPerIp?: number;
  maxConnRatePerIp?: number;
  shutdownTimeout?: number;
  hangTimeout?: number;
  maxMemory?: number;
  restartDelay?: number;
  restartDelayMax?: number;
  /** Handed to the front's env.params (the proxy's own handler does not read them). */
  params?: Record<string, string>;
  tcpLinger?: number;
  /** `--tcp-nodelay` on client connections. Default true for the proxy (a proxy must not add Nagle delays). */
  tcpNodelay?: boolean;
}

/** The daemon parameters the proxy hands to its front unchanged. */
export type FrontParams = Omit<TcpdaemonParams, 'listen' | 'handler'>;

/** Validated, defaults filled in, times in milliseconds. */
export interface ResolvedProxyConfig {
  listen: string;
  backends: BackendSpec[];
  /** --discover: the service and the NATS servers holding its route table; undefined = the backends are listed or spawned. */
  discover: { service: string; servers: string[] } | undefined;
  spawn:
    | {
        /** The command's words, {port} still in them. */
        words: string[];
        count: number;
        /** First fixed port; undefined = free ports (or unix paths). */
        basePort: number | undefined;
        unix: boolean;
      }
    | undefined;
  strategy: StrategyName;
  healthIntervalMs: number;
  connectTimeoutMs: number;
  retries: number;
  /** Seconds, as the daemon takes it. */
  timeout: number;
  sendProxy: 'v1' | 'v2' | undefined;
  /** --backend-tls: the file paths (read when the proxy starts); undefined = plain TCP to backends. */
  backendTls: { ca?: string; servername?: string; cert?: string; key?: string } | undefined;
  proxyProtocol: boolean;
  /** Seconds, as the daemon takes it. */
  proxyHeaderTimeout: number;
  statsIntervalMs: number;
  passive: PassiveHealthOptions;
  checks: { rise: number; fall: number; timeoutMs: number };
  daemon: FrontParams;
}

const secondsField = (key: string, flag: string, help: string, shownDefault: string): Field<number> => ({
  key,
  flags: [flag],
  arg: 'SECONDS',
  help,
  shownDefault,
  parse: seconds({ min: 0, max: 86400 }),
});

const BACKENDS: Field<string[]> = {
  key: 'backends',
  live: true,
  flags: ['--backend'],
  arg: 'TARGET',
  help: 'HOST:PORT, [IPV6]:PORT or a socket path, optionally ,weight=N (1..100)',
  repeat: true,
  parse: list(text),
};

const DISCOVER: Field<string> = {
  key: 'discover',
  flags: ['--discover'],
  arg: 'SERVICE',
  help: "the backends are SERVICE's entries in the route table on --discovery (--announce), followed live; not with --backend or --spawn",
  parse: text,
};

const SPAWN_FIELDS: readonly Field[] = [
  {
    key: 'spawn',
    flags: ['--spawn'],
    arg: "'COMMAND'",
    help: "start N backends and supervise them; {port} in COMMAND (and TCPDAEMON_BACKEND_PORT) becomes each one's port; no shell",
    parse: text,
  },
  {
    key: 'spawnCount',
    flags: ['--spawn-count'],
    arg: 'N',
    help: 'how many to spawn',
    shownDefault: '1',
    parse: integer({ min: 1, max: 256 }),
  },
  {
    key: 'spawnPort',
    flags: ['--spawn-port'],
    arg: 'BASE',
    help: 'spawned backends listen on BASE..BASE+N-1 (default: free ports picked at start)',
    parse: integer({ min: 1, max: 65535 }),
  },
  {
    key: 'spawnUnix',
    flags: ['--spawn-unix'],
    help: 'spawned backends get unix socket paths (in a private directory) instead of ports',
    parse: boolean,
  },
];

const BALANCING_FIELDS: readonly Field[] = [
  {
    key: 'strategy',
    flags: ['--strategy'],
    arg: 'NAME',
    help: 'roundrobin (weighted), leastconn, p2c, hash (client address)',
    shownDefault: DEFAULT_STRATEGY,
    parse: choice(STRATEGY_NAMES),
  },
  secondsField(
    'healthInterval',
    '--health-interval',
    'seconds between TCP connect checks of each backend (0 = off)',
    '2',
  ),
  {
    ...secondsField('connectTimeout', '--connect-timeout', 'per connect attempt to a backend', '3'),
    live: true,
  },
  {
    key: 'retries',
    live: true,
    flags: ['--retries'],
    arg: 'N',
    help: 'further backends tried after a failed connect',
    shownDefault: '2',
    parse: integer({ min: 0, max: 100 }),
  },
  {
    key: 'sendProxy',
    flags: ['--send-proxy'],
    arg: 'v1|v2',
    help: 'send a PROXY protocol header to backends',
    parse: choice(['v1', 'v2'] as const, (s) => s.toLowerCase()),
  },
  {
    key: 'backendTls',
    flags: ['--backend-tls'],
    help: 'speak TLS to the backends (PROXY header, if any, before the handshake)',
    parse: boolean,
  },
  {
    key: 'backendTlsCa',
    flags: ['--backend-tls-ca'],
    arg: 'FILE',
    help: "PEM CAs the backends' certificates must chain to (default: the system's)",
    path: true,
    parse: text,
  },
  {
    key: 'backendTlsServername',
    flags: ['--backend-tls-servername'],
    arg: 'NAME',
    help: "SNI name sent to the backends and checked against their certificates (default: the backend's host)",
    parse: text,
  },
  {
    key: 'backendTlsCert',
    flags: ['--backend-tls-cert'],
    arg: 'FILE',
    help: 'PEM client certificate presented to the backends (with --backend-tls-key)',
    path: true,
    parse: text,
  },
  {
    key: 'backendTlsKey',
    flags: ['--backend-tls-key'],
    arg: 'FILE',
    help: 'PEM key of --backend-tls-cert',
    path: true,
    parse: text,
  },
  secondsField(
    'statsInterval',
    '--stats-interval',
    'log per-backend stats every S seconds at info level (0 = never)',
    '30',
  ),
  {
    key: 'passive',
    flags: [],
    help: 'passive (Lars) health thresholds',
    configOnly: true,
    parse: (v, w) => object(v, w, Object.keys(DEFAULT_PASSIVE_HEALTH)),
  },
  {
    key: 'checks',
    flags: [],
    help: 'active check rise/fall/timeout',
    configOnly: true,
    parse: (v, w) => object(v, w, ['rise', 'fall', 'timeout']),
  },
];

/** The model and connection fields of the daemon, which the front takes as tcpdaemon does. */
const FRONT_FIELDS: readonly Field[] = DAEMON_FIELDS.filter((f) =>
  ['model', 'recycleAfter', 'proxyProtocol', 'proxyHeaderTimeout', 'tcpLinger'].includes(f.key),
);

export const PROXY_FIELDS: readonly Field[] = [
  LISTEN,
  BACKENDS,
  DISCOVER,
  ...SPAWN_FIELDS,
  ...BALANCING_FIELDS,
  ...FRONT_FIELDS,
  {
    key: 'tcpNodelay',
    live: true,
    flags: ['--tcp-nodelay'],
    help: "disable Nagle's algorithm on client connections (on by default for the proxy: a config file can set false)",
    parse: boolean,
  },
  ...SHARED_FIELDS.filter((f) => f.key !== 'listen').map((f) =>
    f.key === 'workers'
      ? withHelp(f, 'front processes (as tcpdaemon -c)')
      : f.key === 'params'
        ? withHelp(f, "handed to the front's env.params (the proxy's handler does not read them)")
        : f,
  ),
];

export const PROXY_COMMAND: CommandSpec = {
  name: 'tcpdaemon proxy',
  synopsis: [
    'tcpdaemon proxy -l ADDRESS --backend HOST:PORT[,weight=N] [--backend ...] [options]',
    "tcpdaemon proxy -l ADDRESS --spawn 'COMMAND {port}' [--spawn-count N] [options]",
    'tcpdaemon proxy -l ADDRESS --discover SERVICE --discovery nats://HOST:PORT[,...] [options]',
  ],
  fields: PROXY_FIELDS,
  refused: { '--workers': 'is now -c N (front processes)' },
  footer:
    'signals: SIGTERM/SIGINT stop gracefully, SIGHUP reloads the front workers (and re-reads --config: backends and the live values apply), SIGUSR1 reopens the log file',
};

function object(value: unknown, where: string, keys: readonly string[]): Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value))
    fail(where, 'must be an object', value);
  const key = where.split(' ')[0];
  for (const k of Object.keys(value)) {
    if (!keys.includes(k)) throw new ParamError(`unknown key '${key}.${k}' (expected ${keys.join(', ')})`);
  }
  return value as Record<string, unknown>;
}

const ms = (s: number) => Math.round(s * 1000);

/** Validates library, flag or config input; throws ParamError with a one-line reason. */
export function validateProxyConfig(input: unknown): ResolvedProxyConfig {
  const read = readFields(PROXY_FIELDS, input, 'proxy');
  const get = <T>(key: string): T | undefined => read[key] as T | undefined;
  const listen = get<string>('listen');
  if (listen === undefined) throw new ParamError('listen (-l) is required');

  const backends: BackendSpec[] = [];
  const seen = new Set<string>();
  for (const text of get<string[]>('backends') ?? []) {
    let spec: BackendSpec;
    try {
      spec = parseBackendSpec(text);
    } catch (err) {
      throw new ParamError(`--backend ${(err as Error).message}`);
    }
    if (seen.has(spec.id)) throw new ParamError(`--backend ${spec.id} is given twice`);
    seen.add(spec.id);
    backends.push(spec);
  }

  const command = get<string>('spawn');
  const spawnCount = get<number>('spawnCount');
  const spawnPort = get<number>('spawnPort');
  const spawnUnix = get<boolean>('spawnUnix') ?? false;
  for (const field of SPAWN_FIELDS.slice(1)) {
    if (read[field.key] !== undefined && command === undefined) {
      throw new ParamError(`${where(field)} needs --spawn COMMAND`);
    }
  }
  let spawn: ResolvedProxyConfig['spawn'];
  if (command !== undefined) {
    let words: string[];
    try {
      words = splitCommand(command);
    } catch (err) {
      fail('spawn (--spawn)', (err as Error).message, command);
    }
    if (!words.some((w) => w.includes(PORT_PLACEHOLDER))) {
      fail(
        'spawn (--spawn)',
        "must contain the {port} placeholder (the backend's port or socket path goes there)",
        command,
      );
    }
    const count = spawnCount ?? 1;
    if (spawnPort !== undefined && spawnUnix)
      throw new ParamError('give --spawn-port or --spawn-unix, not both');
    if (spawnPort !== undefined && spawnPort + count - 1 > 65535) {
      fail('spawnPort (--spawn-port)', `leaves no room for ${count} ports below 65536`, spawnPort);
    }
    spawn = { words, count, basePort: spawnPort, unix: spawnUnix };
  }
  const discover = readDiscover(read, backends.length > 0, spawn !== undefined);
  if (backends.length === 0 && spawn === undefined && discover === undefined) {
    throw new ParamError('give at least one --backend HOST:PORT, --spawn COMMAND or --discover SERVICE');
  }

  const passive: PassiveHealthOptions = { ...DEFAULT_PASSIVE_HEALTH };
  for (const [k, v] of Object.entries(get<Record<string, unknown>>('passive') ?? {})) {
    const isRate = k.endsWith('Rate');
    const parse = isRate ? decimal({ min: 0, max: 1 }) : integer({ min: k === 'probeNum' ? 1 : 0 });
    (passive as unknown as Record<string, number>)[k] = parse(v, `passive.${k} (--config)`);
  }
  const checksRaw = get<Record<string, unknown>>('checks') ?? {};
  const count = integer({ min: 1, max: 100 });
  const checks = {
    rise:
      checksRaw.rise === undefined
        ? DEFAULT_ACTIVE_CHECK.rise
        : count(checksRaw.rise, 'checks.rise (--config)'),
    fall:
      checksRaw.fall === undefined
        ? DEFAULT_ACTIVE_CHECK.fall
        : count(checksRaw.fall, 'checks.fall (--config)'),
    timeoutMs:
      checksRaw.timeout === undefined
        ? DEFAULT_ACTIVE_CHECK.timeoutMs
        : ms(seconds({ min: 0, max: 86400 })(checksRaw.timeout, 'checks.timeout (--config)')),
  };

  const seconds_ = (key: string) => {
    const v = get<number>(key);
    return v === undefined ? undefined : ms(v);
  };
  const backendTlsKeys = ['backendTlsCa', 'backendTlsServername', 'backendTlsCert', 'backendTlsKey'];
  const backendTls = get<boolean>('backendTls') ?? false;
  for (const key of backendTlsKeys) {
    if (read[key] !== undefined && !backendTls)
      throw new ParamError(`${key} needs backendTls (--backend-tls)`);
  }
  if ((read.backendTlsCert === undefined) !== (read.backendTlsKey === undefined))
    throw new ParamError(
      'backendTlsCert (--backend-tls-cert) and backendTlsKey (--backend-tls-key) go together',
    );
  const daemon: FrontParams = {};
  for (const field of PROXY_FIELDS) {
    if (FRONT_KEYS.has(field.key) && read[field.key] !== undefined) {
      (daemon as Record<string, unknown>)[field.key] = read[field.key];
    }
  }
  daemon.tcpNodelay = get<boolean>('tcpNodelay') ?? true;
  return {
    listen,
    backends,
    discover,
    spawn,
    strategy: get<StrategyName>('strategy') ?? DEFAULT_STRATEGY,
    healthIntervalMs: seconds_('healthInterval') ?? DEFAULT_ACTIVE_CHECK.intervalMs,
    connectTimeoutMs: seconds_('connectTimeout') ?? 3000,
    retries: get<number>('retries') ?? 2,
    timeout: get<number>('timeout') ?? 0,
    sendProxy: get<'v1' | 'v2'>('sendProxy'),
    backendTls: backendTls
      ? {
          ca: get<string>('backendTlsCa'),
          servername: get<string>('backendTlsServername'),
          cert: get<string>('backendTlsCert'),
          key: get<string>('backendTlsKey'),
        }
      : undefined,
    proxyProtocol: get<boolean>('proxyProtocol') ?? false,
    proxyHeaderTimeout: get<number>('proxyHeaderTimeout') ?? DEFAULT_HEADER_TIMEOUT_MS / 1000,
    statsIntervalMs: seconds_('statsInterval') ?? DEFAULT_STATS_INTERVAL_MS,
    passive,
    checks,
    daemon,
  };
}

/**
 * --discover SERVICE with --discovery. Not with --backend or --spawn: the route table is then the
 * one list of backends, so an empty or withdrawn service means no backend, never a silent fallback
 * to a fixed one that the fleet cannot take out of rotation. Throws ParamError.
 */
function readDiscover(
  read: Record<string, unknown>,
  listed: boolean,
  spawned: boolean,
): ResolvedProxyConfig['discover'] {
  const service = read.discover as string | undefined;
  const servers = read.discovery as string[] | undefined;
  if (service === undefined) {
    if (servers !== undefined && read.announce === undefined)
      throw new ParamError(
        'discovery (--discovery) needs discover (--discover SERVICE) or announce (--announce SERVICE)',
      );
    return undefined;
  }
  checkServiceName(service, 'discover (--discover)');
  if (listed || spawned)
    throw new ParamError(
      `discover (--discover) takes the backends from the route table: give it without ${listed ? '--backend' : '--spawn'}`,
    );
  checkDiscovery(servers, 'discover (--discover)');
  return { service, servers };
}

/** Keys handed to the front daemon as they are (the rest are the proxy's own). */
const FRONT_KEYS = new Set(
  [...FRONT_FIELDS, ...SHARED_FIELDS]
    .map((f) => f.key)
    .filter((k) => !['listen', 'timeout', 'proxyProtocol', 'proxyHeaderTimeout'].includes(k)),
);
