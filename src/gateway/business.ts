// The business module contract: `export default async function (msg, ctx)` run by gateway workers.
import { HandlerLoadError, loadHandler } from '../handler/load.js';
import type { Logger } from '../types.js';

export interface GatewaySession {
  /** `<gateway instance>:<n>`: unique across gateways; a valid ctx.send target while connected. */
  readonly id: string;
  /** The name the client registered, if any. */
  readonly name: string | undefined;
  readonly remoteAddress: string;
  readonly remotePort: number;
}

export interface GatewayMessage {
  readonly msgid: number;
  readonly body: Buffer;
  readonly session: GatewaySession;
}

export type DeliverResult = 'delivered' | 'stored';

export interface GatewayContext {
  /** 1..N: the worker's slot. */
  readonly workerId: number;
  /** Bound to this worker; add fields with .child(). */
  readonly logger: Logger;
  /** From `--param k=v` (or the library's `params`). */
  readonly params: Readonly<Record<string, string>>;
  /** Aborted just after the request's deadline (the client has had its timeout error by then). */
  readonly signal: AbortSignal;
  /**
   * Sends one message to another client, by session id or registered name. Resolves 'delivered'
   * (written to its connection) or 'stored' (a name that is offline: kept until it registers
   * again); rejects with the reason otherwise (unknown session, store full, ...).
   */
  send(to: string, msgid: number, body?: Uint8Array | string): Promise<DeliverResult>;
}

/** A reply: bytes (sent with the request's msgid), `{ msgid, body }`, or nothing (no reply frame). */
export type BusinessReply =
  | { msgid: number; body?: Uint8Array | string }
  | Uint8Array
  | string
  | undefined
  | null
  // biome-ignore lint/suspicious/noConfusingVoidType: `void` lets handlers that return nothing fit.
  | void;

export type BusinessHandler = (
  msg: GatewayMessage,
  ctx: GatewayContext,
) => BusinessReply | Promise<BusinessReply>;

/** The reply as msgid + bytes, undefined for none. Throws TypeError for anything else. */
export function toReply(value: unknown, requestMsgid: number): { msgid: number; body: Buffer } | undefined {
  if (value === undefined || value === null) return undefined;
  if (typeof value === 'string') return { msgid: requestMsgid, body: Buffer.from(value) };
  if (value instanceof Uint8Array) return { msgid: requestMsgid, body: asBuffer(value) };
  if (typeof value === 'object') {
    const { msgid, body } = value as { msgid?: unknown; body?: unknown };
    if (!Number.isInteger(msgid) || (msgid as number) < -0x80000000 || (msgid as number) > 0x7fffffff) {
      throw new TypeError(`the reply's msgid must be an int32, got ${JSON.stringify(msgid)}`);
    }
    if (body === undefined || body === null) return { msgid: msgid as number, body: Buffer.alloc(0) };
    if (typeof body === 'string') return { msgid: msgid as number, body: Buffer.from(body) };
    if (body instanceof Uint8Array) return { msgid: msgid as number, body: asBuffer(body) };
    throw new TypeError(`the reply's body must be a Buffer, Uint8Array or string, got ${typeof body}`);
  }
  throw new TypeError(
    `the business handler returned ${typeof value}; return a Buffer, a string, { msgid, body } or nothing`,
  );
}

export function asBuffer(u: Uint8Array): Buffer {
  return Buffer.isBuffer(u) ? u : Buffer.from(u.buffer, u.byteOffset, u.byteLength);
}

/** Loads a business module (.js .mjs .cjs .ts ...): its default export (or `tcpmain`) function. */
export async function loadBusiness(path: string): Promise<BusinessHandler> {
  try {
    return (await loadHandler(path)) as unknown as BusinessHandler;
  } catch (err) {
    if (err instanceof HandlerLoadError) {
      throw new HandlerLoadError(err.message.replace(/^handler /, 'business module '));
    }
    throw err;
  }
}
