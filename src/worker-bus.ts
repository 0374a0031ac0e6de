// Messages between the workers of one daemon (Lars' send_task): a message published in any worker
// reaches the subscribers of its topic in every worker of the daemon, the sender's own included,
// in the order each sender published them. One bus per process or thread; in a supervised worker
// the supervisor channel carries messages to the daemon, which relays them to every live worker;
// without one (IOMP -c 1, a plain library call) they are delivered in this process only.
//
// Bounded: a worker has at most MAX_UNSENT_BYTES published and not yet written to its channel;
// past it publish() rejects (BroadcastFullError) instead of queueing without end. The daemon
// bounds what it holds for each receiving worker (supervisor.ts).
import { TcpdaemonError } from './errors.js';

/** Bytes a worker may have published and not yet handed to its channel. */
export const MAX_UNSENT_BYTES = 4 * 1024 * 1024;

export class BroadcastFullError extends TcpdaemonError {
  override name = 'BroadcastFullError';
  override readonly code = 'TD_ERR_BROADCAST_FULL';
}

export type BusListener = (data: Buffer, fromWorker: number) => void;

/** How a supervised worker's bus reaches the daemon: `sent` is called once the message is written. */
export type BusUplink = (topic: string, data: Buffer, sent: () => void) => void;

export class WorkerBus {
  private readonly topics = new Map<string, Set<BusListener>>();
  private uplink: BusUplink | undefined;
  private unsent = 0;
  /** This process's worker id, as `fromWorker` of what it delivers locally. */
  private workerId = 0;

  /** Called by the worker channel once this process is a supervised worker. */
  connect(uplink: BusUplink, workerId: number): void {
    this.uplink = uplink;
    this.workerId = workerId;
  }

  /** Publishes `data` on `topic` to every worker. Resolves once it left this process (or was delivered here). */
  publish(topic: string, data: Uint8Array | string): Promise<void> {
    const bytes =
      typeof data === 'string'
        ? Buffer.from(data)
        : Buffer.from(data.buffer, data.byteOffset, data.byteLength);
    const uplink = this.uplink;
    if (!uplink) {
      const copy = Buffer.from(bytes);
      return new Promise((resolve) =>
        setImmediate(() => {
          this.deliver(topic, copy, this.workerId);
          resolve();
        }),
      );
    }
    if (this.unsent + bytes.length > MAX_UNSENT_BYTES) {
      return Promise.reject(
        new BroadcastFullError(
          `broadcast refused: ${this.unsent} bytes already wait for the channel to the daemon (bound ${MAX_UNSENT_BYTES})`,
        ),
      );
    }
    this.unsent += bytes.length;
    return new Promise((resolve) =>
      uplink(topic, bytes, () => {
        this.unsent -= bytes.length;
        resolve();
      }),
    );
  }

  /** Listens to `topic`; returns the function that stops listening. */
  subscribe(topic: string, listener: BusListener): () => void {
    let set = this.topics.get(topic);
    if (!set) {
      set = new Set();
      this.topics.set(topic, set);
    }
    set.add(listener);
    return () => {
      set.delete(listener);
      if (set.size === 0 && this.topics.get(topic) === set) this.topics.delete(topic);
    };
  }

  /** A message for this worker (relayed by the daemon, or published here without a daemon). */
  deliver(topic: string, data: Buffer, fromWorker: number): void {
    const set = this.topics.get(topic);
    if (!set) return;
    for (const listener of [...set]) {
      try {
        listener(data, fromWorker);
      } catch (err) {
        // As a throw in any event callback of handler code: the process's uncaught-exception
        // guard logs it; the other listeners still get the message.
        queueMicrotask(() => {
          throw err;
        });
      }
    }
  }

  /** Subscribers in this process, for tests and status. */
  listenerCount(topic: string): number {
    return this.topics.get(topic)?.size ?? 0;
  }
}

/**
 * This process's (or thread's) bus. Kept on globalThis: the worker's bundled entry and a handler's
 * `import 'tcpdaemon'` load separate copies of this module, and both must use one bus.
 */
const kBus = Symbol.for('tcpdaemon.workerBus');
const holder = globalThis as { [kBus]?: WorkerBus };
holder[kBus] ??= new WorkerBus();
export const workerBus: WorkerBus = holder[kBus];
