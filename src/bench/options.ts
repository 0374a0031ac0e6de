// Flags of `tcpdaemon bench`: parsing and bounds. Nothing here opens a socket; the request
// mode's files are read here (bounded), its module is loaded by request-protocol.ts.
import { readFileSync, statSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { ParamError } from '../errors.js';
import { ECHO_CODEC_NAMES, type EchoCodec, echoCodec } from './codec.js';

export const MODES = ['echo', 'connect', 'hold', 'request'] as const;
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
  /** request mode: what to send and what a correct reply is. */
  request?: RequestPlan;
  json: boolean;
}

/**
 * request mode, as plain data (it crosses to the load threads): the bytes of every request
 * unless the module builds them, what a correct reply is unless the module checks it.
 */
export interface RequestPlan {
  /** --request or --request-file. */
  request?: Uint8Array;
  /** --reply / --reply-file: the whole reply; --reply-prefix: a reply starts so and ends with `end`. */
  reply?: { exact: Uint8Array } | { prefix: Uint8Array; end: Uint8Array };
  /** file: URL of --module, which exports `request` and/or `check` (see request-protocol.ts). */
  module?: string;
  /** Bytes a reply may take before it is judged wrong (memory per connection stays bounded). */
  maxReply: number;
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
  /** bytes of a --request-file or --reply-file, and of --max-reply */
  requestFile: 64 * 1024 * 1024,
} as const;

/** Default --max-reply: bytes. */
const DEFAULT_MAX_REPLY = 64 * 1024;

