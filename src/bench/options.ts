// Flags of `tcpdaemon bench`: parsing and bounds. Nothing here opens a socket.
import { availableParallelism } from 'node:os';
import { parseArgs } from 'node:util';
import { ParamError } from '../errors.js';
import { ECHO_CODEC_NAMES, type EchoCodec, echoCodec } from './codec.js';

export const MODES = ['echo', 'connect', 'hold'] as const;
export type BenchMode = (typeof MODES)[number];

/** `tls`: connect with TLS (any certificate accepted: a load tool); 'resume' offers the last session again. */
export type BenchTarget = { host: string; port: number; tls?: 'new' | 'resume' } | { path: string };

export interface BenchOptions {
  target: BenchTarget;
  mode: BenchMode;
  /**
   * Concurrent connections (echo, hold), concurrent connect loops (connect), or with `rate`
   * the most connect cycles in flight at once.
   */
  connections: number;
  /** connect: connect cycles started per second over all threads, on a fixed schedule (open loop). */
  rate?: number;
  /** Requests in flight per connection (echo). */
  depth: number;
  /** Bytes per message body. */
  size: number;
  /** Seconds of load (echo, connect); in hold mode, the longest the ramp may take. */
  duration: number;
  /** Seconds to hold every connection idle once all are open (hold). */
  holdSeconds: number;
  /** Load threads; never more than `connections`. */
  threads: number;
  /** How a message is framed on the wire (echo): raw or a message-layer codec name. */
  codec: string;
  /** msgid of every message, for codecs that carry one. */
  msgid: number;
  json: boolean;
}

export const LIMITS = {
  connections: 60000,
  depth: 1024,
  /** bytes */
  size: 64 * 1024 * 1024,
  /** bytes that may be in flight over all connections: connections x depth x size */
  inFlight: 1024 * 1024 * 1024,
  /** seconds */
  duration: 3600,
  threads: 64,
  /** connections started per second (--rate) */
  rate: 100_000,
} as const;

export const USAGE = `usage: tcpdaemon bench (--port PORT [--host HOST] | --path SOCKET) [options]
  --mode echo|connect|hold  echo: D messages in flight per connection, every echoed byte verified
                            connect: connect, send S bytes, read the echo, close; repeat (N loops)
                            hold: open N connections, hold them idle, close (default: echo)
  --connections N           connections or connect loops (default 50, at most ${LIMITS.connections});
                            with --rate, the most connect cycles in flight at once
  --rate R                  connect mode, open loop: start R connect cycles per second (over all
                            threads, fractions allowed, at most ${LIMITS.rate}) on a fixed schedule,
                            whatever earlier ones are doing. Latency runs from each start's due
                            time to its last echoed byte, so a start that waits shows as latency.
                            A start due while N are in flight is late: it waits for a free slot,
                            and is counted (exit status 2, like errors)
  --depth D                 messages in flight per connection, echo mode (default 1, at most ${LIMITS.depth})
  --size S                  bytes per message (default 64, at most ${LIMITS.size})
  --duration SECONDS        load time, fractions allowed (default 5); in hold mode the ramp limit
  --hold-seconds SECONDS    hold mode: idle time once all connections are open (default 5)
  --threads T               load threads (default: cores, ${availableParallelism()})
  --codec NAME              message framing, echo mode: ${ECHO_CODEC_NAMES.join(', ')} (default raw);
                            the server must echo each frame (seq: as its REPLY)
  --msgid N                 msgid of every message, codecs that carry one (default 1)
  --tls                     connect with TLS, a full handshake each time (the server's certificate
                            is not checked: a load tool)
  --tls-resume              as --tls, offering the session of the thread's last connection again
                            (TLS session resumption; the first connect of each thread is full)
  --json                    print one JSON object on stdout instead of text
hold mode writes "holding N open F failed" on stderr once the ramp is over.
exit status: 0 no errors, 2 the run finished but counted errors (or late starts: the --rate was
not offered), 1 bad flags or the tool failed`;

export class BenchUsageError extends ParamError {
  override name = 'BenchUsageError';
}

