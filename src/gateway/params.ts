// The gateway's parameters (`tcpdaemon gateway` and `tcpdaemon worker`): the library's typed object,
// the field declarations (shared ones from platform/shared-fields.ts) that drive the command line,
// --config and help, and the validation that fills in defaults.

import { ParamError } from '../errors.js';
import {
  type AnnounceParams,
  type AnnounceSettings,
  isWildcard,
  readAnnounceSettings,
} from '../fleet/settings.js';
import { type ListenAddress, parseListenAddress } from '../listen-address.js';
import type { LogFormat } from '../log-format.js';
import type { LogLevel } from '../logger.js';
import { CODEC_NAMES, createCodec, DEFAULT_MAX_BODY } from '../message/codecs/index.js';
import { type CommandSpec, type Field, readFields } from '../platform/fields.js';
import { refuseAddressLimitsOnUnix, SHARED_FIELDS, withHelp } from '../platform/shared-fields.js';
import { boolean, bytes, fail, integer, seconds, text } from '../platform/values.js';
import type { WorkerTls } from '../tls/daemon-tls.js';
import { readTlsSettings, type TlsParams, type TlsSettings } from '../tls/settings.js';

export type QueueSpec =
  | { kind: 'ipc' }
  | {
      kind: 'nats';
      servers: string[];
      prefix: string;
      /** --queue-tls-*: TLS to NATS (file paths, read by the NATS client); undefined = as the server's INFO asks. */
      tls?: { caFile?: string; certFile?: string; keyFile?: string };
    };

/** The client side's TLS and the route table take the daemon's fields (--tls-cert, --announce, ...). */
export interface GatewayParams extends TlsParams, AnnounceParams {
  /** `-l`: where clients connect (gateway command only). */
  listen?: string;
  /** `-s`: the business module (ipc gateway, worker command). */
  business?: string;
  /** `-c`: gateway processes holding client connections (gateway); worker processes (worker). Default 1. */
  workers?: number;
  /** `--business-workers`: business worker processes of an ipc gateway. Default 1. */
  businessWorkers?: number;
  /** `--codec`: client framing (lars, seq, tdhb:W, u32be, line). Default seq. */
  codec?: string;
  /** `--max-body`: bytes. Default 65527. */
  maxBody?: number;
  /** `--queue`: ipc (default) or nats://HOST:PORT[,nats://...]. */
  queue?: string;
  /** `--queue-prefix`: NATS subject prefix, to run several deployments on one NATS. Default tcpdaemon. */
  queuePrefix?: string;
  /** `--queue-tls-ca FILE`: TLS to NATS, verified against these PEM CAs. */
  queueTlsCa?: string;
  /** `--queue-tls-cert FILE`, `--queue-tls-key FILE`: our client certificate for NATS. */
  queueTlsCert?: string;
  queueTlsKey?: string;
  /** `--request-timeout`: seconds (fractions allowed) until the client gets a timeout error. Default 10. */
  requestTimeout?: number;
  /** `--retry-on-crash`: a request lost with a crashed worker is sent to another worker once. */
  retryOnCrash?: boolean;
  /** `--worker-concurrency`: handlers running at once in one worker (twice as many requests outstanding at it). Default 64. */
  workerConcurrency?: number;
  /** `--max-waiting-requests`: requests waiting for a worker with room, per gateway process. Default 10000. */
  maxWaitingRequests?: number;
  /** `--max-connections`: client connections in all; 0 = no limit. */
  maxConnections?: number;
  /** `--max-conns-per-ip`: client connections from one address; 0 = no limit. */
  maxConnsPerIp?: number;
  /** `--max-conn-rate-per-ip`: new client connections per second from one address (up to that many at once); 0 = no limit. */
  maxConnRatePerIp?: number;
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
  /** Supervision of gateway and business worker processes, as the daemon's. */
  hangTimeout?: number;
  maxMemory?: number;
  restartDelay?: number;
  restartDelayMax?: number;
  /** `--param k=v`: handed to the business handler as `ctx.params`. */
  params?: Record<string, string>;
  logfile?: string;
  loglevel?: LogLevel;
  /** `--log-format`: json (default) or pretty, in every process of the gateway. */
  logFormat?: LogFormat;
  workPath?: string;
  daemonLevel?: boolean;
  pidFile?: string;
  statusSocket?: string;
  /** `--metrics`: ip:port of the HTTP listener serving /metrics, /healthz and /readyz. */
  metrics?: string;
  /** `--drain-delay`: seconds of still accepting, with /readyz failing, between SIGTERM and the drain. */
  drainDelay?: number;
}

