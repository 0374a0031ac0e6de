// The one parameter schema. The CLI and --config only turn their input into this object;
// everything is validated here, with one message per mistake naming the key and its flag.

import { type ListenAddress, parseListenAddress } from './listen-address.js';
import { LOG_LEVELS, type LogLevel } from './logger.js';
import { hasReusePort, REUSE_PORT_NEEDS } from './node-features.js';
import type { ModelFlag, ModelName, Tcpmain } from './types.js';

export interface TcpdaemonParams {
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
  /** `--max-connections`: excess connections are closed at once and counted; 0 = no limit. */
  maxConnections?: number;
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
  /**
   * `--reuse-port`: IOMP -c N and TLF: each worker accepts on its own SO_REUSEPORT socket of one
   * group and the kernel spreads connections over them. Needs Node.js >= 22.12. Default false.
   */
  reusePort?: boolean;
}

/** Validated parameters with every default filled in. */
export interface ResolvedParams
  extends Required<
    Omit<TcpdaemonParams, 'model' | 'logfile' | 'workPath' | 'pidFile' | 'statusSocket' | 'tcpLinger'>
  > {
  model: ModelName;
  listenAddress: ListenAddress;
  logfile: string | undefined;
  workPath: string | undefined;
  pidFile: string | undefined;
  statusSocket: string | undefined;
  tcpLinger: number | undefined;
}

export class ParamError extends Error {
  override name = 'ParamError';
}

const MODEL_ALIASES: Record<string, ModelName> = {
  IOMP: 'IOMP',
  IO: 'IOMP',
  LF: 'LF',
  IF: 'IF',
  TLF: 'TLF',
  'WIN-TLF': 'TLF',
};
export const MODEL_FLAGS = Object.keys(MODEL_ALIASES) as ModelFlag[];

type Field<T> = { flag: string; parse: (value: unknown, name: string) => T };

function fail(name: string, flag: string, what: string, value: unknown): never {
  const shown = typeof value === 'string' ? `'${value}'` : JSON.stringify(value);
  throw new ParamError(`${name} (${flag}) ${what}, got ${shown}`);
}

function num(flag: string, opts: { min: number; max?: number; integer: boolean }): Field<number> {
  const what = `must be ${opts.integer ? 'a whole number' : 'a number'} >= ${opts.min}${opts.max === undefined ? '' : ` and <= ${opts.max}`}`;
  return {
    flag,
    parse(value, name) {
      const n = typeof value === 'string' && value.trim() !== '' ? Number(value) : value;
      if (typeof n !== 'number' || !Number.isFinite(n)) fail(name, flag, what, value);
      if (
        (opts.integer && !Number.isInteger(n)) ||
        n < opts.min ||
        (opts.max !== undefined && n > opts.max)
      ) {
        fail(name, flag, what, value);
      }
      return n;
    },
  };
}

function str(flag: string): Field<string> {
  return {
    flag,
    parse(value, name) {
      if (typeof value !== 'string' || value === '') fail(name, flag, 'must be a non-empty string', value);
      return value;
    },
  };
}

function bool(flag: string): Field<boolean> {
  return {
    flag,
    parse(value, name) {
      if (typeof value !== 'boolean') fail(name, flag, 'must be true or false', value);
      return value;
    },
  };
}

/** `field`, refused by name (with the version it needs) when this Node lacks the feature. */
function needsNode<T>(field: Field<T>, available: boolean, needs: string): Field<T> {
  return {
    flag: field.flag,
    parse(value, name) {
      const v = field.parse(value, name);
      if (v !== false && !available) {
        throw new ParamError(`${name} (${field.flag}) needs ${needs}; this is Node.js ${process.version}`);
      }
      return v;
    },
  };
}

function oneOf<T extends string>(
  flag: string,
  values: readonly T[],
  fold: (v: string) => string = (v) => v,
): Field<T> {
  return {
    flag,
    parse(value, name) {
      if (typeof value !== 'string' || !values.includes(fold(value) as T)) {
        fail(name, flag, `must be one of ${values.join(', ')}`, value);
      }
      return fold(value) as T;
    },
  };
}

