// Fields every command shares, declared once: same key, spelling, unit, help and wording in the
// daemon, the proxy and the gateway. A command lists the ones it takes (see SHARED_FIELDS).

import { ParamError } from '../errors.js';
import { parseListenAddress } from '../listen-address.js';
import { LOG_FORMATS, type LogFormat } from '../log-format.js';
import { LOG_LEVELS, type LogLevel } from '../logger.js';
import { type Field, where } from './fields.js';
import { boolean, choice, decimal, integer, list, seconds, stringMap, text } from './values.js';

export const LISTEN: Field<string> = {
  key: 'listen',
  flags: ['-l', '--listen'],
  arg: 'ADDRESS',
  help: 'ip:port, 0:port (all IPv4), [ipv6]:port, a unix socket path (a stale socket file is replaced; any other file there stops the start, untouched), or systemd / systemd:NAME (the socket, or the one named NAME, passed by socket activation; an address systemd passed a socket for takes that socket too)',
  parse: text,
};

export const WORKERS: Field<number> = {
  key: 'workers',
  flags: ['-c'],
  arg: 'N',
  help: 'processes (or TLF threads) that hold client connections',
  shownDefault: '1',
  parse: integer({ min: 1, max: 1024 }),
};

export const LOGFILE: Field<string> = {
  key: 'logfile',
  flags: ['--logfile'],
  arg: 'PATH',
  help: 'log lines go here instead of stdout (SIGUSR1 reopens it)',
  parse: text,
  path: true,
};

export const LOGLEVEL: Field<LogLevel> = {
  key: 'loglevel',
  live: true,
  flags: ['--loglevel'],
  arg: 'LEVEL',
  help: `${LOG_LEVELS.join(', ')} (also --loglevel-LEVEL)`,
  shownDefault: 'info',
  parse: choice(LOG_LEVELS, (v) => v.toLowerCase()),
  valueSwitches: Object.fromEntries(LOG_LEVELS.map((l) => [`--loglevel-${l}`, l])),
};

export const LOG_FORMAT: Field<LogFormat> = {
  key: 'logFormat',
  flags: ['--log-format'],
  arg: 'FORMAT',
  help: 'json: one JSON line per record (pino); pretty: one readable line per record, for development (every process of the command)',
  shownDefault: 'json',
  parse: choice(LOG_FORMATS, (v) => v.toLowerCase()),
};

export const PID_FILE: Field<string> = {
  key: 'pidFile',
  flags: ['--pid-file'],
  arg: 'PATH',
  help: "write the daemon's pid here (exclusively: a live pid in it stops the start, a stale one is replaced); removed at exit while it holds our pid",
  parse: text,
  path: true,
};

export const STATUS_SOCKET: Field<string> = {
  key: 'statusSocket',
  flags: ['--status-socket'],
  arg: 'PATH',
  help: 'answer `tcpdaemon status PATH` on this unix socket (mode 0600)',
  parse: text,
  path: true,
};

export const METRICS_ADDRESS: Field<string> = {
  key: 'metrics',
  flags: ['--metrics'],
  arg: 'ADDRESS',
  help: 'serve /metrics (Prometheus), /healthz and /readyz over HTTP on ip:port (e.g. 127.0.0.1:9100)',
  parse: (value, where) => {
    const addr = text(value, where);
    let parsed: ReturnType<typeof parseListenAddress>;
    try {
      parsed = parseListenAddress(addr);
    } catch (err) {
      throw new ParamError(`${where} ${(err as Error).message}`);
    }
    if (parsed.kind !== 'tcp')
      throw new ParamError(`${where} must be ip:port (HTTP over TCP), got '${addr}'`);
    return addr;
  },
};

export const DRAIN_DELAY: Field<number> = {
  key: 'drainDelay',
  flags: ['--drain-delay'],
  arg: 'SECONDS',
  help: 'on SIGTERM/SIGINT, /readyz fails at once but connections are still accepted this long before the drain (part of --shutdown-timeout)',
  shownDefault: '0',
  parse: seconds({ min: 0, max: 86400 }),
};

export const DAEMON_LEVEL: Field<boolean> = {
  key: 'daemonLevel',
  flags: ['--daemon-level'],
  help: 'detach from the terminal (needs --logfile)',
  parse: boolean,
};

export const WORK_PATH: Field<string> = {
  key: 'workPath',
  flags: ['--work-path'],
  arg: 'DIR',
  help: 'change to DIR after paths on the command line are resolved',
  parse: text,
  path: true,
};

