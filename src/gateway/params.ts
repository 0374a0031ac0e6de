// The gateway's parameter schema (`tcpdaemon gateway` and `tcpdaemon worker`): one typed object,
// validated here with one message per mistake naming the flag. The CLI only turns argv into it.
import { type ListenAddress, parseListenAddress } from '../listen-address.js';
import { LOG_LEVELS, type LogLevel } from '../logger.js';
import { CODEC_NAMES, createCodec, DEFAULT_MAX_BODY } from '../message/codecs/index.js';
import { ParamError } from '../params.js';

export type QueueSpec = { kind: 'ipc' } | { kind: 'nats'; servers: string[]; prefix: string };

export interface GatewayParams {
  /** `-l`: where clients connect (gateway command only). */
  listen?: string;
  /** `-s`: the business module (ipc gateway, worker command). */
  business?: string;
  /** `--workers`: business worker processes. Default 1. */
  workers?: number;
  /** `-c`: gateway processes holding client connections. Default 1. */
  gateways?: number;
  /** `--codec`: client framing (lars, seq, tdhb:W, u32be, line). Default seq. */
  codec?: string;
  /** `--max-body`: bytes. Default 65527. */
  maxBody?: number;
  /** `--queue`: ipc (default) or nats://HOST:PORT[,nats://...]. */
  queue?: string;
  /** `--queue-prefix`: NATS subject prefix, to run several deployments on one NATS. Default tcpdaemon. */
  queuePrefix?: string;
  /** `--request-timeout`: seconds (fractions allowed) until the client gets a timeout error. Default 10. */
  requestTimeout?: number;
  /** `--retry-on-crash`: a request lost with a crashed worker is sent to another worker once. */
  retryOnCrash?: boolean;
  /** `--worker-concurrency`: requests outstanding at one worker. Default 64. */
  workerConcurrency?: number;
  /** `--max-waiting`: requests waiting for a worker with room, per gateway process. Default 10000. */
  maxWaiting?: number;
  /** `--max-connections`: client connections in all; 0 = no limit. */
  maxConnections?: number;
  /** `--max-conns-per-ip`: client connections from one address; 0 = no limit. */
  maxConnsPerIp?: number;
  /** `--max-inflight-per-conn`: requests in flight on one connection; at it, reading that connection pauses. Default 64. */
  maxInflightPerConn?: number;
  /** `--refuse-over-inflight`: refuse the request past the in-flight bound with an error reply instead (seq codec only). */
  refuseOverInflight?: boolean;
  /** `--max-session-bytes`: answers waiting for their turn and frames read past the in-flight bound, per session, bytes with bookkeeping. Default 8 MiB. */
  maxSessionBytes?: number;
  /** `--store-max`: stored messages per offline name. Default 100. */
  storeMax?: number;
  /** `--store-ttl`: seconds a stored message is kept. Default 300. */
  storeTtl?: number;
  /** `--store-bytes`: bytes stored in all, each message with its name and bookkeeping (ipc store). Default 64 MiB. */
  storeBytes?: number;
  /** `--store-names`: distinct offline names with stored messages (ipc store). Default 10000. */
  storeNames?: number;
  /** `--timeout`: idle timeout of a client connection, seconds; 0 = none. */
  timeout?: number;
  /** `--shutdown-timeout`: seconds in-flight requests get on stop. Default 10. */
  shutdownTimeout?: number;
  logfile?: string;
  loglevel?: LogLevel;
  pidFile?: string;
}

export interface ResolvedGatewayParams {
  listen: string;
  listenAddress: ListenAddress | undefined;
  business: string | undefined;
  workers: number;
  gateways: number;
  codec: string;
  maxBody: number;
  queue: QueueSpec;
  requestTimeoutMs: number;
  retryOnCrash: boolean;
  workerConcurrency: number;
  maxWaiting: number;
  maxConnections: number;
  maxConnsPerIp: number;
  maxInflightPerConn: number;
  refuseOverInflight: boolean;
  maxSessionBytes: number;
  storeMax: number;
  storeTtlMs: number;
  storeBytes: number;
  storeNames: number;
  timeout: number;
  shutdownTimeout: number;
  logfile: string | undefined;
  loglevel: LogLevel;
  pidFile: string | undefined;
}

