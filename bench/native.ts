// The bench's C programs: built with the system compiler (`$CC`, default cc) into .bench-out/native/
// (ignored by git, never committed) the first time they are needed and whenever their source (or a
// header it includes) is newer than the binary; and the generators' JSON read back as a load-tool result.
// connect-gen and pipeline-gen link the system's OpenSSL (Debian: libssl-dev) for --tls (bench/gen-tls.h).
import { spawnSync } from 'node:child_process';
import { mkdirSync, statSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { join, resolve } from 'node:path';
import type { BenchResult } from '../src/bench/report.js';
import type { ErrorKind } from '../src/bench/tally.js';

const ROOT = resolve(import.meta.dirname, '..');
export const NATIVE_DIR = join(ROOT, '.bench-out', 'native');

/** Each program, its one source file, the headers it includes and the libraries it links. */
export const NATIVE_PROGRAMS = {
  'connect-gen': {
    source: 'bench/connect-gen.c',
    headers: ['bench/gen-tally.h', 'bench/gen-tls.h'],
    libs: ['-lssl', '-lcrypto'],
  },
  'pipeline-gen': {
    source: 'bench/pipeline-gen.c',
    headers: ['bench/gen-tally.h', 'bench/gen-tls.h'],
    libs: ['-lssl', '-lcrypto'],
  },
  'epoll-echo': { source: 'bench/servers/epoll-echo.c', headers: [], libs: [] },
} as const;
export type NativeProgram = keyof typeof NATIVE_PROGRAMS;

/** `program`'s binary as a server command runs it (from the repository root). */
export function nativeCommand(program: NativeProgram): string {
  return `.bench-out/native/${program}`;
}

/** Path of `program`'s binary, built first if missing or older than its source. Throws with the compiler's output. */
export function buildNative(program: NativeProgram, outDir = NATIVE_DIR): string {
  const { source: file, headers, libs } = NATIVE_PROGRAMS[program];
  const source = join(ROOT, file);
  const binary = join(outDir, program);
  const newest = Math.max(mtime(source), ...headers.map((h) => mtime(join(ROOT, h))));
  if (mtime(binary) > newest) return binary;
  mkdirSync(outDir, { recursive: true });
  const cc = process.env.CC || 'cc';
  const run = spawnSync(cc, ['-O2', '-Wall', '-pthread', '-o', binary, source, ...libs], {
    encoding: 'utf8',
  });
  if (run.error) throw new Error(`${cc} (building ${program}): ${run.error.message}`);
  if (run.status !== 0) {
    const hint = /openssl\/|-lssl|-lcrypto/.test(run.stderr)
      ? " (it needs OpenSSL's headers and libraries: Debian package libssl-dev)"
      : '';
    throw new Error(`${cc} failed building ${program}${hint}:\n${run.stderr}`);
  }
  return binary;
}

function mtime(path: string): number {
  try {
    return statSync(path).mtimeMs;
  } catch {
    return 0;
  }
}

export type CloseKind = 'fin' | 'rst';

/** What connect-gen prints (one JSON object). */
export interface ConnectGenOutput {
  generator: 'connect-gen';
  target: string;
  close: CloseKind;
  connections: number;
  threads: number;
  size: number;
  seconds: number;
  completed: number;
  perSecond: number;
  latencyMs: BenchResult['latencyMs'];
  errors: Record<ErrorKind, number>;
  errorTotal: number;
  verifyFailures: number;
  errorCodes: Record<string, number>;
  /** --tls: 'new' (a full handshake per cycle) or 'resume'; 'off' without. */
  tls: 'off' | 'new' | 'resume';
  /** --tls: handshakes the server resumed (a session ticket accepted). */
  resumed: number;
  /** Its own CPU (getrusage): seconds, and seconds per second of run. */
  cpu: { userSeconds: number; systemSeconds: number; cores: number };
}

export interface ConnectGenLoad {
  connections: number;
  size: number;
  seconds: number;
  threads: number;
  close: CloseKind;
  /** TLS 1.3 cycles (see connect-gen.c); absent: plain TCP. */
  tls?: 'new' | 'resume';
}

export function connectGenArgs(load: ConnectGenLoad, host: string, port: number): string[] {
  return [
    '--host',
    host,
    '--port',
    String(port),
    '--connections',
    String(load.connections),
    '--size',
    String(load.size),
    '--duration',
    String(load.seconds),
    '--threads',
    String(load.threads),
    '--close',
    load.close,
    ...(load.tls ? ['--tls', load.tls] : []),
  ];
}

/** connect-gen's output in the shape of a `tcpdaemon bench --mode connect --json` result. */
export function connectGenResult(out: ConnectGenOutput): BenchResult {
  return {
    mode: 'connect',
    target: out.target,
    codec: 'raw',
    connections: out.connections,
    depth: 1,
    size: out.size,
    threads: out.threads,
    seconds: out.seconds,
    completed: out.completed,
    perSecond: out.perSecond,
    mbPerSecond: 0,
    latencyMs: out.latencyMs,
    errors: out.errors,
    errorTotal: out.errorTotal,
    errorCodes: out.errorCodes,
    tool: { threadBusy: [], cpuCores: out.cpu.cores, cores: availableParallelism() },
  };
}

/** pipeline-gen's framings: the node tool's `--codec` of the same name. */
export type PipelineCodec = 'raw' | 'lars' | 'seq';

/** What pipeline-gen prints (one JSON object). */
export interface PipelineGenOutput {
  generator: 'pipeline-gen';
  target: string;
  codec: PipelineCodec;
  msgid: number;
  connections: number;
  depth: number;
  threads: number;
  size: number;
  seconds: number;
  /** Replies received and verified. */
  completed: number;
  /** Requests queued for writing (answered, in flight at the end, or lost with a failed connection). */
  sent: number;
  perSecond: number;
  /** Verified body bytes per second, each way, in MB (10^6 bytes). */
  mbPerSecond: number;
  /** --tls: every connection over TLS 1.3 (X25519), its handshake done before the load. */
  tls: boolean;
  /** --tls: handshakes done (one per connection opened, reopened ones included). */
  handshakes: number;
  /** Each thread's CPU over the load ÷ the load's time (near 1: that thread is the limit). */
  threadBusy: number[];
  latencyMs: BenchResult['latencyMs'];
  errors: Record<ErrorKind, number>;
  errorTotal: number;
  verifyFailures: number;
  errorCodes: Record<string, number>;
  /** Its own CPU (getrusage): seconds, and seconds per second of run. */
  cpu: { userSeconds: number; systemSeconds: number; cores: number };
}

export interface PipelineGenLoad {
  connections: number;
  depth: number;
  size: number;
  seconds: number;
  threads: number;
  codec: PipelineCodec;
  /** Each connection over TLS 1.3 (see pipeline-gen.c); absent: plain TCP. */
  tls?: boolean;
}

export function pipelineGenArgs(load: PipelineGenLoad, host: string, port: number): string[] {
  return [
    '--host',
    host,
    '--port',
    String(port),
    '--connections',
    String(load.connections),
    '--depth',
    String(load.depth),
    '--size',
    String(load.size),
    '--codec',
    load.codec,
    '--duration',
    String(load.seconds),
    '--threads',
    String(load.threads),
    ...(load.tls ? ['--tls'] : []),
  ];
}

/** pipeline-gen's output in the shape of a `tcpdaemon bench --mode echo --json` result. */
export function pipelineGenResult(out: PipelineGenOutput): BenchResult {
  return {
    mode: 'echo',
    target: out.target,
    codec: out.codec,
    connections: out.connections,
    depth: out.depth,
    size: out.size,
    threads: out.threads,
    seconds: out.seconds,
    completed: out.completed,
    perSecond: out.perSecond,
    mbPerSecond: out.mbPerSecond,
    latencyMs: out.latencyMs,
    errors: out.errors,
    errorTotal: out.errorTotal,
    errorCodes: out.errorCodes,
    tool: { threadBusy: out.threadBusy, cpuCores: out.cpu.cores, cores: availableParallelism() },
  };
}
