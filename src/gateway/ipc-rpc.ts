// Calls with replies over a node IPC channel (daemon <-> gateway process). Messages carry `gw`
// (their type: the gateway channel of src/child-channel.ts); a call adds `rid`, and its answer is
// `{ gw: 'result', rid, ok, value | error }`.
// Bodies travel as base64 strings: on these links JSON serialization beat 'advanced' (docs/gateway.md).
import { channelOf } from '../child-channel.js';
import { TcpdaemonError } from '../errors.js';

export interface GwMessage {
  gw: string;
  rid?: number;
  [k: string]: unknown;
}

export interface RpcPort {
  /** Sends one message; false when the channel is gone. */
  post(message: GwMessage, handle?: unknown): boolean;
}

type Handler = (message: GwMessage, handle: unknown) => unknown;

/** Thrown (as a rejection) when the other side answered with an error, or went away. */
export class RpcError extends TcpdaemonError {
  override name = 'RpcError';
  override readonly code = 'TD_ERR_RPC';
}

export class Rpc {
  private readonly waiting = new Map<
    number,
    { resolve: (v: unknown) => void; reject: (e: Error) => void; timer: NodeJS.Timeout }
  >();
  private readonly handlers = new Map<string, Handler>();
  private lastRid = 0;

  constructor(
    private readonly port: RpcPort,
    /** Ms a call may wait for its answer. */
    private readonly timeoutMs = 10_000,
  ) {}

  /** `fn` answers messages of type `gw`; what it returns (or resolves to) is the call's value. */
  on(gw: string, fn: Handler): this {
    this.handlers.set(gw, fn);
    return this;
  }

  post(message: GwMessage, handle?: unknown): boolean {
    return this.port.post(message, handle);
  }

  call<T>(message: GwMessage): Promise<T> {
    const rid = ++this.lastRid;
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiting.delete(rid);
        reject(new RpcError(`no answer to ${message.gw} within ${this.timeoutMs} ms`));
      }, this.timeoutMs);
      timer.unref();
      this.waiting.set(rid, { resolve: resolve as (v: unknown) => void, reject, timer });
      if (!this.port.post({ ...message, rid })) {
        clearTimeout(timer);
        this.waiting.delete(rid);
        reject(new RpcError(`cannot send ${message.gw}: the channel is closed`));
      }
    });
  }

  /** Feed every message that arrives on the channel; returns false for ones that are not ours. */
  receive(message: unknown, handle?: unknown): boolean {
    if (channelOf(message) !== 'gateway') {
      return false;
    }
    const m = message as GwMessage;
    if (m.gw === 'result') {
      const w = this.waiting.get(Number(m.rid));
      if (!w) return true;
      this.waiting.delete(Number(m.rid));
      clearTimeout(w.timer);
      if (m.ok) w.resolve(m.value);
      else w.reject(new RpcError(String(m.error)));
      return true;
    }
    const fn = this.handlers.get(m.gw);
    if (!fn) return false;
    const answer = (ok: boolean, valueOrError: unknown) => {
      if (m.rid === undefined) return;
      this.port.post(
        ok
          ? { gw: 'result', rid: m.rid, ok: true, value: valueOrError }
          : {
              gw: 'result',
              rid: m.rid,
              ok: false,
              error: (valueOrError as Error).message ?? String(valueOrError),
            },
      );
    };
    try {
      const result = fn(m, handle);
      if (result instanceof Promise)
        result.then(
          (v) => answer(true, v),
          (e: unknown) => answer(false, e),
        );
      else answer(true, result);
    } catch (err) {
      answer(false, err);
    }
    return true;
  }

  /** The channel is gone: every call still waiting fails. */
  closed(reason: string): void {
    for (const [rid, w] of this.waiting) {
      clearTimeout(w.timer);
      this.waiting.delete(rid);
      w.reject(new RpcError(reason));
    }
  }
}