export interface ResolvedGatewayParams {
  listen: string;
  listenAddress: ListenAddress | undefined;
  business: string | undefined;
  /** Business worker processes (ipc gateway; the worker command's -c). */
  businessWorkers: number;
  /** Gateway processes holding client connections. */
  gateways: number;
  codec: string;
  maxBody: number;
  queue: QueueSpec;
  requestTimeoutMs: number;
  retryOnCrash: boolean;
  workerConcurrency: number;
  maxWaitingRequests: number;
  maxConnections: number;
  maxConnsPerIp: number;
  maxConnRatePerIp: number;
  maxInflightPerConn: number;
  refuseOverInflight: boolean;
  maxSessionBytes: number;
  storeMax: number;
  storeTtlMs: number;
  storeBytes: number;
  storeNames: number;
  timeout: number;
  shutdownTimeout: number;
  hangTimeout: number;
  maxMemory: number;
  restartDelay: number;
  restartDelayMax: number;
  params: Readonly<Record<string, string>>;
  logfile: string | undefined;
  loglevel: LogLevel;
  logFormat: LogFormat;
  workPath: string | undefined;
  pidFile: string | undefined;
  statusSocket: string | undefined;
  /** --metrics, as given (ip:port); undefined = no operations listener. */
  metrics: string | undefined;
  drainDelay: number;
  /** --tls-cert and the other TLS fields: gateway processes terminate TLS; undefined = plain TCP. */
  tls: TlsSettings | undefined;
  /** --announce and the other route-table fields (gateway only); undefined = not announced. */
  announce: AnnounceSettings | undefined;
  /** Set by the gateway daemon for its gateway processes: where the checked certificates are. */
  tlsWorker?: WorkerTls;
}

const count = (max: number, min = 0) => integer({ min, max });

