// What `npm run bench` measures: the servers it can start and the scenarios it runs
// against them. A later comparison (IOMP -c 2 vs cluster, LF, IF, proxy vs HAProxy, ...)
// is one more SERVERS entry and one more SCENARIOS entry; the runner does not change.

import { hasReusePort } from '../src/node-features.js';
import { type CloseKind, type NativeProgram, nativeCommand } from './native.js';
import { SERVER_NODE, SERVER_NODE_VERSION, serverNodeCanTransferSockets } from './server-node.js';

export interface ServerSpec {
  /** What it is, for the report. */
  description: string;
  /**
   * argv, run from the repository root. The server listens on port 0 and prints a JSON
   * line with "msg":"listening" and "address":"HOST:PORT" on stdout.
   */
  command: string[];
  /** Cores the server can keep busy (its processes or threads); the load tool gets the rest. */
  cores: number;
  /** It keeps child processes (workers, spares) beside its main one while idle. */
  children?: boolean;
  /** A request and its whole reply, to check the server answers; default an echo of 'ping\n'. */
  probe?: { send: string; reply: string };
  /** Programs it runs besides node (Debian packages haproxy, redis-server). */
  needs?: string[];
  /** How it frames messages, as the load tool's --codec names it; default raw (byte echo). */
  codec?: 'raw' | 'lars';
  /** It runs with --reuse-port: only on a servers' node that has it (node-features.ts). */
  reusePort?: boolean;
  /** It moves accepted sockets to worker threads: only on a servers' node that can. */
  socketTransfer?: boolean;
  /** A C program of bench/native.ts, built before the server starts (`command` runs its binary). */
  native?: NativeProgram;
  /** It speaks TLS (any certificate: the load tool and the probe do not check it). */
  tls?: boolean;
}

const REDIS_PING = { send: 'PING\r\n', reply: '+PONG\r\n' };

const TSX = [SERVER_NODE, '--import', 'tsx'];

/** tcpdaemon LF -c 8 serving examples/echo.js. */
const LF_8 = ['bin/tcpdaemon', '-m', 'LF', '-c', '8', '-l', '127.0.0.1:0', '-s', 'examples/echo.js'];

