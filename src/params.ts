// `tcpdaemon`'s parameters: the library's typed object, the field declarations (shared ones from
// platform/shared-fields.ts) from which the command line, --config and help are driven, and the
// validation that fills in defaults. One message per mistake, naming the key and its flag.

import { ParamError } from './errors.js';
import {
  type AnnounceParams,
  type AnnounceSettings,
  isWildcard,
  readAnnounceSettings,
} from './fleet/settings.js';
import { type ListenAddress, parseListenAddress } from './listen-address.js';
import type { LogFormat } from './log-format.js';
import type { LogLevel } from './logger.js';
import { hasReusePort, REUSE_PORT_NEEDS } from './node-features.js';
import { type CommandSpec, type Field, readFields } from './platform/fields.js';
import {
  ANNOUNCE_FIELDS,
  DRAIN_DELAY,
  HANG_TIMEOUT,
  LISTEN,
  MAX_CONN_RATE_PER_IP,
  MAX_CONNECTIONS,
  MAX_CONNS_PER_IP,
  MAX_MEMORY,
  PROCESS_FIELDS,
  RESTART_DELAY,
  RESTART_DELAY_MAX,
  refuseAddressLimitsOnUnix,
  SHUTDOWN_TIMEOUT,
  TIMEOUT,
  TLS_FIELDS,
  WORKERS,
  withHelp,
} from './platform/shared-fields.js';
import { boolean, bytes, choice, fail, integer, seconds } from './platform/values.js';
import { readTlsSettings, type TlsParams, type TlsSettings } from './tls/settings.js';
import type { ModelFlag, ModelName, Tcpmain } from './types.js';

export interface TcpdaemonParams extends TlsParams, AnnounceParams {
  /** `-m`: IOMP (alias IO), LF, IF, TLF (alias WIN-TLF). Default IOMP. */
  model?: ModelFlag;
  /** `-l`: ip:port, 0:port, [v6]:port or a unix socket path. */
  listen: string;
  /** `-s`: a module path (.js .mjs .cjs .ts .mts .cts) or, in the library, the function itself. */
  handler: string | Tcpmain;
  /** `-c`: processes (IOMP, LF, IF) or threads (TLF). Default 1. */
  workers?: number;
  /** `-n`: recycle a worker after this many connections; 0 = never. */
  recycleAfter?: number;
  /** `--work-path`: chdir here after paths on the command line are resolved. */
  workPath?: string;
  /** `--logfile`: JSON lines appended here; stdout when absent. */
  logfile?: string;
  /** `--loglevel`, `--loglevel-LEVEL`. Default info. */
  loglevel?: LogLevel;
  /** `--log-format`: json (default) or pretty (one readable line per record), in every process. */
  logFormat?: LogFormat;
  /** `--tcp-nodelay`: disable Nagle on accepted sockets. */
  tcpNodelay?: boolean;
  /** `--tcp-linger`: seconds; 0 = close with RST; N = after our FIN, give the peer N s, then RST. */
  tcpLinger?: number;
  /** `--timeout`: idle timeout in seconds (fractions allowed); 0 = none. */
  timeout?: number;
  /** `--proxy-protocol`: every connection starts with a PROXY v1/v2 header (a balancer in front); env shows its client. */
  proxyProtocol?: boolean;
  /** `--proxy-header-timeout`: seconds the PROXY header may take to arrive. Default 5. */
  proxyHeaderTimeout?: number;
  /** `--daemon-level`: detach from the terminal (needs --logfile). */
  daemonLevel?: boolean;
  /** `--pid-file`: written once listening, removed at exit. */
  pidFile?: string;
  /** `--status-socket`: unix socket answering each connection with a JSON status report (`tcpdaemon status PATH`). */
  statusSocket?: string;
  /** `--metrics`: ip:port of the HTTP listener serving /metrics, /healthz and /readyz. */
  metrics?: string;
  /** `--drain-delay`: seconds of still accepting, with /readyz failing, between SIGTERM and the drain. Default 0. */
  drainDelay?: number;
  /** `--max-connections`: excess connections are closed at once and counted; 0 = no limit. */
  maxConnections?: number;
  /** `--max-conns-per-ip`: open connections from one client address, across all workers; more are closed at once, logged. 0 = no limit. */
  maxConnsPerIp?: number;
  /** `--max-conn-rate-per-ip`: new connections per second from one client address (up to that many at once); more are closed at once, logged. 0 = no limit. */
  maxConnRatePerIp?: number;
  /** `--shutdown-timeout`: seconds open connections get to finish on stop. Default 10. */
  shutdownTimeout?: number;
  /** `--param k=v`: handed to the handler as `env.params`. */
  params?: Record<string, string>;
  /** `--hang-timeout`: seconds a worker's event loop may stay blocked before it is replaced; 0 = never. */
  hangTimeout?: number;
  /** `--max-memory`: recycle a worker whose RSS exceeds this many MB; 0 = never. */
  maxMemory?: number;
  /** `--restart-delay`: seconds before the first restart of a crashed worker (doubles per crash). Default 0.1. */
  restartDelay?: number;
  /** `--restart-delay-max`: the restart delay never exceeds this many seconds. Default 10. */
  restartDelayMax?: number;
  /** `--spares`: IF: processes started ahead, each ready to take the next connection. Default min(-c, 2). */
  spares?: number;
  /** `--max-waiting`: LF, IF: connections that may wait for a free worker; more are closed, logged. Default LF 1024, IF 64. */
  maxWaiting?: number;
  /** `--wait-timeout`: LF, IF: seconds a connection may wait for a free worker, then it is closed; 0 = no limit. Default: `timeout`. */
  waitTimeout?: number;
  /** `--max-output-buffer`: bytes a connection may have written but not yet sent; past it the connection is closed. 0 = no limit. Default 16 MiB. */
  maxOutputBuffer?: number;
  /**
   * `--reuse-port`: IOMP -c N and TLF: each worker accepts on its own SO_REUSEPORT socket of one
   * group and the kernel spreads connections over them. Needs Node.js >= 22.12. Default false.
   */
  reusePort?: boolean;
}