const GATEWAY_OWN: readonly Field[] = [
  {
    key: 'business',
    flags: ['-s', '--business'],
    arg: 'BUSINESS',
    help: 'business module: export default async function (msg, ctx) { ... }',
    parse: text,
    path: true,
  },
  {
    key: 'businessWorkers',
    flags: ['--business-workers'],
    arg: 'N',
    help: 'business worker processes of an ipc gateway',
    shownDefault: '1',
    parse: count(1024, 1),
  },
  {
    key: 'codec',
    flags: ['--codec'],
    arg: 'NAME',
    help: `client framing: ${CODEC_NAMES.join(', ')}`,
    shownDefault: 'seq',
    parse: text,
  },
  {
    key: 'maxBody',
    flags: ['--max-body'],
    arg: 'BYTES',
    help: 'largest message body',
    shownDefault: String(DEFAULT_MAX_BODY),
    parse: bytes({ min: 0, max: 64 * 1024 * 1024 }),
  },
  {
    key: 'queue',
    flags: ['--queue'],
    arg: 'ipc|nats://H:P',
    help: 'ipc: embedded, no server; nats: gateways and workers meet in NATS',
    shownDefault: 'ipc',
    parse: text,
  },
  {
    key: 'queuePrefix',
    flags: ['--queue-prefix'],
    arg: 'NAME',
    help: 'NATS subject prefix',
    shownDefault: 'tcpdaemon',
    parse: text,
  },
  {
    key: 'queueTlsCa',
    flags: ['--queue-tls-ca'],
    arg: 'FILE',
    help: "TLS to NATS: PEM CAs the server's certificate must chain to",
    path: true,
    parse: text,
  },
  {
    key: 'queueTlsCert',
    flags: ['--queue-tls-cert'],
    arg: 'FILE',
    help: 'TLS to NATS: our PEM client certificate (with --queue-tls-key)',
    path: true,
    parse: text,
  },
  {
    key: 'queueTlsKey',
    flags: ['--queue-tls-key'],
    arg: 'FILE',
    help: 'TLS to NATS: the PEM key of --queue-tls-cert',
    path: true,
    parse: text,
  },
  {
    key: 'requestTimeout',
    flags: ['--request-timeout'],
    arg: 'SECONDS',
    help: 'until a client gets a timeout error',
    shownDefault: '10',
    parse: seconds({ min: 0.001, max: 2147483 }),
  },
  {
    key: 'retryOnCrash',
    flags: ['--retry-on-crash'],
    help: 'resend a request lost with a crashed worker once (idempotent handlers)',
    parse: boolean,
  },
  {
    key: 'workerConcurrency',
    flags: ['--worker-concurrency'],
    arg: 'N',
    help: 'handlers running at once in one worker; the gateway keeps twice as many outstanding at it',
    shownDefault: '64',
    parse: count(100_000, 1),
  },
  {
    key: 'maxWaitingRequests',
    live: true,
    flags: ['--max-waiting-requests'],
    arg: 'N',
    help: 'requests waiting for a worker with room, per gateway process',
    shownDefault: '10000',
    parse: count(10_000_000),
  },
  {
    key: 'maxInflightPerConn',
    flags: ['--max-inflight-per-conn'],
    arg: 'N',
    help: 'requests in flight on one connection; at it, that connection is not read until an answer goes out',
    shownDefault: '64',
    parse: count(100_000, 1),
  },
  {
    key: 'refuseOverInflight',
    flags: ['--refuse-over-inflight'],
    help: 'seq codec: refuse the request past that bound with an error reply instead',
    parse: boolean,
  },
  {
    key: 'maxSessionBytes',
    live: true,
    flags: ['--max-session-bytes'],
    arg: 'BYTES',
    help: 'answers waiting for their turn and frames read past the in-flight bound, per connection; past it the connection is closed',
    shownDefault: '8 MiB',
    parse: bytes({ min: 1024, max: 2 ** 40 }),
  },
  {
    key: 'storeMax',
    live: true,
    flags: ['--store-max'],
    arg: 'N',
    help: 'messages kept for an offline name',
    shownDefault: '100',
    parse: count(1_000_000),
  },
  {
    key: 'storeTtl',
    live: true,
    flags: ['--store-ttl'],
    arg: 'SECONDS',
    help: 'a kept message lives this long',
    shownDefault: '300',
    parse: seconds({ min: 0.001, max: 31_536_000 }),
  },
  {
    key: 'storeBytes',
    live: true,
    flags: ['--store-bytes'],
    arg: 'BYTES',
    help: 'bytes kept in all, each message with its name and bookkeeping (ipc store)',
    shownDefault: '64 MiB',
    parse: bytes({ min: 0, max: 2 ** 40 }),
  },
  {
    key: 'storeNames',
    live: true,
    flags: ['--store-names'],
    arg: 'N',
    help: 'offline names with kept messages (ipc store)',
    shownDefault: '10000',
    parse: count(10_000_000),
  },
];

export const GATEWAY_FIELDS: readonly Field[] = [
  ...SHARED_FIELDS.map((f) => {
    if (f.key === 'workers')
      return withHelp(f, 'gateway processes holding the client connections (worker: worker processes)');
    if (f.key === 'params') return withHelp(f, 'handed to the business handler as ctx.params');
    if (f.key === 'shutdownTimeout')
      return withHelp(f, 'on SIGTERM/SIGINT, seconds in-flight requests get to finish');
    return f;
  }),
  ...GATEWAY_OWN,
];

const GATEWAY_REFUSED = {
  '--workers': 'is now --business-workers N (business worker processes; -c N is gateway processes)',
  '--max-waiting': 'is now --max-waiting-requests N (requests waiting for a worker, per gateway process)',
};

const SIGNALS_NOTE =
  'signals: SIGTERM/SIGINT stop gracefully, SIGHUP reloads the workers one by one (and re-reads --config: the live values apply), SIGUSR1 reopens logs';

export const GATEWAY_COMMAND: CommandSpec = {
  name: 'tcpdaemon gateway',
  synopsis: [
    'tcpdaemon gateway -l ADDRESS -s BUSINESS [--business-workers N] [-c G] [options]',
    'tcpdaemon gateway -l ADDRESS --queue nats://HOST:PORT [-c G] [options]',
  ],
  fields: GATEWAY_FIELDS,
  refused: GATEWAY_REFUSED,
  footer: SIGNALS_NOTE,
};