export const SERVERS = {
  'C epoll echo': {
    description:
      'reference for the generator: a one-thread C epoll echo (bench/servers/epoll-echo.c), the cheapest server here',
    command: [nativeCommand('epoll-echo'), '127.0.0.1:0'],
    cores: 1,
    native: 'epoll-echo',
  },
  'tcpdaemon IOMP -c 1': {
    description: 'tcpdaemon, one event-loop process, examples/echo.ts',
    command: ['bin/tcpdaemon', '-m', 'IOMP', '-c', '1', '-l', '127.0.0.1:0', '-s', 'examples/echo.ts'],
    cores: 1,
  },
  'node net': {
    description: 'raw node:net echo (socket.pipe(socket)), one process',
    command: [...TSX, 'bench/servers/plain-echo.ts', '127.0.0.1:0'],
    cores: 1,
  },
  'node net (for await)': {
    description: 'raw node:net echo with the for-await loop of examples/echo.ts, one process',
    command: [...TSX, 'bench/servers/plain-echo.ts', '127.0.0.1:0', '--for-await'],
    cores: 1,
  },
  'node cluster 2': {
    description: 'node:cluster echo, 2 workers, round-robin',
    command: [...TSX, 'bench/servers/cluster-echo.ts', '127.0.0.1:0', '--workers', '2'],
    cores: 2,
    children: true,
  },
  'node cluster 2 shared': {
    description: 'node:cluster echo, 2 workers, SCHED_NONE (each accepts from the shared handle)',
    command: [...TSX, 'bench/servers/cluster-echo.ts', '127.0.0.1:0', '--workers', '2', '--shared'],
    cores: 2,
    children: true,
  },
  'node cluster 2 (for await)': {
    description: 'node:cluster echo, 2 workers, round-robin, the for-await loop of examples/echo.js',
    command: [...TSX, 'bench/servers/cluster-echo.ts', '127.0.0.1:0', '--workers', '2', '--for-await'],
    cores: 2,
    children: true,
  },
  'tcpdaemon IF -c 4': {
    description: 'tcpdaemon, a fresh process per connection, 4 warm spares, examples/echo.js',
    command: [
      'bin/tcpdaemon',
      '-m',
      'IF',
      '-c',
      '4',
      '--spares',
      '4',
      '-l',
      '127.0.0.1:0',
      '-s',
      'examples/echo.js',
    ],
    cores: 2,
    children: true,
  },
  'tcpdaemon LF -c 4': {
    description:
      'tcpdaemon, a pool of 4 worker processes serving one connection each (no start per connection), examples/echo.js',
    command: ['bin/tcpdaemon', '-m', 'LF', '-c', '4', '-l', '127.0.0.1:0', '-s', 'examples/echo.js'],
    cores: 2,
    children: true,
  },
  'node -e 0 per connection': {
    description: 'reference for IF: a bare `node -e 0` started and awaited per connection, then echo',
    command: [...TSX, 'bench/servers/spawn-per-connection.ts', '127.0.0.1:0'],
    cores: 2,
  },
  'tcpdaemon TLF -c 2': {
    description: 'tcpdaemon, 2 worker threads in one process, examples/echo.js',
    command: ['bin/tcpdaemon', '-m', 'TLF', '-c', '2', '-l', '127.0.0.1:0', '-s', 'examples/echo.js'],
    cores: 2,
  },
  'tcpdaemon IOMP -c 2': {
    description: 'tcpdaemon, 2 event-loop worker processes accepting from one socket, examples/echo.js',
    command: ['bin/tcpdaemon', '-m', 'IOMP', '-c', '2', '-l', '127.0.0.1:0', '-s', 'examples/echo.js'],
    cores: 2,
    children: true,
  },
  'tcpdaemon IOMP -c 2 metrics': {
    description:
      'tcpdaemon IOMP -c 2, examples/echo.js, --metrics on (every connection metered, values on each heartbeat; not scraped)',
    command: [
      'bin/tcpdaemon',
      '-m',
      'IOMP',
      '-c',
      '2',
      '-l',
      '127.0.0.1:0',
      '-s',
      'examples/echo.js',
      '--metrics',
      '127.0.0.1:0',
    ],
    cores: 2,
    children: true,
  },
  'tcpdaemon IOMP -c 1 metrics': {
    description: 'tcpdaemon IOMP -c 1, examples/echo.ts, --metrics on (not scraped)',
    command: [
      'bin/tcpdaemon',
      '-m',
      'IOMP',
      '-c',
      '1',
      '-l',
      '127.0.0.1:0',
      '-s',
      'examples/echo.ts',
      '--metrics',
      '127.0.0.1:0',
    ],
    cores: 1,
  },
  'tcpdaemon IOMP -c 2 reuse-port': {
    description:
      'tcpdaemon, 2 event-loop worker processes, each on its own SO_REUSEPORT socket (--reuse-port), examples/echo.js',
    command: [
      'bin/tcpdaemon',
      '-m',
      'IOMP',
      '-c',
      '2',
      '--reuse-port',
      '-l',
      '127.0.0.1:0',
      '-s',
      'examples/echo.js',
    ],
    cores: 2,
    children: true,
    reusePort: true,
  },
  'tcpdaemon TLF -c 2 reuse-port': {
    description:
      'tcpdaemon, 2 worker threads, each on its own SO_REUSEPORT socket (--reuse-port), examples/echo.js',
    command: [
      'bin/tcpdaemon',
      '-m',
      'TLF',
      '-c',
      '2',
      '--reuse-port',
      '-l',
      '127.0.0.1:0',
      '-s',
      'examples/echo.js',
    ],
    cores: 2,
    reusePort: true,
  },
  'threads copy 2': {
    description:
      "2 worker threads, each accepting on its own descriptor of one socket from a helper process (TLF's way), raw echo",
    command: [...TSX, 'bench/servers/thread-handoff.ts', '127.0.0.1:0', '--mode', 'copy'],
    cores: 2,
  },
  'threads transfer 2': {
    description:
      'the main thread accepts and moves each socket to one of 2 worker threads (postMessage transfer), raw echo',
    command: [...TSX, 'bench/servers/thread-handoff.ts', '127.0.0.1:0', '--mode', 'transfer'],
    cores: 2,
    socketTransfer: true,
  },
  'tcpdaemon LF -c 8': {
    description: 'tcpdaemon, a pool of 8 worker processes serving one connection each, examples/echo.js',
    command: LF_8,
    cores: 2,
    children: true,
  },
  'tcpdaemon LF -c 8 (no dup)': {
    description:
      'the same without the native dup (TCPDAEMON_NATIVE=0): the daemon sends each worker every copy of the socket',
    command: ['env', 'TCPDAEMON_NATIVE=0', ...LF_8],
    cores: 2,
    children: true,
  },
  'tcpdaemon IOMP -c 1 nodelay': {
    description:
      'tcpdaemon, IOMP in one process, examples/echo.js, --tcp-nodelay (as the message layer sets it)',
    command: [
      'bin/tcpdaemon',
      '-m',
      'IOMP',
      '-c',
      '1',
      '--tcp-nodelay',
      '-l',
      '127.0.0.1:0',
      '-s',
      'examples/echo.js',
    ],
    cores: 1,
  },
  'message layer lars': {
    description: 'the message layer serving the echo handler directly (IOMP -c 1), Lars frames',
    command: [
      'bin/tcpdaemon',
      '-m',
      'IOMP',
      '-c',
      '1',
      '-l',
      '127.0.0.1:0',
      '-s',
      'bench/servers/message-echo.js',
    ],
    cores: 1,
    codec: 'lars',
  },
  'gateway ipc 2 workers': {
    description: 'tcpdaemon gateway, 1 gateway process, 2 ipc workers, examples/gateway-echo.ts, Lars frames',
    command: [
      'bin/tcpdaemon',
      'gateway',
      '-l',
      '127.0.0.1:0',
      '--codec',
      'lars',
      '-s',
      'examples/gateway-echo.ts',
      '--business-workers',
      '2',
    ],
    cores: 2,
    children: true,
    codec: 'lars',
  },
  'gateway nats 2 workers': {
    description: 'tcpdaemon gateway + tcpdaemon worker (2 workers) through a local nats-server, Lars frames',
    command: [...TSX, 'bench/servers/gateway-nats.ts', '127.0.0.1:0'],
    cores: 2,
    children: true,
    codec: 'lars',
  },
  // The proxy comparisons: the same backend process, reached directly or through a front
  // with one process (ours: IOMP -c 1) or one thread (HAProxy: nbthread 1), TCP mode.
  'echo direct': {
    description: 'node:net echo, no proxy (bench/servers/proxy-stack.ts --front none)',
    command: [...TSX, 'bench/servers/proxy-stack.ts', '--backend', 'echo', '--front', 'none'],
    cores: 2, // as the proxied paths: the tool gets the same threads on every path
    children: true, // the backend (and the front) are its child processes
  },
  'echo via tcpdaemon proxy': {
    description: 'tcpdaemon proxy (one process, default strategy) in front of the node:net echo',
    command: [...TSX, 'bench/servers/proxy-stack.ts', '--backend', 'echo', '--front', 'tcpdaemon'],
    cores: 2,
    children: true,
  },
  'echo via HAProxy': {
    description: 'HAProxy, mode tcp, nbthread 1, in front of the node:net echo',
    command: [...TSX, 'bench/servers/proxy-stack.ts', '--backend', 'echo', '--front', 'haproxy'],
    cores: 2,
    children: true,
    needs: ['haproxy'],
  },
  'echo via minimal node proxy': {
    description:
      'reference: the smallest public-API node proxy (createServer, connect, pipe both ways; bench/servers/minimal-proxy.ts) in front of the node:net echo',
    command: [...TSX, 'bench/servers/proxy-stack.ts', '--backend', 'echo', '--front', 'node-minimal'],
    cores: 2,
    children: true,
  },
  // TLS (bench/servers/tls-stack.ts): the same freshly made certificate for each; OpenSSL's defaults.
  ...tlsServers('ecdsa', ''),
  ...tlsServers('rsa', ' RSA'),
  ...strategyServers(),
  'redis direct': {
    description: 'redis-server, no proxy',
    command: [...TSX, 'bench/servers/proxy-stack.ts', '--backend', 'redis', '--front', 'none'],
    cores: 2, // as the proxied paths
    children: true,
    probe: REDIS_PING,
    needs: ['redis-server'],
  },
  'redis via tcpdaemon proxy': {
    description: 'tcpdaemon proxy (one process) in front of redis-server',
    command: [...TSX, 'bench/servers/proxy-stack.ts', '--backend', 'redis', '--front', 'tcpdaemon'],
    cores: 2,
    children: true,
    probe: REDIS_PING,
    needs: ['redis-server'],
  },
  'redis via HAProxy': {
    description: 'HAProxy, mode tcp, nbthread 1, in front of redis-server',
    command: [...TSX, 'bench/servers/proxy-stack.ts', '--backend', 'redis', '--front', 'haproxy'],
    cores: 2,
    children: true,
    probe: REDIS_PING,
    needs: ['redis-server', 'haproxy'],
  },
} satisfies Record<string, ServerSpec>;

