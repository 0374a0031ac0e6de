// Request mode's protocol: the bytes of each request, and how the bytes a connection reads are cut
// into replies and judged. Built from the flags' plan (a fixed request; a fixed reply or a prefix
// and an end) and, with --module, from the user's module, which may export either or both parts:
//
//   export function request(seq, conn) { return `GET k${conn}\n`; }      // string or Uint8Array
//   export function check(data, seq, conn) {                              // data: a Buffer
//     const end = data.indexOf(10);
//     if (end < 0) return { done: false };                               // more bytes needed
//     return { done: true, ok: data.toString('latin1', 0, end) === 'VALUE v', used: end + 1 };
//   }
//
// `seq` counts the requests of one connection from 0 (a reconnected connection starts again at 0);
// `conn` is the connection's number, distinct over all load threads. Replies come in request order.
import { TcpdaemonError } from '../errors.js';
import { BenchUsageError, type RequestPlan } from './options.js';

/** What a reply check says of the bytes at the start of `data`. */
export type CheckResult = { done: false } | { done: true; ok: boolean; used: number };

export interface RequestProtocol {
  /** Wire bytes of request `seq` of connection `conn`. */
  request(seq: number, conn: number): Buffer;
  /**
   * Judges the start of `data` (never empty) as the reply to request `seq` of connection `conn`:
   * not finished yet, or finished after `used` bytes (1..data.length) and right or wrong.
   */
  check(data: Buffer, seq: number, conn: number): CheckResult;
  /**
   * A wrong reply still ends where the check says (prefix and end, a module's check), so the
   * connection goes on with the next reply; false for a fixed reply, where the first wrong byte
   * loses the framing and the connection is closed and opened again.
   */
  readonly wrongRepliesFramed: boolean;
}

/** A --module function broke its contract while the load ran (threw, or returned a wrong shape). */
export class BenchModuleError extends TcpdaemonError {
  override name = 'BenchModuleError';
  override readonly code = 'TD_ERR_BENCH_MODULE';
}

type RequestFn = (seq: number, conn: number) => unknown;
type CheckFn = (data: Buffer, seq: number, conn: number) => unknown;

/**
 * The protocol of `plan`, its module imported. Throws BenchUsageError when the module cannot be
 * loaded, or when the request or the check is given twice (flag and module) or not at all.
 */
export async function loadProtocol(plan: RequestPlan): Promise<RequestProtocol> {
  let requestFn: RequestFn | undefined;
  let checkFn: CheckFn | undefined;
  const where = plan.module ? `--module ${decodeURIComponent(new URL(plan.module).pathname)}` : '';
  if (plan.module) {
    let mod: Record<string, unknown>;
    try {
      mod = (await import(plan.module)) as Record<string, unknown>;
    } catch (err) {
      throw new BenchUsageError(`${where}: cannot load it: ${oneLine(err)}`);
    }
    for (const name of ['request', 'check'] as const) {
      if (mod[name] !== undefined && typeof mod[name] !== 'function') {
        throw new BenchUsageError(`${where}: its export '${name}' is a ${typeof mod[name]}, not a function`);
      }
    }
    requestFn = mod.request as RequestFn | undefined;
    checkFn = mod.check as CheckFn | undefined;
    if (!requestFn && !checkFn) throw new BenchUsageError(`${where} exports neither request nor check`);
  }
  if (requestFn && plan.request) {
    throw new BenchUsageError(`${where} exports request: do not also give --request or --request-file`);
  }
  if (checkFn && plan.reply) {
    throw new BenchUsageError(
      `${where} exports check: do not also give --reply, --reply-file or --reply-prefix`,
    );
  }
  if (!requestFn && !plan.request) {
    throw new BenchUsageError(`${where} exports no request: give --request or --request-file`);
  }
  if (!checkFn && !plan.reply) {
    throw new BenchUsageError(`${where} exports no check: give --reply, --reply-file or --reply-prefix`);
  }
  return {
    request: requestFn ? moduleRequest(requestFn, where) : fixedRequest(toBuffer(plan.request!)),
    check: checkFn ? moduleCheck(checkFn, where) : planCheck(plan.reply!),
    wrongRepliesFramed: checkFn !== undefined || !('exact' in plan.reply!),
  };
}