export const WORKER_COMMAND: CommandSpec = {
  name: 'tcpdaemon worker',
  synopsis: ['tcpdaemon worker -s BUSINESS --queue nats://HOST:PORT [-c N] [options]'],
  fields: GATEWAY_FIELDS,
  refused: { ...GATEWAY_REFUSED, '--workers': 'is now -c N (worker processes)' },
  footer: SIGNALS_NOTE,
};

/** `ipc` or `nats://host:port` (comma-separated for a cluster). */
export function parseQueue(value: string, prefix: string): QueueSpec {
  if (value === 'ipc') return { kind: 'ipc' };
  const servers = value.split(',').map((s) => s.trim());
  for (const s of servers) {
    let url: URL;
    try {
      url = new URL(s);
    } catch {
      fail('queue (--queue)', 'must be ipc or nats://HOST:PORT', value);
    }
    if (url.protocol !== 'nats:' || url.hostname === '' || url.pathname.replace('/', '') !== '') {
      fail('queue (--queue)', 'must be ipc or nats://HOST:PORT', value);
    }
  }
  if (!/^[A-Za-z0-9_-]{1,32}$/.test(prefix))
    fail('queuePrefix (--queue-prefix)', 'must be 1-32 letters, digits, _ or -', prefix);
  return { kind: 'nats', servers, prefix };
}

/**
 * Validates `tcpdaemon gateway` (role 'gateway') or `tcpdaemon worker` (role 'worker') parameters;
 * throws ParamError with a one-line reason.
 */