export type ServerName = keyof typeof SERVERS;

/** The raw echo the message layer is compared with: the same model, Nagle off as the message layer has it. */
export const MESSAGE_BYTE_ECHO: ServerName = 'tcpdaemon IOMP -c 1 nodelay';

/** Ours with each strategy over three echo backends, the first answering 20 ms late. */
function strategyServers() {
  const one = (strategy: string): ServerSpec => ({
    description: `tcpdaemon proxy --strategy ${strategy}, 3 echo backends, one of them 20 ms slow`,
    command: [
      ...TSX,
      'bench/servers/proxy-stack.ts',
      '--front',
      'tcpdaemon',
      '--backends',
      '3',
      '--slow-ms',
      '20',
      '--strategy',
      strategy,
    ],
    cores: 2,
    children: true,
  });
  return {
    'strategy roundrobin': one('roundrobin'),
    'strategy leastconn': one('leastconn'),
    'strategy p2c': one('p2c'),
    'strategy hash': one('hash'),
  };
}

/** Flags of the load tool, as numbers; `--quick` shortens the times (see quickLoad). */
export interface LoadSpec {
  mode: 'echo' | 'connect' | 'hold';
  connections: number;
  depth?: number;
  /** bytes per message */
  size?: number;
  /** seconds of load; hold mode: the longest the ramp may take */
  seconds: number;
  /** hold mode: seconds to hold the connections idle */
  holdSeconds?: number;
  /**
   * Seconds of the same load against the fresh server before the measured run, not counted
   * (`--warmup S`): node servers compile their code as traffic comes, a pool of worker processes
   * in every process on its share of the traffic, so a cold 3-second run of LF -c 8 measures mostly
   * the JIT warming up.
   */
  warmupSeconds?: number;
  /** load threads; default: the cores the server leaves free, at least 1 (see toolThreads) */
  threads?: number;
  /** echo framing of the load tool (`--codec`); default raw */
  codec?: string;
  /**
   * connect: connections started per second (`--rate`), an open loop with at most
   * `connections` in flight; default: `connections` closed loops
   */
  rate?: number;
  /**
   * What makes the load: connect-gen (bench/connect-gen.c) by default for closed-loop connect
   * rows, `tcpdaemon bench` for everything else (it cannot pace, hold or echo); pipeline-gen
   * (bench/pipeline-gen.c) on request for echo rows framed raw, lars or seq, plain or over TLS.
   */
  generator?: Generator;
  /** connect-gen: how each cycle closes, a plain close (FIN, default) or SO_LINGER 0 (RST). */
  close?: CloseKind;
  /**
   * TLS 1.3 (X25519): a full handshake per connection, or resuming the load thread's last session.
   * `tcpdaemon bench --tls` / `--tls-resume`, connect-gen's `--tls new|resume` (OpenSSL), or
   * pipeline-gen's `--tls` (echo: 'new' only, each connection's handshake done before the load).
   */
  tls?: 'new' | 'resume';
}

