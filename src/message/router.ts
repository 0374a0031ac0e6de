// msgid -> handler, as Lars' msg_router: a msgid registered twice is an error when the routes
// are defined, not when a message comes.

/** What both ends of a message connection (and a UDP sender) offer a route handler. */
export interface MessagePeer {
  /** Unique in this process (the daemon's connection id on a server). */
  readonly id: string;
  /** Per-connection scratch space (Lars' `param`). A UDP peer gets a fresh one per datagram. */
  readonly state: Record<string, unknown>;
  readonly remoteAddress: string;
  readonly remotePort: number;
  /** Sends one frame; false when it was not sent (closed) or the socket is past its high-water mark. */
  send(msgid: number, body?: Uint8Array | string): boolean;
  /** Ends the connection gracefully (queued output is flushed). No-op for UDP. */
  close(reason?: string): void;
}

/**
 * What a handler may return: sent back as the reply (see docs/protocol.md), or nothing. A body
 * replies with the request's msgid; `{ msgid, body }` replies with a msgid of its own.
 */
export type RouteReply =
  | Uint8Array
  | string
  | { msgid: number; body: Uint8Array | string }
  | undefined
  | null
  // biome-ignore lint/suspicious/noConfusingVoidType: `void` lets handlers that return nothing fit.
  | void;

export type RouteHandler<C = MessagePeer> = (
  body: Buffer,
  msgid: number,
  conn: C,
) => RouteReply | Promise<RouteReply>;

/** Routes as an object literal, a Map or [msgid, handler] pairs (pairs and Maps catch duplicates at run time). */
export type RouteTable<C = MessagePeer> =
  | Readonly<Record<number, RouteHandler<C>>>
  | ReadonlyMap<number, RouteHandler<C>>
  | ReadonlyArray<readonly [number, RouteHandler<C>]>;

function checkMsgid(msgid: unknown): number {
  const n = typeof msgid === 'string' && /^-?(0|[1-9]\d*)$/.test(msgid) ? Number(msgid) : msgid;
  if (typeof n !== 'number' || !Number.isInteger(n) || n < -0x80000000 || n > 0x7fffffff) {
    throw new RangeError(`route msgid must be an int32, got ${JSON.stringify(msgid)}`);
  }
  return n;
}

export class Router<C = MessagePeer> {
  private readonly table = new Map<number, RouteHandler<C>>();
  readonly fallback: RouteHandler<C> | undefined;

  constructor(routes?: RouteTable<C> | Router<C>, fallback?: RouteHandler<C>) {
    if (fallback !== undefined && typeof fallback !== 'function') {
      throw new TypeError('fallback must be a function');
    }
    if (routes instanceof Router) {
      for (const [msgid, handler] of routes.table) this.add(msgid, handler);
      fallback ??= routes.fallback;
    } else if (routes instanceof Map || Array.isArray(routes)) {
      for (const [msgid, handler] of routes as Iterable<readonly [number, RouteHandler<C>]>) {
        this.add(msgid, handler);
      }
    } else if (routes !== undefined) {
      for (const [key, handler] of Object.entries(routes)) this.add(checkMsgid(key), handler);
    }
    this.fallback = fallback;
  }

  /** Registers one route; throws on a msgid already registered, a non-int32 msgid or a non-function. */
  add(msgid: number, handler: RouteHandler<C>): this {
    const id = checkMsgid(msgid);
    if (typeof handler !== 'function') throw new TypeError(`route ${id}: handler must be a function`);
    if (this.table.has(id)) throw new Error(`msgid ${id} is registered twice`);
    this.table.set(id, handler);
    return this;
  }

  /** The route for msgid, else the fallback, else undefined. */
  get(msgid: number): RouteHandler<C> | undefined {
    return this.table.get(msgid) ?? this.fallback;
  }

  get msgids(): number[] {
    return [...this.table.keys()];
  }
}

/** A handler's return value as bytes to send, undefined for nothing; throws TypeError for anything else. */
/** A handler's return value as a reply: its bytes, and its own msgid when it named one. */
export function replyParts(value: unknown): { msgid: number | undefined; bytes: Uint8Array } | undefined {
  if (value === undefined || value === null) return undefined;
  if (value instanceof Uint8Array) return { msgid: undefined, bytes: value };
  if (typeof value === 'string') return { msgid: undefined, bytes: Buffer.from(value) };
  if (typeof value === 'object' && 'msgid' in value && 'body' in value) {
    const { msgid, body } = value as { msgid: unknown; body: unknown };
    if (Number.isInteger(msgid) && (body instanceof Uint8Array || typeof body === 'string')) {
      return { msgid: msgid as number, bytes: typeof body === 'string' ? Buffer.from(body) : body };
    }
  }
  throw new TypeError(
    `a route handler returned ${typeof value}; return a Buffer, Uint8Array, string, { msgid, body } or nothing`,
  );
}

export function isThenable(value: unknown): value is PromiseLike<unknown> {
  return (
    value !== null &&
    (typeof value === 'object' || typeof value === 'function') &&
    typeof (value as { then?: unknown }).then === 'function'
  );
}