function fail(flag: string, what: string, value: unknown): never {
  throw new ParamError(
    `${flag} ${what}, got ${typeof value === 'string' ? `'${value}'` : JSON.stringify(value)}`,
  );
}

function num(flag: string, value: unknown, min: number, max: number, integer = true): number | undefined {
  if (value === undefined) return undefined;
  const n = typeof value === 'string' && value.trim() !== '' ? Number(value) : value;
  if (
    typeof n !== 'number' ||
    !Number.isFinite(n) ||
    (integer && !Number.isInteger(n)) ||
    n < min ||
    n > max
  ) {
    fail(flag, `must be ${integer ? 'a whole number' : 'a number'} from ${min} to ${max}`, value);
  }
  return n;
}

function str(flag: string, value: unknown): string | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== 'string' || value === '') fail(flag, 'must be a non-empty string', value);
  return value;
}

/** `ipc` or `nats://host:port` (comma-separated for a cluster). */
export function parseQueue(value: string, prefix: string): QueueSpec {
  if (value === 'ipc') return { kind: 'ipc' };
  const servers = value.split(',').map((s) => s.trim());
  for (const s of servers) {
    let url: URL;
    try {
      url = new URL(s);
    } catch {
      fail('--queue', 'must be ipc or nats://HOST:PORT', value);
    }
    if (url.protocol !== 'nats:' || url.hostname === '' || url.pathname.replace('/', '') !== '') {
      fail('--queue', 'must be ipc or nats://HOST:PORT', value);
    }
  }
  if (!/^[A-Za-z0-9_-]{1,32}$/.test(prefix))
    fail('--queue-prefix', 'must be 1-32 letters, digits, _ or -', prefix);
  return { kind: 'nats', servers, prefix };
}

const KEYS = new Set<string>([
  'listen',
  'business',
  'workers',
  'gateways',
  'codec',
  'maxBody',
  'queue',
  'queuePrefix',
  'requestTimeout',
  'retryOnCrash',
  'workerConcurrency',
  'maxWaiting',
  'maxConnections',
  'maxConnsPerIp',
  'maxInflightPerConn',
  'refuseOverInflight',
  'maxSessionBytes',
  'storeMax',
  'storeTtl',
  'storeBytes',
  'storeNames',
  'timeout',
  'shutdownTimeout',
  'logfile',
  'loglevel',
  'pidFile',
]);

/**
 * Validates `tcpdaemon gateway` (role 'gateway') or `tcpdaemon worker` (role 'worker') parameters;
 * throws ParamError with a one-line reason.
 */