export type Generator = 'connect-gen' | 'pipeline-gen' | 'tcpdaemon bench';

/** The echo framings pipeline-gen speaks. */
const PIPELINE_CODECS = ['raw', 'lars', 'seq'];

/** The generator of `load`: see LoadSpec.generator. */
export function generatorOf(load: LoadSpec): Generator {
  const closedConnect = load.mode === 'connect' && load.rate === undefined;
  const generator = load.generator ?? (closedConnect ? 'connect-gen' : 'tcpdaemon bench');
  if (generator === 'connect-gen' && !closedConnect) {
    throw new Error('connect-gen runs closed-loop connect loads only (no echo, hold or --rate)');
  }
  if (
    generator === 'pipeline-gen' &&
    (load.mode !== 'echo' || load.tls === 'resume' || !PIPELINE_CODECS.includes(load.codec ?? 'raw'))
  ) {
    throw new Error(
      'pipeline-gen runs echo loads framed raw, lars or seq only (over TLS: new sessions only)',
    );
  }
  if (load.close !== undefined && generator !== 'connect-gen') {
    throw new Error('close goes with connect-gen loads only');
  }
  return generator;
}

interface ScenarioBase {
  /** Unique; `npm run bench -- --only NAME`. */
  name: string;
  /** Run one after the other with the same load, each on a fresh server. */
  servers: ServerName[];
  /** Times the whole group runs (see bench/rounds.ts); default 1; `--rounds N` overrides, `--quick` runs 1. */
  rounds?: number;
}

/** Load from `tcpdaemon bench`. */
export interface ToolScenario extends ScenarioBase {
  /** The report table it goes into; also accepted by --only. */
  table:
    | 'echo'
    | 'connect'
    | 'hold'
    | 'tool'
    | 'generator'
    | 'workers'
    | 'gateway'
    | 'proxy'
    | 'message'
    | 'tls'
    | 'metrics';
  load: LoadSpec;
}

/** Flags of redis-benchmark. */
export interface RedisLoad {
  /** -t: comma-separated commands, e.g. 'get,set'. */
  tests: string;
  /** -n: requests per command. */
  requests: number;
  /** -c: parallel connections. */
  clients: number;
  /** -P: requests pipelined per connection; default 1. */
  pipeline?: number;
}

/** A real client/server pair: redis-benchmark against redis-server, direct or through a front. */
export interface RedisScenario extends ScenarioBase {
  table: 'redis';
  redis: RedisLoad;
}

export type Scenario = ToolScenario | RedisScenario;

const ECHO_SECONDS = 3;
/** Rounds of the scenarios behind an issue's target (ratios to a baseline); see bench/rounds.ts. */
const TARGET_ROUNDS = 5;
/** Rounds of the plain echo comparison (issue 2's figures). */
const ECHO_ROUNDS = 3;
const echoVs: ServerName[] = ['tcpdaemon IOMP -c 1', 'node net (for await)', 'node net'];

function echo(depth: number, size: number): ToolScenario {
  return {
    name: `echo-50x${depth}-${size}B`,
    table: 'echo',
    servers: echoVs,
    rounds: ECHO_ROUNDS,
    load: { mode: 'echo', connections: 50, depth, size, seconds: ECHO_SECONDS },
  };
}

/** Is the tool the bottleneck? The same load with 1, 2 and 4 load threads. */
function toolCheck(threads: number): ToolScenario {
  return {
    name: `tool-threads-${threads}`,
    table: 'tool',
    servers: ['node net'],
    load: { mode: 'echo', connections: 50, depth: 16, size: 64, seconds: ECHO_SECONDS, threads },
  };
}

/** Multi-process models against node's cluster: throughput, connect rate, spread per worker. */
function workers(name: string, servers: ServerName[], load: LoadSpec, rounds?: number): Scenario {
  return { name, table: 'workers', servers, load, ...(rounds ? { rounds } : {}) };
}
const iompVsCluster: ServerName[] = [
  'tcpdaemon IOMP -c 2',
  'node cluster 2 (for await)',
  'node cluster 2',
  'node cluster 2 shared',
];

/**
 * The TLS echo servers of one key type: tcpdaemon IOMP -c 1 and -c 2, node's tls (with the
 * `for await` loop of examples/echo.js, and with pipe), HAProxy.
 */
