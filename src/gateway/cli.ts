// `tcpdaemon gateway ...` and `tcpdaemon worker ...`: argv -> GatewayParams -> the daemon.
import { resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { HandlerLoadError } from '../handler/load.js';
import { ListenError } from '../listen.js';
import { ParamError } from '../params.js';
import { keepServingOnUncaught } from '../process-guards.js';
import { SignalInbox } from '../signals.js';
import { type GatewayParams, validateGatewayParams } from './params.js';

export const GATEWAY_USAGE = `usage: tcpdaemon gateway -l ADDRESS -s BUSINESS --workers N [-c G] [options]
       tcpdaemon gateway -l ADDRESS --queue nats://HOST:PORT [-c G] [options]
       tcpdaemon worker -s BUSINESS --queue nats://HOST:PORT [--workers N] [options]

  -l ADDRESS                 where clients connect: ip:port, [ipv6]:port or a unix socket path
  -s BUSINESS                business module: export default async function (msg, ctx) { ... }
  --workers N                business worker processes (default 1)
  -c G                       gateway processes holding the client connections (default 1)
  --codec NAME               client framing: seq (default), lars, tdhb:W, u32be, line
  --max-body BYTES           largest message body (default 65527)
  --queue ipc|nats://H:P     ipc: embedded, no server (default); nats: gateways and workers meet in NATS
  --queue-prefix NAME        NATS subject prefix (default tcpdaemon)
  --request-timeout S        seconds until a client gets a timeout error (default 10)
  --retry-on-crash           resend a request lost with a crashed worker once (idempotent handlers)
  --worker-concurrency N     requests outstanding at one worker (default 64)
  --max-waiting N            requests waiting for a worker, per gateway process (default 10000)
  --max-connections N        client connections in all (0 = no limit)
  --max-conns-per-ip N       client connections from one address (0 = no limit)
  --max-inflight-per-conn N  requests in flight on one connection; at it, that connection is not
                             read until an answer goes out (default 64)
  --refuse-over-inflight     seq codec: refuse the request past that bound with an error reply instead
  --max-session-bytes B      answers waiting for their turn and frames read past the in-flight bound,
                             per connection, with bookkeeping; past it the connection is closed (default 8 MiB)
  --store-max N              messages kept for an offline name (default 100)
  --store-ttl S              seconds a kept message lives (default 300)
  --store-bytes B            bytes kept in all, each message with its name and bookkeeping,
                             ipc store (default 64 MiB)
  --store-names N            offline names with kept messages, ipc store (default 10000)
  --timeout S                idle timeout of a client connection (0 = none)
  --shutdown-timeout S       seconds in-flight requests get on stop (default 10)
  --logfile PATH, --loglevel LEVEL, --pid-file PATH
  -h, --help

signals: SIGTERM/SIGINT stop gracefully, SIGHUP reloads the workers one by one, SIGUSR1 reopens logs`;

const FLAGS = {
  listen: { short: 'l', key: 'listen' },
  business: { short: 's', key: 'business' },
  workers: { key: 'workers' },
  gateways: { short: 'c', key: 'gateways' },
  codec: { key: 'codec' },
  'max-body': { key: 'maxBody' },
  queue: { key: 'queue' },
  'queue-prefix': { key: 'queuePrefix' },
  'request-timeout': { key: 'requestTimeout' },
  'worker-concurrency': { key: 'workerConcurrency' },
  'max-waiting': { key: 'maxWaiting' },
  'max-connections': { key: 'maxConnections' },
  'max-conns-per-ip': { key: 'maxConnsPerIp' },
  'max-inflight-per-conn': { key: 'maxInflightPerConn' },
  'max-session-bytes': { key: 'maxSessionBytes' },
  'store-max': { key: 'storeMax' },
  'store-ttl': { key: 'storeTtl' },
  'store-bytes': { key: 'storeBytes' },
  'store-names': { key: 'storeNames' },
  timeout: { key: 'timeout' },
  'shutdown-timeout': { key: 'shutdownTimeout' },
  logfile: { key: 'logfile' },
  loglevel: { key: 'loglevel' },
  'pid-file': { key: 'pidFile' },
} as const satisfies Record<string, { short?: string; key: keyof GatewayParams }>;

const PATHS = new Set<string>(['business', 'logfile', 'pidFile']);

/** argv (after the subcommand) -> parameters, or 'help'. Throws ParamError with a one-line reason. */
export function parseGatewayArgs(argv: string[]): GatewayParams | 'help' {
  const options: Record<string, { type: 'string' | 'boolean'; short?: string }> = {
    'retry-on-crash': { type: 'boolean' },
    'refuse-over-inflight': { type: 'boolean' },
    help: { type: 'boolean', short: 'h' },
  };
  for (const [long, spec] of Object.entries(FLAGS)) {
    options[long] = 'short' in spec ? { type: 'string', short: spec.short } : { type: 'string' };
  }
  let values: Record<string, string | boolean | undefined>;
  try {
    ({ values } = parseArgs({ args: argv, options, strict: true, allowPositionals: false }) as {
      values: Record<string, string | boolean | undefined>;
    });
  } catch (err) {
    const flag = /'([^']+)'/.exec((err as Error).message)?.[1];
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ERR_PARSE_ARGS_UNKNOWN_OPTION' && flag) throw new ParamError(`unknown flag '${flag}'`);
    if (code === 'ERR_PARSE_ARGS_UNEXPECTED_POSITIONAL' && flag)
      throw new ParamError(`unexpected argument '${flag}'`);
    throw new ParamError((err as Error).message.split('. ')[0] ?? 'bad arguments');
  }
  if (values.help) return 'help';
  const params: Record<string, unknown> = {};
  for (const [long, spec] of Object.entries(FLAGS)) {
    const v = values[long];
    if (typeof v === 'string') params[spec.key] = PATHS.has(spec.key) ? resolve(v) : v;
  }
  if (values['retry-on-crash']) params.retryOnCrash = true;
  if (values['refuse-over-inflight']) params.refuseOverInflight = true;
  return params as GatewayParams;
}

