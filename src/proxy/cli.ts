// `tcpdaemon proxy ...`: argv -> ProxyConfig -> startProxy; failures become one line and exit 1.
import { resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { readConfigFile } from '../cli/config.js';
import { LOG_LEVELS } from '../logger.js';
import { ParamError } from '../params.js';
import { keepServingOnUncaught } from '../process-guards.js';
import { SignalInbox } from '../signals.js';
import { StartError } from '../start-error.js';
import { type ProxyConfig, ProxyConfigError } from './config.js';
import { startProxy } from './run.js';

export const PROXY_USAGE = `usage: tcpdaemon proxy -l ADDRESS --backend HOST:PORT[,weight=N] [--backend ...] [options]
       tcpdaemon proxy -l ADDRESS --spawn 'COMMAND {port}' [--spawn-count N] [options]

  -l ADDRESS              where the front listens: ip:port, [ipv6]:port or a unix socket path
  --backend TARGET        HOST:PORT, [IPV6]:PORT or a socket path, optionally ,weight=N (1..100); repeatable
  --spawn 'COMMAND'       start N backends and supervise them; {port} in COMMAND (and the variable
                          TCPDAEMON_BACKEND_PORT) becomes each one's port; split into words, no shell
  --spawn-count N         how many to spawn (default 1)
  --spawn-port BASE       spawned backends listen on BASE..BASE+N-1 (default: free ports picked at start)
  --spawn-unix            spawned backends get unix socket paths (in a private directory) instead of ports
  --strategy NAME         roundrobin (weighted), leastconn, p2c, hash (client address); default p2c
  --health-interval S     seconds between TCP connect checks of each backend (default 2; 0 = off)
  --connect-timeout S     per connect attempt to a backend (default 3)
  --retries N             further backends tried after a failed connect (default 2)
  --timeout S             idle timeout per connection, both directions (default 0 = none)
  --send-proxy v1|v2      send a PROXY protocol header to backends
  --proxy-protocol        read a PROXY header (v1/v2) from a balancer in front of this proxy
  --proxy-header-timeout S  the PROXY header must arrive within S seconds (default 5)
  --stats-interval S      log per-backend stats every S seconds at info level (default 30; 0 = never)
  -m MODEL, -c N          process model and workers of the front (as for tcpdaemon)
  --max-connections N, --shutdown-timeout S, --logfile PATH, --loglevel LEVEL, --pid-file PATH
                          as for tcpdaemon
  --config FILE.json      the same keys as the library's ProxyConfig (backends, passive, checks, ...);
                          flags override it
  -h, --help              print this help`;

const VALUE_FLAGS = {
  listen: { short: 'l', key: 'listen' },
  spawn: { key: 'spawn' },
  'spawn-count': { key: 'spawnCount' },
  'spawn-port': { key: 'spawnPort' },
  strategy: { key: 'strategy' },
  'health-interval': { key: 'healthInterval' },
  'connect-timeout': { key: 'connectTimeout' },
  retries: { key: 'retries' },
  timeout: { key: 'timeout' },
  'send-proxy': { key: 'sendProxy' },
  'proxy-header-timeout': { key: 'proxyHeaderTimeout' },
  'stats-interval': { key: 'statsInterval' },
  model: { short: 'm', key: 'model' },
  workers: { short: 'c', key: 'workers' },
  'max-connections': { key: 'maxConnections' },
  'shutdown-timeout': { key: 'shutdownTimeout' },
  logfile: { key: 'logfile' },
  loglevel: { key: 'loglevel' },
  'pid-file': { key: 'pidFile' },
} as const satisfies Record<string, { short?: string; key: keyof ProxyConfig }>;

const PATH_KEYS = new Set<string>(['logfile', 'pidFile']);

type Options = NonNullable<Parameters<typeof parseArgs>[0]>['options'];

function parserOptions(): Options {
  const options: Options = {
    backend: { type: 'string', multiple: true },
    'proxy-protocol': { type: 'boolean' },
    'spawn-unix': { type: 'boolean' },
    config: { type: 'string' },
    help: { type: 'boolean', short: 'h' },
  };
  for (const [long, spec] of Object.entries(VALUE_FLAGS)) {
    options[long] = 'short' in spec ? { type: 'string', short: spec.short } : { type: 'string' };
  }
  for (const level of LOG_LEVELS) options[`loglevel-${level}`] = { type: 'boolean' };
  return options;
}

/** argv (after `proxy`) -> the library's config, or 'help'. Throws ProxyConfigError. */
export function parseProxyArgs(argv: string[]): ProxyConfig | 'help' {
  let values: Record<string, string | boolean | (string | boolean)[] | undefined>;
  try {
    ({ values } = parseArgs({ args: argv, options: parserOptions(), strict: true, allowPositionals: false }));
  } catch (err) {
    throw new ProxyConfigError(shortParseError(err as Error));
  }
  if (values.help) return 'help';
  const fromFlags: Record<string, unknown> = {};
  for (const [long, spec] of Object.entries(VALUE_FLAGS)) {
    const v = values[long];
    if (typeof v === 'string') fromFlags[spec.key] = PATH_KEYS.has(spec.key) ? resolve(v) : v;
  }
  if (values.backend) fromFlags.backends = values.backend;
  if (values['proxy-protocol']) fromFlags.proxyProtocol = true;
  if (values['spawn-unix']) fromFlags.spawnUnix = true;
  const levels = LOG_LEVELS.filter((l) => values[`loglevel-${l}`]);
  if (levels.length + (values.loglevel === undefined ? 0 : 1) > 1) {
    throw new ProxyConfigError('give one log level (--loglevel LEVEL or one --loglevel-LEVEL)');
  }
  if (levels.length === 1) fromFlags.loglevel = levels[0];
  let config: Record<string, unknown> = {};
  if (typeof values.config === 'string') {
    try {
      config = readConfigFile(values.config);
    } catch (err) {
      throw new ProxyConfigError((err as Error).message);
    }
  }
  return { ...config, ...fromFlags } as unknown as ProxyConfig;
}

function shortParseError(err: Error): string {
  const code = (err as NodeJS.ErrnoException).code;
  const flag = /'([^']+)'/.exec(err.message)?.[1];
  if (code === 'ERR_PARSE_ARGS_UNKNOWN_OPTION' && flag) return `unknown flag '${flag}'`;
  if (code === 'ERR_PARSE_ARGS_UNEXPECTED_POSITIONAL' && flag) return `unexpected argument '${flag}'`;
  const m = /Option '([^']+)'/.exec(err.message);
  if (/argument missing/.test(err.message) && m) return `flag ${m[1]!.replace(' <value>', '')} needs a value`;
  if (/does not take an argument/.test(err.message) && m) return `flag ${m[1]} takes no value`;
  return err.message.split('. ')[0] ?? err.message;
}

