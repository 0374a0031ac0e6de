// What "ready" means for a worker: pluggable, because not every worker is a node process that
// speaks our protocol (the proxy supervises arbitrary backend commands).

import { connect } from 'node:net';
import type { SupervisedChild } from './child.js';
import { isProtocolMessage } from './protocol.js';

/** Resolves when the worker can take work. `signal` aborts when the worker exits or times out. */
export type Readiness = (worker: ReadinessTarget, signal: AbortSignal) => Promise<void>;

/** What a readiness check may look at. */
export interface ReadinessTarget {
  readonly slot: number;
  readonly workerId: number;
  readonly child: SupervisedChild;
}

/** Ready when the worker sends `{ tdw: 'ready' }` over IPC (node workers using worker-channel). */
export function readyOnMessage(): Readiness {
  return (worker, signal) =>
    new Promise<void>((resolve, reject) => {
      const onMessage = (m: unknown) => {
        if (isProtocolMessage(m) && m.tdw === 'ready') finish();
      };
      const onAbort = () => finish(signal.reason instanceof Error ? signal.reason : new Error('aborted'));
      function finish(err?: Error) {
        worker.child.off('message', onMessage);
        signal.removeEventListener('abort', onAbort);
        if (err) reject(err);
        else resolve();
      }
      if (signal.aborted) return onAbort();
      worker.child.on('message', onMessage);
      signal.addEventListener('abort', onAbort);
    });
}

/** Where a worker accepts connections: TCP host and port, or a unix socket path. */
export type ConnectAddress = { host: string; port: number } | { path: string };

export interface TcpReadinessOptions {
  host?: string;
  /** The port the worker listens on; may depend on the worker's slot. */
  port: number | ((worker: ReadinessTarget) => number);
  /** Between connect attempts, ms. */
  intervalMs?: number;
}

/** Ready when a TCP connect to the worker's port succeeds (backends that know nothing of us). */
export function readyOnTcpPort(opts: TcpReadinessOptions): Readiness {
  const host = opts.host ?? '127.0.0.1';
  const portOf = typeof opts.port === 'function' ? opts.port : () => opts.port as number;
  return readyWhenAccepting((worker) => ({ host, port: portOf(worker) }), opts.intervalMs);
}

/** Ready when the worker's address (TCP or unix socket) accepts a connection; retried every `intervalMs`. */
export function readyWhenAccepting(
  addressOf: (worker: ReadinessTarget) => ConnectAddress,
  intervalMs = 50,
): Readiness {
  return async (worker, signal) => {
    const address = addressOf(worker);
    while (!signal.aborted) {
      if (await tryConnect(address, signal)) return;
      await new Promise<void>((resolve) => {
        const timer = setTimeout(done, intervalMs);
        function done() {
          clearTimeout(timer);
          signal.removeEventListener('abort', done);
          resolve();
        }
        signal.addEventListener('abort', done);
      });
    }
    throw signal.reason instanceof Error ? signal.reason : new Error('aborted');
  };
}

function tryConnect(address: ConnectAddress, signal: AbortSignal): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = 'path' in address ? connect(address.path) : connect(address.port, address.host);
    const finish = (ok: boolean) => {
      signal.removeEventListener('abort', onAbort);
      socket.destroy();
      resolve(ok);
    };
    const onAbort = () => finish(false);
    signal.addEventListener('abort', onAbort);
    socket.once('connect', () => finish(true));
    socket.once('error', () => finish(false));
  });
}

/** Ready as soon as the process has started (no better signal is available). */
export function readyOnSpawn(): Readiness {
  return (worker, signal) =>
    new Promise<void>((resolve, reject) => {
      if (signal.aborted) return reject(signal.reason);
      if (worker.child.pid !== undefined) return resolve();
      worker.child.once('spawn', () => resolve());
      signal.addEventListener('abort', () => reject(signal.reason), { once: true });
    });
}