export function validateGatewayParams(
  input: GatewayParams,
  role: 'gateway' | 'worker',
): ResolvedGatewayParams {
  for (const key of Object.keys(input))
    if (!KEYS.has(key)) throw new ParamError(`unknown parameter '${key}'`);
  const queue = parseQueue(
    str('--queue', input.queue) ?? 'ipc',
    str('--queue-prefix', input.queuePrefix) ?? 'tcpdaemon',
  );
  const listen = str('-l', input.listen);
  const business = str('-s', input.business);
  let listenAddress: ListenAddress | undefined;
  if (role === 'gateway') {
    if (listen === undefined) throw new ParamError('-l ADDRESS is required');
    try {
      listenAddress = parseListenAddress(listen);
    } catch (err) {
      throw new ParamError(`-l ${(err as Error).message}`);
    }
    if (queue.kind === 'ipc' && business === undefined)
      throw new ParamError('-s BUSINESS_MODULE is required');
    if (queue.kind === 'nats' && (business !== undefined || input.workers !== undefined)) {
      throw new ParamError(
        'with --queue nats://..., workers run as a separate command: tcpdaemon worker -s MODULE --queue nats://...',
      );
    }
  } else {
    if (queue.kind !== 'nats') throw new ParamError('tcpdaemon worker needs --queue nats://HOST:PORT');
    if (business === undefined) throw new ParamError('-s BUSINESS_MODULE is required');
    if (listen !== undefined) throw new ParamError('tcpdaemon worker takes no -l: workers only talk to NATS');
  }
  const codec = str('--codec', input.codec) ?? 'seq';
  const maxBody = num('--max-body', input.maxBody, 0, 64 * 1024 * 1024) ?? DEFAULT_MAX_BODY;
  try {
    createCodec(codec, { maxBody });
  } catch (err) {
    throw new ParamError(`--codec: ${(err as Error).message} (known: ${CODEC_NAMES.join(', ')})`);
  }
  const loglevel = str('--loglevel', input.loglevel)?.toLowerCase();
  if (loglevel !== undefined && !(LOG_LEVELS as readonly string[]).includes(loglevel)) {
    fail('--loglevel', `must be one of ${LOG_LEVELS.join(', ')}`, input.loglevel);
  }
  if (input.retryOnCrash !== undefined && typeof input.retryOnCrash !== 'boolean') {
    fail('--retry-on-crash', 'must be true or false', input.retryOnCrash);
  }
  if (input.refuseOverInflight !== undefined && typeof input.refuseOverInflight !== 'boolean') {
    fail('--refuse-over-inflight', 'must be true or false', input.refuseOverInflight);
  }
  if (input.refuseOverInflight && !createCodec(codec, { maxBody }).hasSeq) {
    throw new ParamError(
      `--refuse-over-inflight needs --codec seq (the only codec with error replies), got --codec ${codec}`,
    );
  }
  return {
    listen: listen ?? '',
    listenAddress,
    business,
    workers: num('--workers', input.workers, 1, 1024) ?? 1,
    gateways: num('-c', input.gateways, 1, 64) ?? 1,
    codec,
    maxBody,
    queue,
    requestTimeoutMs: Math.round(
      (num('--request-timeout', input.requestTimeout, 0.001, 2147483, false) ?? 10) * 1000,
    ),
    retryOnCrash: input.retryOnCrash ?? false,
    workerConcurrency: num('--worker-concurrency', input.workerConcurrency, 1, 100_000) ?? 64,
    maxWaiting: num('--max-waiting', input.maxWaiting, 0, 10_000_000) ?? 10_000,
    maxConnections: num('--max-connections', input.maxConnections, 0, 10_000_000) ?? 0,
    maxConnsPerIp: num('--max-conns-per-ip', input.maxConnsPerIp, 0, 10_000_000) ?? 0,
    maxInflightPerConn: num('--max-inflight-per-conn', input.maxInflightPerConn, 1, 100_000) ?? 64,
    refuseOverInflight: input.refuseOverInflight ?? false,
    maxSessionBytes: num('--max-session-bytes', input.maxSessionBytes, 1024, 2 ** 40) ?? 8 * 1024 * 1024,
    storeMax: num('--store-max', input.storeMax, 0, 1_000_000) ?? 100,
    storeTtlMs: Math.round((num('--store-ttl', input.storeTtl, 0.001, 31_536_000, false) ?? 300) * 1000),
    storeBytes: num('--store-bytes', input.storeBytes, 0, 2 ** 40) ?? 64 * 1024 * 1024,
    storeNames: num('--store-names', input.storeNames, 0, 10_000_000) ?? 10_000,
    timeout: num('--timeout', input.timeout, 0, 2147483, false) ?? 0,
    shutdownTimeout: num('--shutdown-timeout', input.shutdownTimeout, 0, 3600, false) ?? 10,
    logfile: str('--logfile', input.logfile),
    loglevel: (loglevel as LogLevel | undefined) ?? 'info',
    pidFile: str('--pid-file', input.pidFile),
  };
}