function tlsServers<S extends string>(key: 'ecdsa' | 'rsa', suffix: S) {
  const stack = (server: string, ...extra: string[]) => [
    ...TSX,
    'bench/servers/tls-stack.ts',
    '--server',
    server,
    '--key',
    key,
    ...extra,
  ];
  return {
    [`tls tcpdaemon IOMP -c 1${suffix}`]: {
      description: `tcpdaemon IOMP -c 1, examples/echo.js, --tls-cert, --tcp-nodelay (${key})`,
      command: stack('tcpdaemon', '--workers', '1'),
      tls: true,
      cores: 1,
      children: true,
    },
    [`tls tcpdaemon IOMP -c 1 (pipe)${suffix}`]: {
      description: `tcpdaemon IOMP -c 1, bench/servers/pipe-echo.js (node's pipe echo as the handler), --tls-cert, --tcp-nodelay (${key})`,
      command: stack('tcpdaemon', '--workers', '1', '--handler', 'pipe'),
      tls: true,
      cores: 1,
      children: true,
    },
    [`tls tcpdaemon IOMP -c 2${suffix}`]: {
      description: `tcpdaemon IOMP -c 2, examples/echo.js, --tls-cert, --tcp-nodelay (${key})`,
      command: stack('tcpdaemon', '--workers', '2'),
      tls: true,
      cores: 2,
      children: true,
    },
    [`tls tcpdaemon IOMP -c 2 (pipe)${suffix}`]: {
      description: `tcpdaemon IOMP -c 2, bench/servers/pipe-echo.js (node's pipe echo as the handler), --tls-cert, --tcp-nodelay (${key})`,
      command: stack('tcpdaemon', '--workers', '2', '--handler', 'pipe'),
      tls: true,
      cores: 2,
      children: true,
    },
    [`tls node tls (for await)${suffix}`]: {
      description: `node:tls echo with the for-await loop of examples/echo.js, noDelay, one process (${key})`,
      command: stack('node-tls', '--for-await'),
      tls: true,
      cores: 1,
    },
    [`tls node tls${suffix}`]: {
      description: `node:tls echo (socket.pipe(socket)), noDelay, one process (${key})`,
      command: stack('node-tls'),
      tls: true,
      cores: 1,
    },
    [`tls node cluster 2${suffix}`]: {
      description: `node:tls echo (pipe), noDelay, node:cluster with 2 workers, round-robin (${key})`,
      command: stack('node-tls', '--workers', '2'),
      tls: true,
      cores: 2,
      children: true,
    },
    [`tls node cluster 2 shared${suffix}`]: {
      description: `node:tls echo (pipe), noDelay, node:cluster with 2 workers, SCHED_NONE: each accepts from the shared handle, as IOMP -c 2's do (${key})`,
      command: stack('node-tls', '--workers', '2', '--shared'),
      tls: true,
      cores: 2,
      children: true,
    },
    [`tls HAProxy${suffix}`]: {
      description: `HAProxy terminating TLS, nbthread 1, mode tcp, in front of the node:net echo (${key})`,
      command: stack('haproxy'),
      tls: true,
      cores: 2,
      children: true,
      needs: ['haproxy'],
    },
  } as Record<
    `tls ${'tcpdaemon IOMP -c 1' | 'tcpdaemon IOMP -c 1 (pipe)' | 'tcpdaemon IOMP -c 2' | 'tcpdaemon IOMP -c 2 (pipe)' | 'node tls (for await)' | 'node tls' | 'node cluster 2' | 'node cluster 2 shared' | 'HAProxy'}${S}`,
    ServerSpec
  >;
}

const tlsVs = (suffix: '' | ' RSA') =>
  (
    [
      'tls tcpdaemon IOMP -c 1',
      'tls tcpdaemon IOMP -c 1 (pipe)',
      'tls tcpdaemon IOMP -c 2',
      'tls node tls (for await)',
      'tls node tls',
      'tls node cluster 2',
      'tls node cluster 2 shared',
      'tls HAProxy',
    ] as const
  ).map((n) => `${n}${suffix}` as ServerName);

/** Rounds of the TLS scenarios (issue 17's targets are ratios to node's tls server). */
const TLS_ROUNDS = 3;
const TLS_SECONDS = 3;

function tlsScenario(name: string, suffix: '' | ' RSA', load: LoadSpec): ToolScenario {
  return { name, table: 'tls', servers: tlsVs(suffix), rounds: TLS_ROUNDS, load };
}

/** Handshakes: connect-gen (OpenSSL, in C) makes them, so the load tool is not what limits the rate. */
const tlsHandshakes = (name: string, suffix: '' | ' RSA', tls: 'new' | 'resume') =>
  tlsScenario(name, suffix, { mode: 'connect', connections: 50, size: 64, seconds: TLS_SECONDS, tls });