/**
 * Runs `tcpdaemon proxy <argv>`. Resolves with the exit code: 1 for bad flags or a failed
 * start (one line on stderr), otherwise once the proxy has stopped on a signal.
 */
export async function proxyMain(argv: string[]): Promise<number> {
  const inbox = new SignalInbox();
  let config: ProxyConfig | 'help';
  try {
    config = parseProxyArgs(argv);
  } catch (err) {
    if (!(err instanceof ProxyConfigError)) throw err;
    process.stderr.write(`tcpdaemon proxy: ${err.message}\n\n${PROXY_USAGE}\n`);
    inbox.dispose();
    return 1;
  }
  if (config === 'help') {
    process.stdout.write(`${PROXY_USAGE}\n`);
    inbox.dispose();
    return 0;
  }
  let exited!: (code: number) => void;
  const exitCode = new Promise<number>((r) => {
    exited = r;
  });
  try {
    const handle = await startProxy(config, { signals: inbox, exit: exited });
    keepServingOnUncaught(handle.logger);
  } catch (err) {
    const usage = err instanceof ProxyConfigError || err instanceof ParamError;
    const known = usage || err instanceof StartError;
    const message = known
      ? (err as Error).message
      : `start-up failed: ${(err as Error).stack ?? String(err)}`;
    process.stderr.write(`tcpdaemon proxy: ${message}\n${usage ? `\n${PROXY_USAGE}\n` : ''}`);
    inbox.dispose();
    return 1;
  }
  return exitCode;
}