function fixedRequest(bytes: Buffer): RequestProtocol['request'] {
  return () => bytes;
}

function moduleRequest(fn: RequestFn, where: string): RequestProtocol['request'] {
  return (seq, conn) => {
    const r = call(() => fn(seq, conn), `${where}: request(${seq}, ${conn})`);
    if (typeof r === 'string') return Buffer.from(r);
    if (r instanceof Uint8Array && r.length > 0) return toBuffer(r);
    throw new BenchModuleError(
      `${where}: request(${seq}, ${conn}) returned ${describe(r)}, not a non-empty string or Uint8Array`,
    );
  };
}

function moduleCheck(fn: CheckFn, where: string): RequestProtocol['check'] {
  return (data, seq, conn) => {
    const r = call(() => fn(data, seq, conn), `${where}: check(<${data.length} bytes>, ${seq}, ${conn})`);
    const v = r as { done?: unknown; ok?: unknown; used?: unknown } | null | undefined;
    if (v?.done === false) return NOT_DONE;
    if (
      v?.done === true &&
      typeof v.ok === 'boolean' &&
      Number.isInteger(v.used) &&
      (v.used as number) >= 1 &&
      (v.used as number) <= data.length
    ) {
      return { done: true, ok: v.ok, used: v.used as number };
    }
    throw new BenchModuleError(
      `${where}: check(<${data.length} bytes>, ${seq}, ${conn}) returned ${describe(r)}, not { done: false } or { done: true, ok: boolean, used: 1..${data.length} }`,
    );
  };
}

/** The flags' check: a whole fixed reply, or a prefix and an end. */
function planCheck(reply: NonNullable<RequestPlan['reply']>): RequestProtocol['check'] {
  if ('exact' in reply) {
    const expected = toBuffer(reply.exact);
    return (data) => {
      const n = Math.min(data.length, expected.length);
      // A wrong byte is wrong at once; the rest of the reply need not arrive.
      if (data.compare(expected, 0, n, 0, n) !== 0) return { done: true, ok: false, used: n };
      return n === expected.length ? { done: true, ok: true, used: n } : NOT_DONE;
    };
  }
  const prefix = toBuffer(reply.prefix);
  const end = toBuffer(reply.end);
  return (data) => {
    const n = Math.min(data.length, prefix.length);
    if (data.compare(prefix, 0, n, 0, n) !== 0) {
      // Wrong from its start: the reply still runs to its end, so the next one is found.
      const at = data.indexOf(end);
      return at < 0 ? NOT_DONE : { done: true, ok: false, used: at + end.length };
    }
    const at = data.indexOf(end, prefix.length);
    return at < 0 ? NOT_DONE : { done: true, ok: true, used: at + end.length };
  };
}

const NOT_DONE: CheckResult = { done: false };

function call(fn: () => unknown, what: string): unknown {
  try {
    return fn();
  } catch (err) {
    throw new BenchModuleError(`${what} threw: ${oneLine(err)}`);
  }
}

/** A Uint8Array (as it arrives from the main thread) as a Buffer over the same bytes. */
function toBuffer(bytes: Uint8Array): Buffer {
  return Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length);
}

function describe(v: unknown): string {
  if (v === null) return 'null';
  if (v instanceof Uint8Array) return `${v.length} bytes`;
  if (typeof v === 'object') {
    try {
      return JSON.stringify(v).slice(0, 80);
    } catch {
      return 'an object';
    }
  }
  return typeof v === 'string' ? JSON.stringify(v.slice(0, 40)) : String(v);
}

function oneLine(err: unknown): string {
  return String((err as Error)?.message ?? err).replace(/\s*\n\s*/g, ' ');
}