/** Parses argv (without `bench`). Throws BenchUsageError with a one-line reason. */
export function parseBenchArgs(argv: string[]): BenchOptions | 'help' {
  let values: ReturnType<typeof parse>['values'];
  try {
    values = parse(argv).values;
  } catch (err) {
    // One line: node's parseArgs puts its hint (e.g. --flag=-VALUE) on lines of their own.
    throw new BenchUsageError((err as Error).message.replace(/\s*\n\s*/g, ' '));
  }
  if (values.help) return 'help';

  const mode = values.mode ?? 'echo';
  if (!(MODES as readonly string[]).includes(mode)) {
    throw new BenchUsageError(`--mode must be one of ${MODES.join(', ')}, not '${mode}'`);
  }
  const codec = values.codec ?? 'raw';
  let framing: EchoCodec;
  try {
    framing = echoCodec(codec, values.msgid === undefined ? 1 : int32('--msgid', values.msgid));
  } catch (err) {
    if (err instanceof BenchUsageError) throw err;
    throw new BenchUsageError(
      `--codec must be one of ${ECHO_CODEC_NAMES.join(', ')}, not '${codec}' (${(err as Error).message})`,
    );
  }

  let target: BenchTarget;
  if (values.path !== undefined && values.port !== undefined) {
    throw new BenchUsageError('give --port or --path, not both');
  } else if (values.path !== undefined) {
    if (values.path === '') throw new BenchUsageError('--path must not be empty');
    if (values.host !== undefined) throw new BenchUsageError('--host does not go with --path');
    target = { path: values.path };
  } else if (values.port !== undefined) {
    const host = values.host ?? '127.0.0.1';
    if (host === '') throw new BenchUsageError('--host must not be empty');
    target = { host, port: integer('--port', values.port, 1, 65535) };
    if (values['tls-resume']) target.tls = 'resume';
    else if (values.tls) target.tls = 'new';
  } else {
    throw new BenchUsageError('--port or --path is required');
  }

  const connections = integer('--connections', values.connections ?? '50', 1, LIMITS.connections);
  const depth = integer('--depth', values.depth ?? '1', 1, LIMITS.depth);
  const size = integer('--size', values.size ?? '64', 1, LIMITS.size);
  if (mode === 'echo' && size > framing.maxBody) {
    throw new BenchUsageError(
      `--size ${size} is more than codec ${codec} carries (${framing.maxBody} bytes)`,
    );
  }
  let rate: number | undefined;
  if (values.rate !== undefined) {
    if (mode !== 'connect') {
      throw new BenchUsageError(`--rate goes with --mode connect only, not with ${mode}`);
    }
    rate = perSecond('--rate', values.rate);
  }
  const duration = seconds('--duration', values.duration ?? '5', false);
  const holdSeconds = seconds('--hold-seconds', values['hold-seconds'] ?? '5', true);
  const threads = integer('--threads', values.threads ?? String(availableParallelism()), 1, LIMITS.threads);
  const inFlight = connections * (mode === 'echo' ? depth : 1) * size;
  if (inFlight > LIMITS.inFlight) {
    throw new BenchUsageError(
      `connections x depth x size = ${inFlight} bytes in flight, more than ${LIMITS.inFlight}`,
    );
  }
  return {
    target,
    mode: mode as BenchMode,
    connections,
    ...(rate !== undefined ? { rate } : {}),
    depth,
    size,
    duration,
    holdSeconds,
    threads: Math.min(threads, connections),
    codec,
    msgid: values.msgid === undefined ? 1 : Number(values.msgid),
    json: values.json ?? false,
  };
}

function parse(argv: string[]) {
  return parseArgs({
    args: argv,
    strict: true,
    allowPositionals: false,
    options: {
      host: { type: 'string' },
      port: { type: 'string' },
      path: { type: 'string' },
      connections: { type: 'string' },
      rate: { type: 'string' },
      depth: { type: 'string' },
      size: { type: 'string' },
      duration: { type: 'string' },
      'hold-seconds': { type: 'string' },
      mode: { type: 'string' },
      threads: { type: 'string' },
      codec: { type: 'string' },
      msgid: { type: 'string' },
      json: { type: 'boolean' },
      tls: { type: 'boolean' },
      'tls-resume': { type: 'boolean' },
      help: { type: 'boolean', short: 'h' },
    },
  });
}

function int32(flag: string, text: string): number {
  if (!/^-?\d+$/.test(text)) throw new BenchUsageError(`${flag} must be a whole number, not '${text}'`);
  const n = Number(text);
  if (n < -(2 ** 31) || n > 2 ** 31 - 1) throw new BenchUsageError(`${flag} must fit an int32, not ${text}`);
  return n;
}

function integer(flag: string, text: string, min: number, max: number): number {
  if (!/^\d+$/.test(text)) throw new BenchUsageError(`${flag} must be a whole number, not '${text}'`);
  const n = Number(text);
  if (n < min || n > max) throw new BenchUsageError(`${flag} must be between ${min} and ${max}, not ${text}`);
  return n;
}

function perSecond(flag: string, text: string): number {
  if (!/^(\d+(\.\d*)?|\.\d+)$/.test(text))
    throw new BenchUsageError(`${flag} must be a number per second, not '${text}'`);
  const n = Number(text);
  if (n <= 0 || n > LIMITS.rate) {
    throw new BenchUsageError(`${flag} must be above 0 up to ${LIMITS.rate} per second, not ${text}`);
  }
  return n;
}

function seconds(flag: string, text: string, zeroOk: boolean): number {
  if (!/^(\d+(\.\d*)?|\.\d+)$/.test(text))
    throw new BenchUsageError(`${flag} must be seconds, not '${text}'`);
  const n = Number(text);
  if ((!zeroOk && n <= 0) || n > LIMITS.duration) {
    throw new BenchUsageError(
      `${flag} must be ${zeroOk ? 'from 0' : 'above 0'} up to ${LIMITS.duration} s, not ${text}`,
    );
  }
  return n;
}
