// The one interface between the gateway's client side and its workers, and between gateways:
// requests out, replies back, worker loss, and client-to-client delivery with store-and-forward.
// Adapters: ipc.ts (embedded, the default) and nats/; index.ts picks one by the --queue name.
import type { Logger } from '../../types.js';
import type { BusinessHandler, DeliverResult } from '../business.js';
import type { SessionInfo } from '../envelope.js';
import type { Target } from '../names.js';

/** One client message on its way to a worker. */
export interface WorkRequest {
  /** Correlates the reply; unique among this gateway's pending requests. */
  readonly id: number;
  readonly msgid: number;
  readonly body: Buffer;
  readonly session: SessionInfo;
  /** What is left of the client's timeout, ms (the worker stops waiting for its handler then). */
  readonly timeoutMs: number;
}

/** What a gateway queue reports to the gateway that opened it. Must not throw. */
export interface GatewayQueueEvents {
  /** The worker's reply to request `id` (`body` undefined: the handler sent none). */
  reply(id: number, msgid: number, body: Buffer | undefined): void;
  /** The worker answered request `id` with an error. */
  fail(id: number, message: string): void;
  /** These requests were with a worker that is gone; each needs an error or one retry. */
  lost(ids: number[], reason: string): void;
  /** These requests reached no worker (the one they were addressed to had gone): send them again. */
  undelivered(ids: number[]): void;
  /** A worker has room again: dispatch what waits. */
  capacity(): void;
  /** Write a message to this gateway's session `sessionId`; false when it is not here (any more). */
  push(sessionId: string, msgid: number, body: Buffer): boolean;
  /** `name` was registered by a newer session elsewhere: `sessionId` here no longer holds it. */
  nameTaken(name: string, sessionId: string): void;
  /** A worker's ctx.send, to be delivered like a client's relay. */
  send(target: string, msgid: number, body: Buffer): Promise<DeliverResult>;
}

export interface GatewayQueue {
  /** Hands the request to a worker. False: every worker is at its bound (or none is up); retry on `capacity`. */
  dispatch(req: WorkRequest): boolean;
  /**
   * Makes `name` reach `sessionId` (newest registration wins, across gateways). Messages stored
   * for it arrive through `events.push`, oldest first, before any newer message for that name.
   */
  register(name: string, sessionId: string): Promise<void>;
  /** The session closed or dropped the name. A no-op if the name is held by another session now. */
  unregister(name: string, sessionId: string): void;
  /** Delivers to a client on another gateway, or stores it when `target` is an offline name. */
  deliver(target: Target, msgid: number, body: Buffer): Promise<DeliverResult>;
  /** Workers that can take requests now. */
  readonly workers: number;
  close(): Promise<void>;
}

export interface GatewayQueueOptions {
  /** This gateway's instance id: the prefix of its session ids. */
  instance: string;
  logger: Logger;
  /** Largest client body, bytes (links carry a little more for the envelope). */
  maxBody: number;
  /** Requests one gateway keeps outstanding at one worker. */
  perWorkerBound: number;
  /** Stored messages per offline name (NATS: the stream's per-subject limit). */
  storeMax?: number;
  /** Stored messages live this long, ms. */
  storeTtlMs?: number;
}

export interface WorkerQueueOptions {
  handler: BusinessHandler;
  workerId: number;
  logger: Logger;
  maxBody: number;
  /** Handlers running at once in this worker; more requests wait in order. */
  maxConcurrent: number;
  /** `--param k=v`, handed to the handler as ctx.params. */
  params?: Readonly<Record<string, string>>;
}

export interface WorkerQueue {
  /** Requests served so far and running now (for heartbeats). */
  counts(): { served: number; active: number };
  /** Takes no new requests, finishes those taken within `graceMs`, then closes its links. */
  retire(graceMs: number): Promise<void>;
}