/** --max-output-buffer's default, bytes (16 MiB). */
const DEFAULT_MAX_OUTPUT_BUFFER = 16 * 1048576;

const TLS_KEYS = ['tlsCert', 'tlsKey', 'tlsCa', 'tlsClientAuth', 'tlsAlpn', 'tlsHandshakeTimeout'] as const;
const ANNOUNCE_KEYS = [
  'announce',
  'discovery',
  'advertise',
  'announceWeight',
  'announceVersion',
  'announceTtl',
] as const;

/** Validated parameters with every default filled in. */
export interface ResolvedParams
  extends Required<
    Omit<
      TcpdaemonParams,
      | 'model'
      | 'logfile'
      | 'workPath'
      | 'pidFile'
      | 'statusSocket'
      | 'metrics'
      | 'tcpLinger'
      | (typeof TLS_KEYS)[number]
      | (typeof ANNOUNCE_KEYS)[number]
    >
  > {
  model: ModelName;
  listenAddress: ListenAddress;
  logfile: string | undefined;
  workPath: string | undefined;
  pidFile: string | undefined;
  statusSocket: string | undefined;
  /** --metrics: where the operations listener serves; undefined = none (nothing metered). */
  metrics: ListenAddress | undefined;
  tcpLinger: number | undefined;
  /** --tls-cert and the other TLS fields; undefined = plain TCP. */
  tls: TlsSettings | undefined;
  /** --announce and the other route-table fields; undefined = not announced. */
  announce: AnnounceSettings | undefined;
}

export { ParamError };

