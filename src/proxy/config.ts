// The proxy's parameter schema. `tcpdaemon proxy` flags and its --config file only turn their
// input into this object; everything is validated here, one message per mistake naming the
// key and its flag. Times are in seconds (fractions allowed), like the daemon's --timeout.

import { ParamError } from '../errors.js';
import { LOG_LEVELS, type LogLevel } from '../logger.js';
import { MODEL_FLAGS } from '../params.js';
import { DEFAULT_HEADER_TIMEOUT_MS } from '../proxy-protocol/header.js';
import type { ModelFlag } from '../types.js';
import { type BackendSpec, parseBackendSpec } from './backend.js';
import { DEFAULT_PASSIVE_HEALTH, type PassiveHealthOptions } from './health.js';
import { DEFAULT_ACTIVE_CHECK } from './health-check.js';
import { PORT_PLACEHOLDER, splitCommand } from './spawn-command.js';
import { DEFAULT_STATS_INTERVAL_MS } from './stats.js';
import { DEFAULT_STRATEGY, STRATEGY_NAMES, type StrategyName } from './strategies/index.js';

export interface ProxyConfig {
  /** `-l`: where the front listens (same spelling as the daemon's -l). */
  listen: string;
  /** `--backend HOST:PORT[,weight=N]` (repeatable); also `[v6]:port` and socket paths. */
  backends?: string[];
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
  // The daemon's own parameters, for the front.
  model?: ModelFlag;
  workers?: number;
  logfile?: string;
  loglevel?: LogLevel;
  pidFile?: string;
  maxConnections?: number;
  shutdownTimeout?: number;
  /** `--tcp-nodelay` on client connections. Default true for the proxy (a proxy must not add Nagle delays). */
  tcpNodelay?: boolean;
}

/** Validated, defaults filled in, times in milliseconds. */
export interface ResolvedProxyConfig {
  listen: string;
  backends: BackendSpec[];
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
  proxyProtocol: boolean;
  /** Seconds, as the daemon takes it. */
  proxyHeaderTimeout: number;
  statsIntervalMs: number;
  passive: PassiveHealthOptions;
  checks: { rise: number; fall: number; timeoutMs: number };
  daemon: {
    model: ModelFlag | undefined;
    workers: number | undefined;
    logfile: string | undefined;
    loglevel: LogLevel | undefined;
    pidFile: string | undefined;
    maxConnections: number | undefined;
    shutdownTimeout: number | undefined;
    tcpNodelay: boolean;
  };
}

/** A proxy parameter is wrong (a ParamError, as every command's). */
export class ProxyConfigError extends ParamError {
  override name = 'ProxyConfigError';
}

/** Flag spelling per key, for messages. */
const FLAGS: Record<string, string> = {
  listen: '-l',
  backends: '--backend',
  spawn: '--spawn',
  spawnCount: '--spawn-count',
  spawnPort: '--spawn-port',
  spawnUnix: '--spawn-unix',
  strategy: '--strategy',
  healthInterval: '--health-interval',
  connectTimeout: '--connect-timeout',
  retries: '--retries',
  timeout: '--timeout',
  sendProxy: '--send-proxy',
  proxyProtocol: '--proxy-protocol',
  proxyHeaderTimeout: '--proxy-header-timeout',
  statsInterval: '--stats-interval',
  passive: '--config',
  checks: '--config',
  model: '-m',
  workers: '-c',
  logfile: '--logfile',
  loglevel: '--loglevel',
  pidFile: '--pid-file',
  maxConnections: '--max-connections',
  shutdownTimeout: '--shutdown-timeout',
  tcpNodelay: '--tcp-nodelay',
};

function fail(key: string, what: string, value: unknown): never {
  const shown = typeof value === 'string' ? `'${value}'` : JSON.stringify(value);
  throw new ProxyConfigError(`${key} (${FLAGS[key.split('.')[0]!] ?? '--config'}) ${what}, got ${shown}`);
}

function number(key: string, value: unknown, opts: { min: number; max?: number; integer?: boolean }): number {
  const n = typeof value === 'string' && value.trim() !== '' ? Number(value) : value;
  const what = `must be ${opts.integer ? 'a whole number' : 'a number'} >= ${opts.min}${opts.max === undefined ? '' : ` and <= ${opts.max}`}`;
  if (typeof n !== 'number' || !Number.isFinite(n)) fail(key, what, value);
  if ((opts.integer && !Number.isInteger(n)) || n < opts.min || (opts.max !== undefined && n > opts.max)) {
    fail(key, what, value);
  }
  return n;
}