export const USAGE = `usage: tcpdaemon bench (--port PORT [--host HOST] | --path SOCKET) [options]
  --mode MODE               echo: D messages in flight per connection, every echoed byte verified
                            connect: connect, send S bytes, read the echo, close; repeat (N loops)
                            hold: open N connections, hold them idle, close
                            request: D requests in flight per connection, every reply checked
                            (any protocol; see the request flags below) (default: echo)
  --connections N           connections or connect loops (default 50, at most ${LIMITS.connections});
                            with --rate, the most connect cycles in flight at once
  --rate R                  connect mode, open loop: start R connect cycles per second (over all
                            threads, fractions allowed, at most ${LIMITS.rate}) on a fixed schedule,
                            whatever earlier ones are doing. Latency runs from each start's due
                            time to its last echoed byte, so a start that waits shows as latency.
                            A start due while N are in flight is late: it waits for a free slot,
                            and is counted (exit status 2, like errors)
  --depth D                 messages in flight per connection, echo and request (default 1, at most ${LIMITS.depth})
  --size S                  bytes per message (default 64, at most ${LIMITS.size})
  --duration SECONDS        load time, fractions allowed (default 5); in hold mode the ramp limit
  --hold-seconds SECONDS    hold mode: idle time once all connections are open (default 5)
  --threads T               load threads (default: cores, ${availableParallelism()})
  --codec NAME              message framing, echo mode: ${ECHO_CODEC_NAMES.join(', ')} (default raw);
                            the server must echo each frame (seq: as its REPLY)
  --msgid N                 msgid of every message, codecs that carry one (default 1)
request mode: one request source and one reply check (TEXT takes \\n \\r \\t \\0 \\\\ \\xHH):
  --request TEXT            the bytes of every request
  --request-file FILE       the bytes of every request, from a file
  --reply TEXT              the whole correct reply
  --reply-file FILE         the whole correct reply, from a file
  --reply-prefix TEXT       a correct reply starts with TEXT and ends at the first --reply-end
  --reply-end TEXT          where a reply ends, with --reply-prefix (default \\n)
  --module FILE             an ES module exporting request(seq, conn) -> string | Uint8Array (the
                            request), and/or check(data, seq, conn) -> { done: false } (more bytes
                            needed) or { done: true, ok, used } (the first \`used\` bytes of data are
                            the reply to request \`seq\` of connection \`conn\`; ok false: wrong)
  --max-reply BYTES         a reply still unfinished at this size is wrong (default ${DEFAULT_MAX_REPLY},
                            at most ${LIMITS.requestFile})
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
  const request = requestPlan(values, mode);
  if (request && (values.codec !== undefined || values.size !== undefined)) {
    throw new BenchUsageError(
      '--codec and --size do not go with --mode request (its request flags say what is sent)',
    );
  }
  const inFlight = request
    ? connections * depth * Math.max(request.request?.length ?? 0, request.maxReply)
    : connections * (mode === 'echo' ? depth : 1) * size;
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
    ...(request ? { request } : {}),
    json: values.json ?? false,
  };
}

type Values = ReturnType<typeof parse>['values'];

const REQUEST_FLAGS = [
  'request',
  'request-file',
  'reply',
  'reply-file',
  'reply-prefix',
  'reply-end',
  'module',
  'max-reply',
] as const;

/**
 * The request mode's flags: at most one request source and one reply check among the flags
 * (the module may give the other; request-protocol.ts checks that each is given exactly once).
 */
function requestPlan(values: Values, mode: string): RequestPlan | undefined {
  const given = REQUEST_FLAGS.filter((f) => values[f] !== undefined);
  if (mode !== 'request') {
    if (given.length > 0)
      throw new BenchUsageError(`--${given[0]} goes with --mode request only, not with ${mode}`);
    return undefined;
  }
  const requests = (['request', 'request-file'] as const).filter((f) => values[f] !== undefined);
  const replies = (['reply', 'reply-file', 'reply-prefix'] as const).filter((f) => values[f] !== undefined);
  if (requests.length > 1) throw new BenchUsageError('give --request or --request-file, not both');
  if (replies.length > 1)
    throw new BenchUsageError(
      `give one of --reply, --reply-file, --reply-prefix, not ${replies.map((f) => `--${f}`).join(' and ')}`,
    );
  if (values['reply-end'] !== undefined && values['reply-prefix'] === undefined) {
    throw new BenchUsageError('--reply-end goes with --reply-prefix');
  }
  if (values.module === undefined && (requests.length === 0 || replies.length === 0)) {
    throw new BenchUsageError(
      '--mode request needs a request (--request, --request-file or --module) and a reply check (--reply, --reply-file, --reply-prefix or --module)',
    );
  }
  const maxReply =
    values['max-reply'] === undefined
      ? DEFAULT_MAX_REPLY
      : integer('--max-reply', values['max-reply'], 1, LIMITS.requestFile);
  const plan: RequestPlan = { maxReply };
  if (values.request !== undefined) plan.request = bytesFlag('--request', values.request);
  if (values['request-file'] !== undefined) plan.request = fileFlag('--request-file', values['request-file']);
  if (values.reply !== undefined) plan.reply = { exact: bytesFlag('--reply', values.reply) };
  if (values['reply-file'] !== undefined)
    plan.reply = { exact: fileFlag('--reply-file', values['reply-file']) };
  if (values['reply-prefix'] !== undefined) {
    const end = bytesFlag('--reply-end', values['reply-end'] ?? '\\n');
    plan.reply = { prefix: unescapeBytes('--reply-prefix', values['reply-prefix']), end };
  }
  if (values.module !== undefined) {
    if (values.module === '') throw new BenchUsageError('--module must not be empty');
    plan.module = pathToFileURL(resolve(values.module)).href;
  }
  return plan;
}

/** A TEXT flag's bytes, not empty. */
function bytesFlag(flag: string, text: string): Uint8Array {
  const bytes = unescapeBytes(flag, text);
  if (bytes.length === 0) throw new BenchUsageError(`${flag} must not be empty`);
  return bytes;
}

/**
 * TEXT as bytes: UTF-8, with \n \r \t \0 \\ and \xHH (one byte) decoded, so a shell argument
 * can carry a line protocol's line ends.
 */
export function unescapeBytes(flag: string, text: string): Uint8Array {
  const out: number[] = [];
  const utf8 = new TextEncoder();
  for (let i = 0; i < text.length; i++) {
    const c = text[i]!;
    if (c !== '\\') {
      const code = text.codePointAt(i)!;
      if (code > 0xffff) i++;
      out.push(...utf8.encode(String.fromCodePoint(code)));
      continue;
    }
    const e = text[++i];
    const simple: Record<string, number> = { n: 0x0a, r: 0x0d, t: 0x09, '0': 0, '\\': 0x5c };
    if (e !== undefined && e in simple) out.push(simple[e]!);
    else if (e === 'x' && /^[0-9a-fA-F]{2}$/.test(text.slice(i + 1, i + 3))) {
      out.push(Number.parseInt(text.slice(i + 1, i + 3), 16));
      i += 2;
    } else {
      throw new BenchUsageError(`${flag}: unknown escape '\\${e ?? ''}' (known: \\n \\r \\t \\0 \\\\ \\xHH)`);
    }
  }
  return Uint8Array.from(out);
}

/** A file's bytes, not empty and at most LIMITS.requestFile. */
function fileFlag(flag: string, path: string): Uint8Array {
  let bytes: Buffer;
  try {
    const size = statSync(path).size;
    if (size > LIMITS.requestFile)
      throw new BenchUsageError(`${flag} ${path}: ${size} bytes, more than ${LIMITS.requestFile}`);
    bytes = readFileSync(path);
  } catch (err) {
    if (err instanceof BenchUsageError) throw err;
    throw new BenchUsageError(
      `${flag} ${path}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`,
    );
  }
  if (bytes.length === 0) throw new BenchUsageError(`${flag} ${path} is empty`);
  return new Uint8Array(bytes);
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
      request: { type: 'string' },
      'request-file': { type: 'string' },
      reply: { type: 'string' },
      'reply-file': { type: 'string' },
      'reply-prefix': { type: 'string' },
      'reply-end': { type: 'string' },
      module: { type: 'string' },
      'max-reply': { type: 'string' },
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