const MODEL_ALIASES: Record<string, ModelName> = {
  IOMP: 'IOMP',
  IO: 'IOMP',
  LF: 'LF',
  IF: 'IF',
  TLF: 'TLF',
  'WIN-TLF': 'TLF',
};
export const MODEL_FLAGS = Object.keys(MODEL_ALIASES) as ModelFlag[];

/** The daemon's own fields; with the shared ones they are `tcpdaemon`'s whole schema. */
const MODEL: Field<ModelFlag> = {
  key: 'model',
  flags: ['-m', '--model'],
  arg: 'MODEL',
  help: 'IOMP (alias IO), LF, IF, TLF (alias WIN-TLF)',
  shownDefault: 'IOMP',
  parse: choice(MODEL_FLAGS, (v) => v.toUpperCase()),
};

const HANDLER: Field<string | Tcpmain> = {
  key: 'handler',
  flags: ['-s', '--handler'],
  arg: 'HANDLER',
  help: 'handler module: .js .mjs .cjs .ts .mts .cts',
  path: true,
  parse(value, where) {
    if (typeof value === 'function') return value as Tcpmain;
    if (typeof value === 'string' && value !== '') return value;
    fail(where, 'must be a module path or a function', typeof value === 'object' ? String(value) : value);
  },
};

export const DAEMON_FIELDS: readonly Field[] = [
  MODEL,
  LISTEN,
  HANDLER,
  withHelp(WORKERS, 'workers: processes (IOMP, LF, IF) or threads (TLF)'),
  {
    key: 'recycleAfter',
    live: true,
    flags: ['-n', '--recycle-after'],
    arg: 'N',
    help: 'recycle a worker after N connections (0 = never)',
    parse: integer({ min: 0, max: Number.MAX_SAFE_INTEGER }),
  },
  TIMEOUT,
  {
    key: 'proxyProtocol',
    flags: ['--proxy-protocol'],
    help: 'connections start with a PROXY v1/v2 header (HAProxy, nginx, cloud balancers): env shows the real client',
    parse: boolean,
  },
  {
    key: 'proxyHeaderTimeout',
    live: true,
    flags: ['--proxy-header-timeout'],
    arg: 'SECONDS',
    help: 'the PROXY header must arrive within this',
    shownDefault: '5',
    parse: seconds({ min: 0.001, max: 3600 }),
  },
  MAX_CONNECTIONS,
  MAX_CONNS_PER_IP,
  MAX_CONN_RATE_PER_IP,
  SHUTDOWN_TIMEOUT,
  DRAIN_DELAY,
  HANG_TIMEOUT,
  MAX_MEMORY,
  RESTART_DELAY,
  RESTART_DELAY_MAX,
  {
    key: 'spares',
    flags: ['--spares'],
    arg: 'K',
    help: 'IF: processes started ahead, each ready to take the next connection',
    shownDefault: 'min(-c, 2)',
    parse: integer({ min: 1, max: 1024 }),
  },
  {
    key: 'maxWaiting',
    live: true,
    flags: ['--max-waiting'],
    arg: 'Q',
    help: 'LF, IF: connections that may wait for a free worker; more are closed, logged',
    shownDefault: 'LF 1024, IF 64',
    parse: integer({ min: 0, max: 1_000_000 }),
  },
  {
    key: 'waitTimeout',
    live: true,
    flags: ['--wait-timeout'],
    arg: 'SECONDS',
    help: 'LF, IF: close a connection that waited this long for a free worker (0 = never)',
    shownDefault: '--timeout',
    parse: seconds({ min: 0, max: 2147483 }),
  },
  {
    key: 'maxOutputBuffer',
    live: true,
    flags: ['--max-output-buffer'],
    arg: 'BYTES',
    help: 'close a connection with more than this written but unsent (a peer that does not read; 0 = no limit)',
    shownDefault: '16 MiB',
    parse: bytes(),
  },
  {
    key: 'reusePort',
    flags: ['--reuse-port'],
    help: `IOMP -c N, TLF: one SO_REUSEPORT socket per worker, the kernel spreads connections (needs ${REUSE_PORT_NEEDS}; TCP only)`,
    // Declared on every Node, so an older one answers "needs Node.js >= 22.12", not "unknown".
    parse: (value, where) => {
      const on = boolean(value, where);
      if (on && !hasReusePort())
        throw new ParamError(`${where} needs ${REUSE_PORT_NEEDS}; this is Node.js ${process.version}`);
      return on;
    },
  },
  {
    key: 'tcpNodelay',
    live: true,
    flags: ['--tcp-nodelay'],
    help: "disable Nagle's algorithm on accepted sockets",
    parse: boolean,
  },
  {
    key: 'tcpLinger',
    live: true,
    flags: ['--tcp-linger'],
    arg: 'N',
    help: '0: close with RST; N: after our FIN, RST if the peer has not closed in N s',
    parse: integer({ min: 0, max: 3600 }),
  },
  ...PROCESS_FIELDS,
  ...TLS_FIELDS,
  ...ANNOUNCE_FIELDS,
];