const TLS_SCENARIOS: ToolScenario[] = [
  tlsHandshakes('tls-handshake-new', '', 'new'),
  tlsHandshakes('tls-handshake-resume', '', 'resume'),
  tlsHandshakes('tls-handshake-new-rsa', ' RSA', 'new'),
  tlsHandshakes('tls-handshake-resume-rsa', ' RSA', 'resume'),
  // Echo over established connections: the key type does not matter once the handshake is done.
  // pipeline-gen (C, OpenSSL) makes the load: the node tool's one thread was 94-99 % busy on these.
  tlsScenario('tls-echo-50x1-64B', '', {
    mode: 'echo',
    connections: 50,
    depth: 1,
    size: 64,
    seconds: TLS_SECONDS,
    tls: 'new',
    generator: 'pipeline-gen',
  }),
  tlsScenario('tls-echo-50x1-16KiB', '', {
    mode: 'echo',
    connections: 50,
    depth: 1,
    size: 16384,
    seconds: TLS_SECONDS,
    tls: 'new',
    generator: 'pipeline-gen',
  }),
];

/** --metrics on against off, each pair alternating round by round (issue 18: target >= 0.97x). */
function metricsScenario(name: string, servers: ServerName[], load: LoadSpec): ToolScenario {
  return { name, table: 'metrics', servers, load, rounds: TARGET_ROUNDS };
}
const metricsOneVs: ServerName[] = ['tcpdaemon IOMP -c 1', 'tcpdaemon IOMP -c 1 metrics'];
const metricsTwoVs: ServerName[] = ['tcpdaemon IOMP -c 2', 'tcpdaemon IOMP -c 2 metrics'];
const METRICS_SCENARIOS: ToolScenario[] = [
  metricsScenario('metrics-echo-50x16-64B-c1', metricsOneVs, {
    mode: 'echo',
    connections: 50,
    depth: 16,
    size: 64,
    seconds: ECHO_SECONDS,
  }),
  metricsScenario('metrics-connect-50-c1', metricsOneVs, {
    mode: 'connect',
    connections: 50,
    size: 64,
    seconds: ECHO_SECONDS,
  }),
  metricsScenario('metrics-echo-50x16-64B-c2', metricsTwoVs, {
    mode: 'echo',
    connections: 50,
    depth: 16,
    size: 64,
    seconds: ECHO_SECONDS,
  }),
  metricsScenario('metrics-connect-50-c2', metricsTwoVs, {
    mode: 'connect',
    connections: 50,
    size: 64,
    seconds: ECHO_SECONDS,
  }),
];