const FIELDS: { [K in keyof TcpdaemonParams]-?: Field<Exclude<TcpdaemonParams[K], undefined>> } = {
  model: oneOf('-m', MODEL_FLAGS, (v) => v.toUpperCase()),
  listen: str('-l'),
  handler: {
    flag: '-s',
    parse(value, name) {
      if (typeof value === 'function') return value as Tcpmain;
      if (typeof value === 'string' && value !== '') return value;
      fail(
        name,
        '-s',
        'must be a module path or a function',
        typeof value === 'object' ? String(value) : value,
      );
    },
  },
  workers: num('-c', { min: 1, max: 1024, integer: true }),
  recycleAfter: num('-n', { min: 0, integer: true }),
  workPath: str('--work-path'),
  logfile: str('--logfile'),
  loglevel: oneOf('--loglevel', LOG_LEVELS, (v) => v.toLowerCase()),
  tcpNodelay: bool('--tcp-nodelay'),
  tcpLinger: num('--tcp-linger', { min: 0, max: 3600, integer: true }),
  timeout: num('--timeout', { min: 0, integer: false }),
  proxyProtocol: bool('--proxy-protocol'),
  proxyHeaderTimeout: num('--proxy-header-timeout', { min: 0.001, max: 3600, integer: false }),
  daemonLevel: bool('--daemon-level'),
  pidFile: str('--pid-file'),
  statusSocket: str('--status-socket'),
  maxConnections: num('--max-connections', { min: 0, integer: true }),
  shutdownTimeout: num('--shutdown-timeout', { min: 0, integer: false }),
  hangTimeout: num('--hang-timeout', { min: 0, max: 86400, integer: false }),
  maxMemory: num('--max-memory', { min: 0, max: 1048576, integer: false }),
  restartDelay: num('--restart-delay', { min: 0, max: 3600, integer: false }),
  restartDelayMax: num('--restart-delay-max', { min: 0, max: 3600, integer: false }),
  spares: num('--spares', { min: 1, max: 1024, integer: true }),
  maxWaiting: num('--max-waiting or --queue', { min: 0, max: 1_000_000, integer: true }),
  // Declared on every Node, so an older one answers "needs Node.js >= 22.12", not "unknown".
  reusePort: needsNode(bool('--reuse-port'), hasReusePort(), REUSE_PORT_NEEDS),
  params: {
    flag: '--param',
    parse(value, name) {
      if (typeof value !== 'object' || value === null || Array.isArray(value)) {
        fail(name, '--param', 'must be an object of string values', value);
      }
      for (const [k, v] of Object.entries(value)) {
        if (typeof v !== 'string') fail(`${name}.${k}`, '--param', 'must be a string', v);
      }
      return Object.freeze({ ...(value as Record<string, string>) });
    },
  },
};

/** Validates library/CLI/config input; throws ParamError with a one-line reason. */
export function validateParams(input: unknown): ResolvedParams {
  if (typeof input !== 'object' || input === null) throw new ParamError('parameters must be an object');
  const raw = input as Record<string, unknown>;
  for (const key of Object.keys(raw)) {
    if (!(key in FIELDS)) throw new ParamError(`unknown parameter '${key}'`);
  }
  const get = <K extends keyof TcpdaemonParams>(
    key: K,
  ): Exclude<TcpdaemonParams[K], undefined> | undefined =>
    raw[key] === undefined
      ? undefined
      : (FIELDS[key] as Field<Exclude<TcpdaemonParams[K], undefined>>).parse(raw[key], key);
  for (const key of ['listen', 'handler'] as const) {
    if (raw[key] === undefined) throw new ParamError(`${key} (${FIELDS[key].flag}) is required`);
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
    tcpNodelay: get('tcpNodelay') ?? false,
    tcpLinger: get('tcpLinger'),
    timeout: get('timeout') ?? 0,
    proxyProtocol: get('proxyProtocol') ?? false,
    proxyHeaderTimeout: get('proxyHeaderTimeout') ?? 5,
    daemonLevel: get('daemonLevel') ?? false,
    pidFile: get('pidFile'),
    statusSocket: get('statusSocket'),
    maxConnections: get('maxConnections') ?? 0,
    shutdownTimeout: get('shutdownTimeout') ?? 10,
    params: get('params') ?? Object.freeze({}),
    hangTimeout: get('hangTimeout') ?? 0,
    maxMemory: get('maxMemory') ?? 0,
    restartDelay: get('restartDelay') ?? 0.1,
    restartDelayMax: get('restartDelayMax') ?? 10,
    spares: get('spares') ?? Math.min(workers, 2),
    maxWaiting: get('maxWaiting') ?? (model === 'IF' ? 64 : 1024),
    reusePort: get('reusePort') ?? false,
  };
  if (resolved.restartDelayMax < resolved.restartDelay) {
    fail(
      'restartDelayMax',
      '--restart-delay-max',
      `must be >= restartDelay (--restart-delay, ${resolved.restartDelay})`,
      resolved.restartDelayMax,
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
        : (model === 'IOMP' && workers > 1) || model === 'TLF'
          ? undefined
          : `model ${model}${model === 'IOMP' ? ' -c 1' : ''} accepts in the daemon`;
    if (where) {
      throw new ParamError(`reusePort (--reuse-port) applies to IOMP -c N (N > 1) and TLF on TCP: ${where}`);
    }
  }
  if (resolved.timeout > 0 && resolved.timeout * 1000 > 2 ** 31 - 1) {
    fail('timeout', '--timeout', 'must be at most 2147483 seconds', resolved.timeout);
  }
  return resolved;
}