export const SHUTDOWN_TIMEOUT: Field<number> = {
  key: 'shutdownTimeout',
  live: true,
  flags: ['--shutdown-timeout'],
  arg: 'SECONDS',
  help: 'on SIGTERM/SIGINT, seconds open connections (and requests) get to finish',
  shownDefault: '10',
  parse: seconds({ min: 0, max: 86400 }),
};

export const MAX_CONNECTIONS: Field<number> = {
  key: 'maxConnections',
  live: true,
  flags: ['--max-connections'],
  arg: 'N',
  help: 'client connections above N are closed at once, counted in the log (0 = no limit)',
  parse: integer({ min: 0, max: 10_000_000 }),
};

// Per client address (the TCP peer at accept time; src/address-limits.ts): off by default.
export const MAX_CONNS_PER_IP: Field<number> = {
  key: 'maxConnsPerIp',
  flags: ['--max-conns-per-ip'],
  arg: 'N',
  help: 'open client connections from one address, across all workers (IPv4-mapped IPv6 counts as IPv4); more are closed at once, logged per address (0 = no limit)',
  parse: integer({ min: 0, max: 10_000_000 }),
};

export const MAX_CONN_RATE_PER_IP: Field<number> = {
  key: 'maxConnRatePerIp',
  flags: ['--max-conn-rate-per-ip'],
  arg: 'N',
  help: 'new connections per second from one address, up to N at once (a bucket of one second); more are closed at once, logged per address (0 = no limit)',
  parse: decimal({ min: 0, max: 1_000_000 }),
};

/** A unix socket's peers have no address to count: a per-address limit there is a mistake. */
export function refuseAddressLimitsOnUnix(p: { maxConnsPerIp: number; maxConnRatePerIp: number }): void {
  const field =
    p.maxConnsPerIp > 0 ? MAX_CONNS_PER_IP : p.maxConnRatePerIp > 0 ? MAX_CONN_RATE_PER_IP : undefined;
  if (field)
    throw new ParamError(
      `${where(field)} needs a TCP listen address: peers of a unix socket have no address`,
    );
}

export const TIMEOUT: Field<number> = {
  key: 'timeout',
  live: true,
  flags: ['--timeout'],
  arg: 'SECONDS',
  help: 'idle timeout per client connection, either direction restarts it (0 = none)',
  parse: seconds({ min: 0, max: 2147483 }),
};

export const PARAMS: Field<Readonly<Record<string, string>>> = {
  key: 'params',
  live: true,
  flags: ['--param'],
  arg: 'KEY=VALUE',
  help: 'handed to the handler as env.params',
  repeat: true,
  parse: stringMap,
  fromArgv: (items) => {
    const out: Record<string, string> = {};
    for (const item of items) {
      const eq = item.indexOf('=');
      if (eq <= 0) throw new ParamError(`--param expects KEY=VALUE, got '${item}'`);
      out[item.slice(0, eq)] = item.slice(eq + 1);
    }
    return out;
  },
};

export const HANG_TIMEOUT: Field<number> = {
  key: 'hangTimeout',
  live: true,
  flags: ['--hang-timeout'],
  arg: 'SECONDS',
  help: 'replace a worker whose event loop is blocked longer than this (0 = never)',
  parse: seconds({ min: 0, max: 86400 }),
};

export const MAX_MEMORY: Field<number> = {
  key: 'maxMemory',
  live: true,
  flags: ['--max-memory'],
  arg: 'MB',
  help: 'recycle a worker whose resident memory exceeds MB (0 = never)',
  parse: decimal({ min: 0, max: 1048576 }),
};

export const RESTART_DELAY: Field<number> = {
  key: 'restartDelay',
  live: true,
  flags: ['--restart-delay'],
  arg: 'SECONDS',
  help: 'first restart delay of a crashed worker, doubling per crash in a row',
  shownDefault: '0.1',
  parse: seconds({ min: 0, max: 3600 }),
};

export const RESTART_DELAY_MAX: Field<number> = {
  key: 'restartDelayMax',
  live: true,
  flags: ['--restart-delay-max'],
  arg: 'SECONDS',
  help: 'cap of the restart delay',
  shownDefault: '10',
  parse: seconds({ min: 0, max: 3600 }),
};

/** The shared fields of the process itself (handler params, logs, files), last in every help. */
export const PROCESS_FIELDS: readonly Field[] = [
  PARAMS,
  LOGFILE,
  LOGLEVEL,
  LOG_FORMAT,
  WORK_PATH,
  DAEMON_LEVEL,
  PID_FILE,
  STATUS_SOCKET,
  METRICS_ADDRESS,
];