export const SCENARIOS: Scenario[] = [
  echo(1, 64),
  echo(1, 4096),
  echo(16, 64),
  echo(16, 4096),
  {
    name: 'hold-10k',
    table: 'hold',
    servers: echoVs,
    load: { mode: 'hold', connections: 10_000, size: 1, seconds: 60, holdSeconds: 5 },
  },
  toolCheck(1),
  toolCheck(2),
  toolCheck(4),
  // Is the connect generator the limit? Its rate against the cheapest server (C) is the most it
  // offers; BENCHMARKS.md's Method compares that with the fastest server's connect rate. The node
  // tool against the same server shows why the connect rows do not use it.
  ...(['fin', 'rst'] as const).map(
    (close): ToolScenario => ({
      name: `generator-connect-50-${close}`,
      table: 'generator',
      servers: ['C epoll echo', 'node net'],
      rounds: ECHO_ROUNDS,
      load: { mode: 'connect', connections: 50, size: 64, seconds: ECHO_SECONDS, close },
    }),
  ),
  {
    name: 'generator-node-tool-connect-50',
    table: 'generator',
    servers: ['C epoll echo', 'node net'],
    rounds: ECHO_ROUNDS,
    load: { mode: 'connect', connections: 50, size: 64, seconds: ECHO_SECONDS, generator: 'tcpdaemon bench' },
  },
  workers(
    'workers-echo-50x1',
    iompVsCluster,
    {
      mode: 'echo',
      connections: 50,
      depth: 1,
      size: 64,
      seconds: ECHO_SECONDS,
    },
    TARGET_ROUNDS,
  ),
  workers(
    'workers-echo-50x16',
    iompVsCluster,
    {
      mode: 'echo',
      connections: 50,
      depth: 16,
      size: 64,
      seconds: ECHO_SECONDS,
    },
    TARGET_ROUNDS,
  ),
  workers(
    'workers-connect-50',
    iompVsCluster,
    {
      mode: 'connect',
      connections: 50,
      size: 64,
      seconds: ECHO_SECONDS,
    },
    TARGET_ROUNDS,
  ),
  workers(
    'workers-connect-50-rst',
    iompVsCluster,
    { mode: 'connect', connections: 50, size: 64, seconds: ECHO_SECONDS, close: 'rst' },
    TARGET_ROUNDS,
  ),
  workers('lf-echo-8x1', ['tcpdaemon LF -c 8'], {
    mode: 'echo',
    connections: 8,
    depth: 1,
    size: 64,
    seconds: ECHO_SECONDS,
  }),
  workers('lf-connect-8', ['tcpdaemon LF -c 8', 'tcpdaemon LF -c 8 (no dup)'], {
    mode: 'connect',
    connections: 8,
    size: 64,
    seconds: ECHO_SECONDS,
  }),
  // With a reset close too: with FIN a connect loop on this machine can sit at ~14k/s below a core
  // (BENCHMARKS.md, "Per-connection cost"), which LF with the native dup reaches.
  workers('lf-connect-8-rst', ['tcpdaemon LF -c 8', 'tcpdaemon LF -c 8 (no dup)'], {
    mode: 'connect',
    connections: 8,
    size: 64,
    seconds: ECHO_SECONDS,
    close: 'rst',
  }),
  {
    name: 'gateway-50x16-64B',
    table: 'gateway',
    // The C echo first: what pipeline-gen offers on this load when the server costs next to nothing.
    servers: ['C epoll echo', 'message layer lars', 'gateway ipc 2 workers', 'gateway nats 2 workers'],
    load: {
      mode: 'echo',
      connections: 50,
      depth: 16,
      size: 64,
      seconds: ECHO_SECONDS,
      codec: 'lars',
      generator: 'pipeline-gen',
    },
  },
  ...[1, 16].flatMap((depth): ToolScenario[] => [
    {
      name: `message-raw-50x${depth}-64B`,
      table: 'message',
      rounds: TARGET_ROUNDS,
      servers: [MESSAGE_BYTE_ECHO],
      load: {
        mode: 'echo',
        connections: 50,
        depth,
        size: 64,
        seconds: ECHO_SECONDS,
        generator: 'pipeline-gen',
      },
    },
    // The byte echo under the same Lars-framed load (it returns each frame unchanged): the same
    // client work and the same bytes on the wire, so message layer ÷ this isolates the server.
    {
      name: `message-lars-50x${depth}-64B`,
      table: 'message',
      rounds: TARGET_ROUNDS,
      servers: [MESSAGE_BYTE_ECHO, 'message layer lars'],
      load: {
        mode: 'echo',
        connections: 50,
        depth,
        size: 64,
        seconds: ECHO_SECONDS,
        codec: 'lars',
        generator: 'pipeline-gen',
      },
    },
  ]),
  // IF: connections/s and first-byte latency against bare node starts/s, at concurrency 4.
  {
    name: 'connect-4-if',
    table: 'connect',
    servers: ['tcpdaemon IF -c 4', 'node -e 0 per connection'],
    load: { mode: 'connect', connections: 4, size: 64, seconds: 5 },
  },
  // IF's first byte with its spares warm: a rate the spares sustain (IF does ~28/s at 4 loops
  // here), at most 4 in flight; LF -c 4 beside it hands connections to processes already
  // running, so the difference is what a process start per connection adds to the hand-off.
  {
    name: 'connect-if-paced',
    table: 'connect',
    servers: ['tcpdaemon IF -c 4', 'tcpdaemon LF -c 4'],
    load: { mode: 'connect', connections: 4, rate: 10, size: 64, seconds: 10 },
  },
  // TLF -c 2 against IOMP -c 2: echo msg/s and connect rate.
  {
    name: 'echo-50x16-64B-2w',
    table: 'echo',
    servers: ['tcpdaemon TLF -c 2', 'tcpdaemon IOMP -c 2'],
    load: { mode: 'echo', connections: 50, depth: 16, size: 64, seconds: ECHO_SECONDS },
  },
  {
    name: 'connect-8-2w',
    table: 'connect',
    servers: ['tcpdaemon TLF -c 2', 'tcpdaemon IOMP -c 2'],
    load: { mode: 'connect', connections: 8, size: 64, seconds: ECHO_SECONDS },
  },
  // Per-connection cost (issue 15): IOMP -c 1 against node:net running the same loop and pipe,
  // with a plain close and with a reset.
  ...(['fin', 'rst'] as const).map(
    (close): ToolScenario => ({
      name: `connect-50-iomp1-${close}`,
      table: 'connect',
      servers: ['tcpdaemon IOMP -c 1', 'node net (for await)', 'node net'],
      rounds: ECHO_ROUNDS,
      load: { mode: 'connect', connections: 50, size: 64, seconds: ECHO_SECONDS, close },
    }),
  ),
  ...proxyScenarios(),
  ...reusePortScenarios(),
  ...handoffScenarios(),
  ...TLS_SCENARIOS,
  ...METRICS_SCENARIOS,
];

/** TLF's helper-process copy against moving accepted sockets to threads (where node can). */
function handoffScenarios(): Scenario[] {
  if (!serverNodeCanTransferSockets()) return [];
  const servers: ServerName[] = ['threads copy 2', 'threads transfer 2'];
  return [
    workers('handoff-echo-50x1', servers, {
      mode: 'echo',
      connections: 50,
      depth: 1,
      size: 64,
      seconds: ECHO_SECONDS,
    }),
    workers('handoff-connect-50', servers, {
      mode: 'connect',
      connections: 50,
      size: 64,
      seconds: ECHO_SECONDS,
    }),
  ];
}

/**
 * --reuse-port against the one shared socket, IOMP -c 2 and TLF -c 2: echo, connect rate and the
 * spread per worker. Only where the servers' node has reusePort (>= 22.12): elsewhere it is refused.
 */
function reusePortScenarios(): Scenario[] {
  if (!hasReusePort(SERVER_NODE_VERSION)) return [];
  const servers: ServerName[] = [
    'tcpdaemon IOMP -c 2',
    'tcpdaemon IOMP -c 2 reuse-port',
    'tcpdaemon TLF -c 2',
    'tcpdaemon TLF -c 2 reuse-port',
  ];
  return [
    workers('reuseport-echo-50x1', servers, {
      mode: 'echo',
      connections: 50,
      depth: 1,
      size: 64,
      seconds: ECHO_SECONDS,
    }),
    workers('reuseport-connect-50', servers, {
      mode: 'connect',
      connections: 50,
      size: 64,
      seconds: ECHO_SECONDS,
    }),
  ];
}