export const DAEMON_COMMAND: CommandSpec = {
  name: 'tcpdaemon',
  synopsis: [
    'tcpdaemon -m IOMP|LF|IF|TLF -l ADDRESS -s HANDLER [options]',
    'tcpdaemon proxy -l ADDRESS --backend HOST:PORT|--spawn CMD [options] (tcpdaemon proxy -h)',
    'tcpdaemon gateway -l ADDRESS -s BUSINESS [options]                  (tcpdaemon gateway -h)',
    'tcpdaemon worker -s BUSINESS --queue nats://HOST:PORT [options]      (tcpdaemon worker -h)',
    'tcpdaemon agent -l unix:PATH --upstream SERVICE|HOST:PORT[,...] [options] (tcpdaemon agent -h)',
    'tcpdaemon bench --port PORT [options]                              (load tool; tcpdaemon bench -h)',
    'tcpdaemon status SOCKET [--json]                                   (any command run with --status-socket)',
    'tcpdaemon routes --discovery nats://HOST:PORT [--json]             (route table + client reports; -h)',
  ],
  fields: DAEMON_FIELDS,
  refused: {
    '--queue': 'is now --max-waiting (connections waiting for a free worker)',
    '--workers': 'is now -c N (processes or threads)',
  },
  footer: `signals: SIGTERM/SIGINT stop gracefully (a second one forces), SIGUSR1 reopens the log file,
         SIGHUP reloads the workers of IOMP -c N, LF and TLF one by one, and IF's spares
         (new handler code, no connection refused) and re-reads the TLS certificates
         (a broken one is logged and the previous one kept); with --config it first re-reads
         the file (live values apply, others are logged as needing a restart)`,
};