export function validateGatewayParams(
  input: GatewayParams,
  role: 'gateway' | 'worker',
): ResolvedGatewayParams {
  const read = readFields(GATEWAY_FIELDS, input, role);
  const get = <K extends keyof GatewayParams>(key: K) => read[key] as GatewayParams[K];
  const queue = parseQueue(get('queue') ?? 'ipc', get('queuePrefix') ?? 'tcpdaemon');
  const queueTls = { caFile: get('queueTlsCa'), certFile: get('queueTlsCert'), keyFile: get('queueTlsKey') };
  if (Object.values(queueTls).some((v) => v !== undefined)) {
    if (queue.kind !== 'nats')
      throw new ParamError('queueTlsCa/Cert/Key (--queue-tls-*) need --queue nats://HOST:PORT');
    if ((queueTls.certFile === undefined) !== (queueTls.keyFile === undefined))
      throw new ParamError('queueTlsCert (--queue-tls-cert) and queueTlsKey (--queue-tls-key) go together');
    queue.tls = Object.fromEntries(Object.entries(queueTls).filter(([, v]) => v !== undefined));
  }
  const listen = get('listen');
  const business = get('business');
  let listenAddress: ListenAddress | undefined;
  if (role === 'gateway') {
    if (listen === undefined) throw new ParamError('listen (-l) is required');
    try {
      listenAddress = parseListenAddress(listen);
    } catch (err) {
      throw new ParamError(`listen (-l) ${(err as Error).message}`);
    }
    if (queue.kind === 'ipc' && business === undefined) throw new ParamError('business (-s) is required');
    if (queue.kind === 'nats' && (business !== undefined || input.businessWorkers !== undefined)) {
      throw new ParamError(
        'with --queue nats://..., workers run as a separate command: tcpdaemon worker -s MODULE --queue nats://...',
      );
    }
  } else {
    if (queue.kind !== 'nats') throw new ParamError('tcpdaemon worker needs --queue nats://HOST:PORT');
    if (business === undefined) throw new ParamError('business (-s) is required');
    if (listen !== undefined) throw new ParamError('tcpdaemon worker takes no -l: workers only talk to NATS');
    if (input.businessWorkers !== undefined) {
      throw new ParamError(
        "tcpdaemon worker: -c N is its worker processes (--business-workers is the ipc gateway's)",
      );
    }
  }
  const perIp = { maxConnsPerIp: get('maxConnsPerIp') ?? 0, maxConnRatePerIp: get('maxConnRatePerIp') ?? 0 };
  if (role === 'worker' && (perIp.maxConnsPerIp > 0 || perIp.maxConnRatePerIp > 0))
    throw new ParamError(
      "tcpdaemon worker takes no --max-conns-per-ip or --max-conn-rate-per-ip: it accepts no connections (the limits are the gateway's)",
    );
  if (listenAddress?.kind === 'unix') refuseAddressLimitsOnUnix(perIp);
  const tls = readTlsSettings(read);
  if (role === 'worker' && tls !== undefined)
    throw new ParamError(
      "tcpdaemon worker takes no --tls-* flags: it listens nowhere (TLS is the gateway's)",
    );
  const announce = readAnnounceSettings(read);
  if (role === 'worker' && announce !== undefined)
    throw new ParamError(
      "tcpdaemon worker takes no --announce: it listens nowhere (announce the gateway's listener)",
    );
  if (announce && announce.advertise === undefined && listenAddress !== undefined) {
    if (listenAddress.kind === 'unix' || (listenAddress.kind === 'tcp' && isWildcard(listenAddress.host)))
      throw new ParamError(
        `announce (--announce) publishes the listening address, and ${listen} is not one clients can connect to: give --advertise HOST:PORT`,
      );
  }
  const codec = get('codec') ?? 'seq';
  const maxBody = get('maxBody') ?? DEFAULT_MAX_BODY;
  let hasSeq: boolean;
  try {
    hasSeq = createCodec(codec, { maxBody }).hasSeq;
  } catch (err) {
    throw new ParamError(`codec (--codec) ${(err as Error).message} (known: ${CODEC_NAMES.join(', ')})`);
  }
  const refuseOverInflight = get('refuseOverInflight') ?? false;
  if (refuseOverInflight && !hasSeq) {
    throw new ParamError(
      `--refuse-over-inflight needs --codec seq (the only codec with error replies), got --codec ${codec}`,
    );
  }
  const restartDelay = get('restartDelay') ?? 0.1;
  const restartDelayMax = get('restartDelayMax') ?? 10;
  if ((get('drainDelay') ?? 0) > (get('shutdownTimeout') ?? 10)) {
    throw new ParamError(
      `drainDelay (--drain-delay) must be <= shutdownTimeout (--shutdown-timeout, ${get('shutdownTimeout') ?? 10}): the delay is part of the stop, got ${get('drainDelay')}`,
    );
  }
  if (restartDelayMax < restartDelay) {
    fail(
      'restartDelayMax (--restart-delay-max)',
      `must be >= restartDelay (--restart-delay, ${restartDelay})`,
      restartDelayMax,
    );
  }
  const processes = get('workers') ?? 1;
  return {
    listen: listen ?? '',
    listenAddress,
    business,
    businessWorkers: role === 'worker' ? processes : (get('businessWorkers') ?? 1),
    gateways: role === 'gateway' ? processes : 0,
    codec,
    maxBody,
    queue,
    requestTimeoutMs: Math.round((get('requestTimeout') ?? 10) * 1000),
    retryOnCrash: get('retryOnCrash') ?? false,
    workerConcurrency: get('workerConcurrency') ?? 64,
    maxWaitingRequests: get('maxWaitingRequests') ?? 10_000,
    maxConnections: get('maxConnections') ?? 0,
    maxConnsPerIp: get('maxConnsPerIp') ?? 0,
    maxConnRatePerIp: get('maxConnRatePerIp') ?? 0,
    maxInflightPerConn: get('maxInflightPerConn') ?? 64,
    refuseOverInflight,
    maxSessionBytes: get('maxSessionBytes') ?? 8 * 1024 * 1024,
    storeMax: get('storeMax') ?? 100,
    storeTtlMs: Math.round((get('storeTtl') ?? 300) * 1000),
    storeBytes: get('storeBytes') ?? 64 * 1024 * 1024,
    storeNames: get('storeNames') ?? 10_000,
    timeout: get('timeout') ?? 0,
    shutdownTimeout: get('shutdownTimeout') ?? 10,
    hangTimeout: get('hangTimeout') ?? 0,
    maxMemory: get('maxMemory') ?? 0,
    restartDelay,
    restartDelayMax,
    params: get('params') ?? Object.freeze({}),
    logfile: get('logfile'),
    loglevel: get('loglevel') ?? 'info',
    logFormat: get('logFormat') ?? 'json',
    workPath: get('workPath'),
    pidFile: get('pidFile'),
    statusSocket: get('statusSocket'),
    metrics: get('metrics'),
    drainDelay: get('drainDelay') ?? 0,
    tls,
    announce,
  };
}