// TLS on the listening side (src/tls/settings.ts turns these into one TlsSettings).
export const TLS_CERT: Field<string[]> = {
  key: 'tlsCert',
  flags: ['--tls-cert'],
  arg: 'FILE|DIR',
  help: 'serve TLS with this PEM certificate (chain after it); repeat for SNI, paired with --tls-key in order; a DIR holds NAME.crt + NAME.key pairs',
  repeat: true,
  path: true,
  parse: list(text),
};

export const TLS_KEY: Field<string[]> = {
  key: 'tlsKey',
  flags: ['--tls-key'],
  arg: 'FILE',
  help: 'the PEM private key of the --tls-cert given at the same position',
  repeat: true,
  path: true,
  parse: list(text),
};

export const TLS_CA: Field<string> = {
  key: 'tlsCa',
  flags: ['--tls-ca'],
  arg: 'FILE',
  help: 'PEM CA certificates that client certificates must chain to (with --tls-client-auth)',
  path: true,
  parse: text,
};

export const TLS_CLIENT_AUTH: Field<'request' | 'require'> = {
  key: 'tlsClientAuth',
  flags: ['--tls-client-auth'],
  arg: 'MODE',
  help: 'request: ask for a client certificate (env.tls.authorized says if it verified); require: refuse clients without a valid one',
  parse: choice(['request', 'require'] as const),
};

export const TLS_ALPN: Field<string[]> = {
  key: 'tlsAlpn',
  flags: ['--tls-alpn'],
  arg: 'PROTO,...',
  help: 'ALPN protocols offered, in order of preference (a client offering none of them is refused)',
  parse: (value, where) => {
    const items = typeof value === 'string' ? value.split(',').map((s) => s.trim()) : value;
    return list(text)(items, where);
  },
};

export const TLS_HANDSHAKE_TIMEOUT: Field<number> = {
  key: 'tlsHandshakeTimeout',
  flags: ['--tls-handshake-timeout'],
  arg: 'SECONDS',
  help: 'a TLS handshake not done within this closes the connection',
  shownDefault: '10',
  parse: seconds({ min: 0.001, max: 3600 }),
};

export const TLS_FIELDS: readonly Field[] = [
  TLS_CERT,
  TLS_KEY,
  TLS_CA,
  TLS_CLIENT_AUTH,
  TLS_ALPN,
  TLS_HANDSHAKE_TIMEOUT,
];

// Registration in the route table (src/fleet/settings.ts turns these into one AnnounceSettings).
export const ANNOUNCE_FIELDS: readonly Field[] = [
  {
    key: 'announce',
    flags: ['--announce'],
    arg: 'SERVICE',
    help: 'publish this listener under SERVICE in the route table on --discovery (refreshed; removed on stop, before draining)',
    parse: text,
  },
  {
    key: 'discovery',
    flags: ['--discovery'],
    arg: 'nats://H:P[,...]',
    help: 'the NATS servers (JetStream on) that hold the route table',
    parse: (value, where) => {
      const items = typeof value === 'string' ? value.split(',').map((s) => s.trim()) : value;
      return list(text)(items, where);
    },
  },
  {
    key: 'advertise',
    flags: ['--advertise'],
    arg: 'HOST:PORT',
    help: 'the address published by --announce; default the listening one (needed when listening on 0.0.0.0 or a unix socket)',
    parse: text,
  },
  {
    key: 'announceWeight',
    flags: ['--announce-weight'],
    arg: 'N',
    help: "this listener's share of new connections, relative to the service's other entries",
    shownDefault: '1',
    parse: integer({ min: 1, max: 1000 }),
  },
  {
    key: 'announceVersion',
    flags: ['--announce-version'],
    arg: 'TEXT',
    help: 'a version string published with the entry',
    parse: text,
  },
  {
    key: 'announceTtl',
    flags: ['--announce-ttl'],
    arg: 'SECONDS',
    help: "a killed process's entry is gone within this (refreshed every third of it)",
    shownDefault: '10',
    parse: seconds({ min: 1, max: 3600 }),
  },
];

/** What every command declares, in help order. */
export const SHARED_FIELDS: readonly Field[] = [
  LISTEN,
  WORKERS,
  TIMEOUT,
  MAX_CONNECTIONS,
  MAX_CONNS_PER_IP,
  MAX_CONN_RATE_PER_IP,
  SHUTDOWN_TIMEOUT,
  DRAIN_DELAY,
  HANG_TIMEOUT,
  MAX_MEMORY,
  RESTART_DELAY,
  RESTART_DELAY_MAX,
  ...PROCESS_FIELDS,
  ...TLS_FIELDS,
  ...ANNOUNCE_FIELDS,
];

/** A field with other help or default for one command (same key, spelling and parser). */
export function withHelp<T>(field: Field<T>, help: string, shownDefault = field.shownDefault): Field<T> {
  return { ...field, help, shownDefault };
}