function optional<T>(raw: Record<string, unknown>, key: string, parse: (v: unknown) => T): T | undefined {
  return raw[key] === undefined ? undefined : parse(raw[key]);
}

function string(key: string, value: unknown): string {
  if (typeof value !== 'string' || value === '') fail(key, 'must be a non-empty string', value);
  return value;
}

function boolean(key: string, value: unknown): boolean {
  if (typeof value !== 'boolean') fail(key, 'must be true or false', value);
  return value;
}

function oneOf<T extends string>(
  key: string,
  value: unknown,
  values: readonly T[],
  fold = (v: string) => v,
): T {
  if (typeof value !== 'string' || !values.includes(fold(value) as T)) {
    fail(key, `must be one of ${values.join(', ')}`, value);
  }
  return fold(value) as T;
}

function object(key: string, value: unknown, keys: readonly string[]): Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value))
    fail(key, 'must be an object', value);
  for (const k of Object.keys(value)) {
    if (!keys.includes(k))
      throw new ProxyConfigError(`unknown key '${key}.${k}' (expected ${keys.join(', ')})`);
  }
  return value as Record<string, unknown>;
}

const seconds = (key: string, v: unknown) => Math.round(number(key, v, { min: 0, max: 86400 }) * 1000);

/** Validates library, flag or config input; throws ProxyConfigError with a one-line reason. */
export function validateProxyConfig(input: unknown): ResolvedProxyConfig {
  if (typeof input !== 'object' || input === null)
    throw new ProxyConfigError('proxy parameters must be an object');
  const raw = input as Record<string, unknown>;
  for (const key of Object.keys(raw)) {
    if (!(key in FLAGS)) throw new ProxyConfigError(`unknown parameter '${key}'`);
  }
  if (raw.listen === undefined) throw new ProxyConfigError('listen (-l) is required');
  const listen = string('listen', raw.listen);

  const backendTexts = optional(raw, 'backends', (v) => {
    if (!Array.isArray(v)) fail('backends', 'must be a list of HOST:PORT[,weight=N]', v);
    return v.map((t, i) => string(`backends[${i}]`, t));
  });
  const backends: BackendSpec[] = [];
  const seen = new Set<string>();
  for (const text of backendTexts ?? []) {
    let spec: BackendSpec;
    try {
      spec = parseBackendSpec(text);
    } catch (err) {
      throw new ProxyConfigError(`--backend ${(err as Error).message}`);
    }
    if (seen.has(spec.id)) throw new ProxyConfigError(`--backend ${spec.id} is given twice`);
    seen.add(spec.id);
    backends.push(spec);
  }

  const command = optional(raw, 'spawn', (v) => string('spawn', v));
  const spawnCount = optional(raw, 'spawnCount', (v) =>
    number('spawnCount', v, { min: 1, max: 256, integer: true }),
  );
  const spawnPort = optional(raw, 'spawnPort', (v) =>
    number('spawnPort', v, { min: 1, max: 65535, integer: true }),
  );
  const spawnUnix = optional(raw, 'spawnUnix', (v) => boolean('spawnUnix', v)) ?? false;
  for (const key of ['spawnCount', 'spawnPort', 'spawnUnix'] as const) {
    if (raw[key] !== undefined && command === undefined) {
      throw new ProxyConfigError(`${key} (${FLAGS[key]}) needs --spawn COMMAND`);
    }
  }
  let spawn: ResolvedProxyConfig['spawn'];
  if (command !== undefined) {
    let words: string[];
    try {
      words = splitCommand(command);
    } catch (err) {
      fail('spawn', (err as Error).message, command);
    }
    if (!words.some((w) => w.includes(PORT_PLACEHOLDER))) {
      fail(
        'spawn',
        "must contain the {port} placeholder (the backend's port or socket path goes there)",
        command,
      );
    }
    const count = spawnCount ?? 1;
    if (spawnPort !== undefined && spawnUnix)
      throw new ProxyConfigError('give --spawn-port or --spawn-unix, not both');
    if (spawnPort !== undefined && spawnPort + count - 1 > 65535) {
      fail('spawnPort', `leaves no room for ${count} ports below 65536`, spawnPort);
    }
    spawn = { words, count, basePort: spawnPort, unix: spawnUnix };
  }
  if (backends.length === 0 && spawn === undefined) {
    throw new ProxyConfigError('give at least one --backend HOST:PORT or --spawn COMMAND');
  }

  const passiveRaw = optional(raw, 'passive', (v) =>
    object('passive', v, Object.keys(DEFAULT_PASSIVE_HEALTH)),
  );
  const passive: PassiveHealthOptions = { ...DEFAULT_PASSIVE_HEALTH };
  for (const [k, v] of Object.entries(passiveRaw ?? {})) {
    const key = `passive.${k}` as const;
    const isRate = k.endsWith('Rate');
    const n = number(key, v, isRate ? { min: 0, max: 1 } : { min: k === 'probeNum' ? 1 : 0, integer: true });
    (passive as unknown as Record<string, number>)[k] = n;
  }

  const checksRaw = optional(raw, 'checks', (v) => object('checks', v, ['rise', 'fall', 'timeout']));
  const checks = {
    rise:
      optional(checksRaw ?? {}, 'rise', (v) =>
        number('checks.rise', v, { min: 1, max: 100, integer: true }),
      ) ?? DEFAULT_ACTIVE_CHECK.rise,
    fall:
      optional(checksRaw ?? {}, 'fall', (v) =>
        number('checks.fall', v, { min: 1, max: 100, integer: true }),
      ) ?? DEFAULT_ACTIVE_CHECK.fall,
    timeoutMs:
      optional(checksRaw ?? {}, 'timeout', (v) => seconds('checks.timeout', v)) ??
      DEFAULT_ACTIVE_CHECK.timeoutMs,
  };

  return {
    listen,
    backends,
    spawn,
    strategy: optional(raw, 'strategy', (v) => oneOf('strategy', v, STRATEGY_NAMES)) ?? DEFAULT_STRATEGY,
    healthIntervalMs:
      optional(raw, 'healthInterval', (v) => seconds('healthInterval', v)) ?? DEFAULT_ACTIVE_CHECK.intervalMs,
    connectTimeoutMs: optional(raw, 'connectTimeout', (v) => seconds('connectTimeout', v)) ?? 3000,
    retries: optional(raw, 'retries', (v) => number('retries', v, { min: 0, max: 100, integer: true })) ?? 2,
    timeout: optional(raw, 'timeout', (v) => number('timeout', v, { min: 0 })) ?? 0,
    sendProxy: optional(raw, 'sendProxy', (v) =>
      oneOf('sendProxy', v, ['v1', 'v2'] as const, (s) => s.toLowerCase()),
    ),
    proxyProtocol: optional(raw, 'proxyProtocol', (v) => boolean('proxyProtocol', v)) ?? false,
    proxyHeaderTimeout:
      optional(raw, 'proxyHeaderTimeout', (v) =>
        number('proxyHeaderTimeout', v, { min: 0.001, max: 3600 }),
      ) ?? DEFAULT_HEADER_TIMEOUT_MS / 1000,
    statsIntervalMs:
      optional(raw, 'statsInterval', (v) => seconds('statsInterval', v)) ?? DEFAULT_STATS_INTERVAL_MS,
    passive,
    checks,
    daemon: {
      model: optional(raw, 'model', (v) => oneOf('model', v, MODEL_FLAGS, (s) => s.toUpperCase())),
      workers: optional(raw, 'workers', (v) => number('workers', v, { min: 1, max: 1024, integer: true })),
      logfile: optional(raw, 'logfile', (v) => string('logfile', v)),
      loglevel: optional(raw, 'loglevel', (v) => oneOf('loglevel', v, LOG_LEVELS, (s) => s.toLowerCase())),
      pidFile: optional(raw, 'pidFile', (v) => string('pidFile', v)),
      maxConnections: optional(raw, 'maxConnections', (v) =>
        number('maxConnections', v, { min: 0, integer: true }),
      ),
      shutdownTimeout: optional(raw, 'shutdownTimeout', (v) => number('shutdownTimeout', v, { min: 0 })),
      tcpNodelay: optional(raw, 'tcpNodelay', (v) => boolean('tcpNodelay', v)) ?? true,
    },
  };
}
