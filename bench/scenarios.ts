// What `npm run bench` measures: the servers it can start and the scenarios it runs
// against them. A later comparison (IOMP -c 2 vs cluster, LF, IF, proxy vs HAProxy, ...)
// is one more SERVERS entry and one more SCENARIOS entry; the runner does not change.
import { execPath } from 'node:process';

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
  /** How it frames messages, as the load tool's --codec names it; default raw (byte echo). */
  codec?: 'raw' | 'lars';
}

const TSX = [execPath, '--import', 'tsx'];

export const SERVERS = {
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
  'node cluster 2': {
    description: 'node:cluster echo, 2 workers, round-robin',
    command: [...TSX, 'bench/servers/cluster-echo.ts', '127.0.0.1:0', '--workers', '2'],
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
  'tcpdaemon LF -c 8': {
    description: 'tcpdaemon, a pool of 8 worker processes serving one connection each, examples/echo.js',
    command: ['bin/tcpdaemon', '-m', 'LF', '-c', '8', '-l', '127.0.0.1:0', '-s', 'examples/echo.js'],
    cores: 2,
    children: true,
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
      'bench/servers/message-echo.ts',
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
      '--workers',
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
} satisfies Record<string, ServerSpec>;

export type ServerName = keyof typeof SERVERS;

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
  /** load threads; default: the cores the server leaves free, at least 1 (see toolThreads) */
  threads?: number;
  /** echo framing of the load tool (`--codec`); default raw */
  codec?: string;
}

export interface Scenario {
  /** Unique; `npm run bench -- --only NAME`. */
  name: string;
  /** The report table it goes into; also accepted by --only. */
  table: 'echo' | 'connect' | 'hold' | 'tool' | 'workers' | 'gateway';
  /** Run one after the other with the same load, each on a fresh server. */
  servers: ServerName[];
  load: LoadSpec;
}

const ECHO_SECONDS = 3;
const echoVs: ServerName[] = ['tcpdaemon IOMP -c 1', 'node net'];

function echo(depth: number, size: number): Scenario {
  return {
    name: `echo-50x${depth}-${size}B`,
    table: 'echo',
    servers: echoVs,
    load: { mode: 'echo', connections: 50, depth, size, seconds: ECHO_SECONDS },
  };
}

/** Is the tool the bottleneck? The same load with 1, 2 and 4 load threads. */
function toolCheck(threads: number): Scenario {
  return {
    name: `tool-threads-${threads}`,
    table: 'tool',
    servers: ['node net'],
    load: { mode: 'echo', connections: 50, depth: 16, size: 64, seconds: ECHO_SECONDS, threads },
  };
}

/** Multi-process models against node's cluster: throughput, connect rate, spread per worker. */
function workers(name: string, servers: ServerName[], load: LoadSpec): Scenario {
  return { name, table: 'workers', servers, load };
}
const iompVsCluster: ServerName[] = ['tcpdaemon IOMP -c 2', 'node cluster 2'];

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
  workers('workers-echo-50x1', iompVsCluster, {
    mode: 'echo',
    connections: 50,
    depth: 1,
    size: 64,
    seconds: ECHO_SECONDS,
  }),
  workers('workers-echo-50x16', iompVsCluster, {
    mode: 'echo',
    connections: 50,
    depth: 16,
    size: 64,
    seconds: ECHO_SECONDS,
  }),
  workers('workers-connect-50', iompVsCluster, {
    mode: 'connect',
    connections: 50,
    size: 64,
    seconds: ECHO_SECONDS,
  }),
  workers('lf-echo-8x1', ['tcpdaemon LF -c 8'], {
    mode: 'echo',
    connections: 8,
    depth: 1,
    size: 64,
    seconds: ECHO_SECONDS,
  }),
  workers('lf-connect-8', ['tcpdaemon LF -c 8'], {
    mode: 'connect',
    connections: 8,
    size: 64,
    seconds: ECHO_SECONDS,
  }),
  {
    name: 'gateway-50x16-64B',
    table: 'gateway',
    servers: ['message layer lars', 'gateway ipc 2 workers', 'gateway nats 2 workers'],
    load: { mode: 'echo', connections: 50, depth: 16, size: 64, seconds: ECHO_SECONDS, codec: 'lars' },
  },
  // IF: connections/s and first-byte latency against bare node starts/s, at concurrency 4.
  {
    name: 'connect-4-if',
    table: 'connect',
    servers: ['tcpdaemon IF -c 4', 'node -e 0 per connection'],
    load: { mode: 'connect', connections: 4, size: 64, seconds: 5 },
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
];

/** --quick: the same scenarios with short times, to smoke-test the runner. */
export function quickLoad(load: LoadSpec): LoadSpec {
  return {
    ...load,
    seconds: load.mode === 'hold' ? load.seconds : Math.min(load.seconds, 0.5),
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
  if (load.depth !== undefined) args.push('--depth', String(load.depth));
  if (load.size !== undefined) args.push('--size', String(load.size));
  if (load.holdSeconds !== undefined) args.push('--hold-seconds', String(load.holdSeconds));
  if (load.codec !== undefined) args.push('--codec', load.codec);
  args.push('--threads', String(threads));
  args.push('--json');
  return args;
}