/** Validates library/CLI/config input; throws ParamError with a one-line reason. */
export function validateParams(input: unknown): ResolvedParams {
  const raw = input as Record<string, unknown>;
  const read = readFields(DAEMON_FIELDS, input, 'tcpdaemon');
  const get = <K extends keyof TcpdaemonParams>(key: K): Exclude<TcpdaemonParams[K], undefined> | undefined =>
    read[key] as Exclude<TcpdaemonParams[K], undefined> | undefined;
  for (const key of ['listen', 'handler'] as const) {
    if (raw[key] === undefined)
      throw new ParamError(`${key} (${key === 'listen' ? '-l' : '-s'}) is required`);
  }
  const listen = get('listen')!;
  let listenAddress: ListenAddress;
  try {
    listenAddress = parseListenAddress(listen);
  } catch (err) {
    throw new ParamError(`listen (-l) ${(err as Error).message}`);
  }
  const model = MODEL_ALIASES[get('model') ?? 'IOMP']!;
  const workers = get('workers') ?? 1;
  const resolved: ResolvedParams = {
    model,
    listen,
    listenAddress,
    handler: get('handler')!,
    workers,
    recycleAfter: get('recycleAfter') ?? 0,
    workPath: get('workPath'),
    logfile: get('logfile'),
    loglevel: get('loglevel') ?? 'info',
    logFormat: get('logFormat') ?? 'json',
    tcpNodelay: get('tcpNodelay') ?? false,
    tcpLinger: get('tcpLinger'),
    timeout: get('timeout') ?? 0,
    proxyProtocol: get('proxyProtocol') ?? false,
    proxyHeaderTimeout: get('proxyHeaderTimeout') ?? 5,
    daemonLevel: get('daemonLevel') ?? false,
    pidFile: get('pidFile'),
    statusSocket: get('statusSocket'),
    metrics: get('metrics') === undefined ? undefined : parseListenAddress(get('metrics')!),
    drainDelay: get('drainDelay') ?? 0,
    maxConnections: get('maxConnections') ?? 0,
    maxConnsPerIp: get('maxConnsPerIp') ?? 0,
    maxConnRatePerIp: get('maxConnRatePerIp') ?? 0,
    shutdownTimeout: get('shutdownTimeout') ?? 10,
    params: get('params') ?? Object.freeze({}),
    hangTimeout: get('hangTimeout') ?? 0,
    maxMemory: get('maxMemory') ?? 0,
    restartDelay: get('restartDelay') ?? 0.1,
    restartDelayMax: get('restartDelayMax') ?? 10,
    spares: get('spares') ?? Math.min(workers, 2),
    maxWaiting: get('maxWaiting') ?? (model === 'IF' ? 64 : 1024),
    waitTimeout: get('waitTimeout') ?? get('timeout') ?? 0,
    maxOutputBuffer: get('maxOutputBuffer') ?? DEFAULT_MAX_OUTPUT_BUFFER,
    reusePort: get('reusePort') ?? false,
    tls: readTlsSettings(read),
    announce: readAnnounceSettings(read),
  };
  if (resolved.announce && resolved.announce.advertise === undefined) {
    const a = resolved.listenAddress;
    if (a.kind === 'unix' || (a.kind === 'tcp' && isWildcard(a.host)))
      throw new ParamError(
        `announce (--announce) publishes the listening address, and ${resolved.listen} is not one clients can connect to: give --advertise HOST:PORT`,
      );
  }
  if (resolved.restartDelayMax < resolved.restartDelay) {
    fail(
      'restartDelayMax (--restart-delay-max)',
      `must be >= restartDelay (--restart-delay, ${resolved.restartDelay})`,
      resolved.restartDelayMax,
    );
  }
  if (resolved.drainDelay > resolved.shutdownTimeout) {
    fail(
      'drainDelay (--drain-delay)',
      `must be <= shutdownTimeout (--shutdown-timeout, ${resolved.shutdownTimeout}): the delay is part of the stop`,
      resolved.drainDelay,
    );
  }
  if (resolved.daemonLevel && resolved.logfile === undefined) {
    throw new ParamError(
      'daemonLevel (--daemon-level) needs --logfile: a detached daemon has no terminal to log to',
    );
  }
  if (resolved.reusePort) {
    const where =
      listenAddress.kind === 'unix'
        ? 'a unix socket has no SO_REUSEPORT group'
        : listenAddress.kind === 'systemd'
          ? 'a socket passed by systemd is one socket'
          : (model === 'IOMP' && workers > 1) || model === 'TLF'
            ? undefined
            : `model ${model}${model === 'IOMP' ? ' -c 1' : ''} accepts in the daemon`;
    if (where) {
      throw new ParamError(`reusePort (--reuse-port) applies to IOMP -c N (N > 1) and TLF on TCP: ${where}`);
    }
  }
  if (listenAddress.kind === 'unix') refuseAddressLimitsOnUnix(resolved);
  if (resolved.timeout > 0 && resolved.timeout * 1000 > 2 ** 31 - 1) {
    fail('timeout (--timeout)', 'must be at most 2147483 seconds', resolved.timeout);
  }
  return resolved;
}