/**
 * Our proxy vs HAProxy over the same echo backend, all vs no proxy at all, and the minimal
 * node proxy as the reference for what node itself reaches on the machine.
 */
function proxyScenarios(): Scenario[] {
  const servers: ServerName[] = [
    'echo direct',
    'echo via tcpdaemon proxy',
    'echo via HAProxy',
    'echo via minimal node proxy',
  ];
  const redis: ServerName[] = ['redis direct', 'redis via tcpdaemon proxy', 'redis via HAProxy'];
  return [
    {
      name: 'proxy-echo-50x1-64B',
      table: 'proxy',
      servers,
      rounds: TARGET_ROUNDS,
      load: { mode: 'echo', connections: 50, depth: 1, size: 64, seconds: ECHO_SECONDS },
    },
    {
      name: 'proxy-echo-50x16-4096B',
      table: 'proxy',
      servers,
      rounds: TARGET_ROUNDS,
      load: { mode: 'echo', connections: 50, depth: 16, size: 4096, seconds: ECHO_SECONDS },
    },
    {
      name: 'proxy-connect-20',
      table: 'proxy',
      servers,
      rounds: TARGET_ROUNDS,
      load: { mode: 'connect', connections: 20, size: 64, seconds: ECHO_SECONDS },
    },
    {
      name: 'proxy-connect-20-rst',
      table: 'proxy',
      servers,
      rounds: TARGET_ROUNDS,
      load: { mode: 'connect', connections: 20, size: 64, seconds: ECHO_SECONDS, close: 'rst' },
    },
    {
      name: 'proxy-strategy-connect-20',
      table: 'proxy',
      servers: ['strategy roundrobin', 'strategy leastconn', 'strategy p2c', 'strategy hash'],
      load: { mode: 'connect', connections: 20, size: 64, seconds: ECHO_SECONDS },
    },
    {
      name: 'redis-get-set-50',
      table: 'redis',
      servers: redis,
      redis: { tests: 'get,set', requests: 100_000, clients: 50 },
    },
    {
      name: 'redis-get-set-50-P16',
      table: 'redis',
      servers: redis,
      redis: { tests: 'get,set', requests: 400_000, clients: 50, pipeline: 16 },
    },
  ];
}

/** --quick for redis-benchmark: a tenth of the requests. */
export function quickRedis(load: RedisLoad): RedisLoad {
  return { ...load, requests: Math.max(1000, Math.round(load.requests / 10)) };
}

/** Arguments of redis-benchmark for `load` against HOST:PORT, CSV on stdout. */
export function redisArgs(load: RedisLoad, host: string, port: number): string[] {
  const args = ['-h', host, '-p', String(port), '-t', load.tests, '-n', String(load.requests)];
  args.push('-c', String(load.clients), '-P', String(load.pipeline ?? 1), '--csv');
  return args;
}

/** --quick: the same scenarios with short times, to smoke-test the runner. */
/** The load of a run: `--warmup` (every run's but a hold's), then `--quick`'s shorter times. */
export function runLoad(load: LoadSpec, quick: boolean, warmup: number | undefined): LoadSpec {
  const warmed = warmup === undefined || load.mode === 'hold' ? load : { ...load, warmupSeconds: warmup };
  return quick ? quickLoad(warmed) : warmed;
}

export function quickLoad(load: LoadSpec): LoadSpec {
  return {
    ...load,
    seconds: load.mode === 'hold' ? load.seconds : Math.min(load.seconds, 0.5),
    ...(load.warmupSeconds !== undefined ? { warmupSeconds: Math.min(load.warmupSeconds, 0.5) } : {}),
    ...(load.holdSeconds !== undefined ? { holdSeconds: Math.min(load.holdSeconds, 1) } : {}),
  };
}

/**
 * Load threads against `server` on a machine of `cores` cores: the scenario's own figure,
 * else the cores the server leaves free (at least 1), so tool and server do not take
 * each other's CPU on a small machine.
 */
export function toolThreads(load: LoadSpec, server: ServerSpec, cores: number): number {
  return load.threads ?? Math.max(1, cores - server.cores);
}

/** Arguments of `tcpdaemon bench` for `load` with `threads` against HOST:PORT, with --json. */
export function toolArgs(load: LoadSpec, threads: number, host: string, port: number): string[] {
  const args = ['--host', host, '--port', String(port), '--mode', load.mode];
  args.push('--connections', String(load.connections), '--duration', String(load.seconds));
  if (load.rate !== undefined) args.push('--rate', String(load.rate));
  if (load.depth !== undefined) args.push('--depth', String(load.depth));
  if (load.size !== undefined) args.push('--size', String(load.size));
  if (load.holdSeconds !== undefined) args.push('--hold-seconds', String(load.holdSeconds));
  if (load.codec !== undefined) args.push('--codec', load.codec);
  if (load.tls !== undefined) args.push(load.tls === 'resume' ? '--tls-resume' : '--tls');
  args.push('--threads', String(threads));
  args.push('--json');
  return args;
}