/** `tcpdaemon gateway ...`; resolves with the exit code once stopped (or at once on bad flags). */
export function gatewayMain(argv: string[]): Promise<number> {
  return run(argv, 'gateway');
}

/** `tcpdaemon worker ...` (NATS workers). */
export function workerMain(argv: string[]): Promise<number> {
  return run(argv, 'worker');
}

async function run(argv: string[], role: 'gateway' | 'worker'): Promise<number> {
  const inbox = new SignalInbox();
  let params: GatewayParams;
  try {
    const parsed = parseGatewayArgs(argv);
    if (parsed === 'help') {
      process.stdout.write(`${GATEWAY_USAGE}\n`);
      return 0;
    }
    validateGatewayParams(parsed, role);
    params = parsed;
  } catch (err) {
    if (!(err instanceof ParamError)) throw err;
    process.stderr.write(`tcpdaemon ${role}: ${err.message}\n\n${GATEWAY_USAGE}\n`);
    return 1;
  }
  const { startGateway, startWorkers } = await import('./daemon.js');
  let exitCode: (code: number) => void = () => undefined;
  const exited = new Promise<number>((r) => {
    exitCode = r;
  });
  try {
    const handle = await (role === 'gateway' ? startGateway : startWorkers)(params, {
      signals: inbox,
      exit: exitCode,
    });
    keepServingOnUncaught(handle.logger);
  } catch (err) {
    const known = err instanceof ParamError || err instanceof HandlerLoadError || err instanceof ListenError;
    process.stderr.write(
      `tcpdaemon ${role}: ${known ? (err as Error).message : `start-up failed: ${(err as Error).stack ?? String(err)}`}\n`,
    );
    return 1;
  }
  return exited;
}
