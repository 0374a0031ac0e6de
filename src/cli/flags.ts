// argv -> the library's parameter object. Spelling follows the C tcpdaemon; validation is params.ts'.
import { resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { LOG_LEVELS } from '../logger.js';
import { ParamError, type TcpdaemonParams } from '../params.js';
import { readConfigFile } from './config.js';

export type CliCommand = { kind: 'help' } | { kind: 'version' } | { kind: 'run'; params: TcpdaemonParams };

/** Flags that carry a value, with the parameter each one sets. */
const VALUE_FLAGS = {
  model: { short: 'm', key: 'model' },
  listen: { short: 'l', key: 'listen' },
  handler: { short: 's', key: 'handler' },
  workers: { short: 'c', key: 'workers' },
  'recycle-after': { short: 'n', key: 'recycleAfter' },
  'work-path': { key: 'workPath' },
  logfile: { key: 'logfile' },
  loglevel: { key: 'loglevel' },
  'tcp-linger': { key: 'tcpLinger' },
  timeout: { key: 'timeout' },
  'proxy-header-timeout': { key: 'proxyHeaderTimeout' },
  'pid-file': { key: 'pidFile' },
  'status-socket': { key: 'statusSocket' },
  'max-connections': { key: 'maxConnections' },
  'shutdown-timeout': { key: 'shutdownTimeout' },
  'hang-timeout': { key: 'hangTimeout' },
  'max-memory': { key: 'maxMemory' },
  'restart-delay': { key: 'restartDelay' },
  'restart-delay-max': { key: 'restartDelayMax' },
  spares: { key: 'spares' },
  'max-waiting': { key: 'maxWaiting' },
  // The spelling issue #4 gave IF's waiting queue; same parameter.
  queue: { key: 'maxWaiting' },
} as const satisfies Record<string, { short?: string; key: keyof TcpdaemonParams }>;

const SWITCH_FLAGS = {
  'tcp-nodelay': 'tcpNodelay',
  'proxy-protocol': 'proxyProtocol',
  'daemon-level': 'daemonLevel',
  'reuse-port': 'reusePort',
} as const satisfies Record<string, keyof TcpdaemonParams>;

/** Paths on the command line are resolved against the caller's directory, before --work-path. */
const PATH_KEYS = new Set<string>(['handler', 'logfile', 'pidFile', 'statusSocket', 'workPath']);

type Options = NonNullable<Parameters<typeof parseArgs>[0]>['options'];

function parserOptions(): Options {
  const options: Options = {
    config: { type: 'string' },
    param: { type: 'string', multiple: true },
    version: { type: 'boolean', short: 'v' },
    help: { type: 'boolean', short: 'h' },
  };
  for (const [long, spec] of Object.entries(VALUE_FLAGS)) {
    options[long] = 'short' in spec ? { type: 'string', short: spec.short } : { type: 'string' };
  }
  for (const long of Object.keys(SWITCH_FLAGS)) options[long] = { type: 'boolean' };
  for (const level of LOG_LEVELS) options[`loglevel-${level}`] = { type: 'boolean' };
  return options;
}

/** Parses argv (without node and script). Throws ParamError with a one-line reason. */
export function parseCli(argv: string[]): CliCommand {
  let values: Record<string, string | boolean | string[] | undefined>;
  try {
    ({ values } = parseArgs({ args: argv, options: parserOptions(), strict: true, allowPositionals: false }));
  } catch (err) {
    throw new ParamError(shortParseError(err as Error));
  }
  if (values.help) return { kind: 'help' };
  if (values.version) return { kind: 'version' };

  const fromFlags: Record<string, unknown> = {};
  for (const [long, spec] of Object.entries(VALUE_FLAGS)) {
    const v = values[long];
    if (typeof v === 'string') fromFlags[spec.key] = PATH_KEYS.has(spec.key) ? resolve(v) : v;
  }
  for (const [long, key] of Object.entries(SWITCH_FLAGS)) if (values[long]) fromFlags[key] = true;
  if (values.queue !== undefined && values['max-waiting'] !== undefined) {
    throw new ParamError('give --max-waiting or --queue, not both (they are the same limit)');
  }
  const levels = LOG_LEVELS.filter((l) => values[`loglevel-${l}`]);
  if (levels.length + (values.loglevel === undefined ? 0 : 1) > 1) {
    throw new ParamError('give one log level (--loglevel LEVEL or one --loglevel-LEVEL)');
  }
  if (levels.length === 1) fromFlags.loglevel = levels[0];
  const params = values.param as string[] | undefined;
  if (params) fromFlags.params = parseKeyValues(params);

  const config = typeof values.config === 'string' ? readConfigFile(values.config) : {};
  const merged = { ...config, ...fromFlags };
  if (config.params && fromFlags.params) {
    merged.params = {
      ...(config.params as Record<string, string>),
      ...(fromFlags.params as Record<string, string>),
    };
  }
  return { kind: 'run', params: merged as unknown as TcpdaemonParams };
}

function parseKeyValues(items: string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const item of items) {
    const eq = item.indexOf('=');
    if (eq <= 0) throw new ParamError(`--param expects KEY=VALUE, got '${item}'`);
    out[item.slice(0, eq)] = item.slice(eq + 1);
  }
  return out;
}

/** node:util's messages carry a second sentence of advice; keep the reason. */
function shortParseError(err: Error): string {
  const code = (err as NodeJS.ErrnoException).code;
  const flag = /'([^']+)'/.exec(err.message)?.[1];
  if (code === 'ERR_PARSE_ARGS_UNKNOWN_OPTION' && flag) return `unknown flag '${flag}'`;
  if (code === 'ERR_PARSE_ARGS_UNEXPECTED_POSITIONAL' && flag) return `unexpected argument '${flag}'`;
  if (code === 'ERR_PARSE_ARGS_INVALID_OPTION_VALUE') {
    const m = /Option '([^']+)'/.exec(err.message);
    if (/argument missing/.test(err.message) && m)
      return `flag ${m[1]!.replace(' <value>', '')} needs a value`;
    if (/does not take an argument/.test(err.message) && m) return `flag ${m[1]} takes no value`;
    if (/argument is ambiguous/.test(err.message) && m) {
      return `flag ${m[1]} needs a value; for one that starts with '-', write ${m[1]}=VALUE`;
    }
  }
  return err.message.split('. ')[0] ?? err.message;
}
