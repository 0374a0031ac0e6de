// LF and IF: the daemon accepts (paused, so no byte is read before the worker does) and hands each
// connection to a free worker process over IPC; while none is free, connections wait in the
// daemon, accepted, up to a bound.
import type { Socket } from 'node:net';
import { type AddressGate, isRefusal } from '../address-gate.js';
import { refused } from '../close-reasons.js';
import type { Supervisor, WorkerHandle } from '../supervisor/supervisor.js';
import { ThrottledCount } from '../throttled-count.js';
import type { Logger } from '../types.js';
import type { ToWorker } from '../worker/messages.js';
import { openHandoffWarmup } from './handoff-warmup.js';
import type { ModelHost, RunningModel } from './model.js';
import { startWorkers, supervision } from './worker-pool.js';

/**
 * Feeds the daemon's accepted sockets to `handoff`, gives it the supervisor's workers as they come
 * into and go out of service, and starts them (failing fast if they cannot start).
 */
export async function serveByHandoff(
  host: ModelHost,
  supervisor: Supervisor,
  handoff: Handoff,
): Promise<RunningModel> {
  const server = host.server;
  if (!server) throw new Error(`${host.params.model} needs the listening server`);
  const warmup = await openHandoffWarmup().catch((err: Error) => {
    host.logger.warn(
      { err: err.message },
      'no loopback socket to warm new workers with; their first connection is slower',
    );
    return undefined;
  });
  supervisor.on('ready', (w) => {
    warmup?.warm(w);
    handoff.add(w);
  });
  supervisor.on('retire', (w) => handoff.remove(w));
  supervisor.on('exit', (w) => handoff.exited(w));
  server.on('connection', (socket) => handoff.offer(socket));
  await startWorkers(supervisor);
  return handoffRunning(host, supervisor, handoff, warmup);
}

/**
 * The running model of a daemon whose waiting connections a Handoff holds (LF, IF). `also` adds what
 * the model itself must stop first or reconfigure too (LF: its accept turns).
 */
export function handoffRunning(
  host: ModelHost,
  supervisor: Supervisor,
  handoff: Handoff,
  warmup: { close(): void } | undefined,
  also: { close?(): void; reconfigure?(): void } = {},
): RunningModel {
  return {
    get connections() {
      return handoff.connections;
    },
    async close(deadlineMs) {
      also.close?.();
      const closed = handoff.closeWaiting();
      if (closed > 0) host.logger.warn({ count: closed }, 'stopping: waiting connections closed');
      await supervisor.stop(deadlineMs);
      warmup?.close();
    },
    reopenLogs: () => supervisor.broadcast({ tdw: 'reopen-log' }),
    status: () => ({
      workers: supervisor.status(),
      waiting: handoff.waitingCount,
      reports: supervisor.reports(),
    }),
    // New workers load the handler from disk; connections being served keep their workers.
    reload: async () => {
      await supervisor.reload();
    },
    reconfigure: () => {
      const { params } = host;
      supervisor.reconfigure(supervision(params));
      handoff.setLimits(handoffLimits(params));
      also.reconfigure?.();
    },
  };
}

/** The daemon's limits on connections handed to workers, from the parameters. */
export function handoffLimits(
  params: ModelHost['params'],
): Pick<HandoffOptions, 'maxConnections' | 'maxWaiting' | 'waitTimeoutMs'> {
  return {
    maxConnections: params.maxConnections,
    maxWaiting: params.maxWaiting,
    waitTimeoutMs: params.waitTimeout * 1000,
  };
}

export interface HandoffOptions {
  logger: Logger;
  /** Busy plus waiting connections above which new ones are closed at once; 0 = no limit. */
  maxConnections: number;
  /** Connections that may wait for a free worker; more are closed at once. */
  maxWaiting: number;
  /** Ms a connection may wait for a free worker, then it is closed; 0 = no limit. */
  waitTimeoutMs?: number;
  /** Workers serving at once (IF: -c N); default: as many as are free. */
  maxBusy?: number;
  /** Called as `w` gets a connection, before it is sent (IF: take w out of its supervisor slot). */
  onHandout?: (w: WorkerHandle) => void;
  /**
   * --max-conns-per-ip, --max-conn-rate-per-ip: checked after the limits above; a counted
   * connection is released when its worker is done with it (LF: idle; IF, or a worker that
   * retires or crashes: its exit).
   */
  addressGate?: AddressGate;
}

/** A connection waiting for a worker, and when its wait ends (Date.now() ms; Infinity = never). */
interface Waiting {
  socket: Socket;
  until: number;
  /** The address it counts against (addressGate), undefined when it counts against none. */
  address: string | undefined;
}

/** Free workers in the order they became free, busy ones, and the connections waiting for one. */
export class Handoff {
  private free: WorkerHandle[] = [];
  private readonly busy = new Set<WorkerHandle>();
  /** Oldest first: every wait is as long, so the head's ends first. */
  private readonly waiting: Waiting[] = [];
  private readonly maxBusy: number;
  private readonly drops: ThrottledCount;
  private readonly queueFull: ThrottledCount;
  private readonly waitedTooLong: ThrottledCount;
  /** Armed for the head's `until` while connections wait. */
  private waitTimer: NodeJS.Timeout | undefined;
  /** With addressGate: the address each busy worker's connection counts against. */
  private readonly held: Map<WorkerHandle, string> | undefined;

  constructor(private readonly opts: HandoffOptions) {
    this.maxBusy = opts.maxBusy ?? Number.POSITIVE_INFINITY;
    if (opts.addressGate) this.held = new Map();
    this.drops = new ThrottledCount(opts.logger, 'connection refused: --max-connections reached');
    this.queueFull = new ThrottledCount(
      opts.logger,
      'connection refused: no worker free and --max-waiting connections wait already',
    );
    this.waitedTooLong = new ThrottledCount(
      opts.logger,
      'connection closed: waited --wait-timeout for a free worker',
    );
  }

  /** A config reload: new limits for connections offered from now on (waiting ones keep their deadline). */
  setLimits(limits: Pick<HandoffOptions, 'maxConnections' | 'maxWaiting' | 'waitTimeoutMs'>): void {
    Object.assign(this.opts, limits);
  }

  /** Connections accepted and waiting for a free worker. */
  get waitingCount(): number {
    return this.waiting.length;
  }

  /** Connections being served plus those waiting. */
  get connections(): number {
    return this.busy.size + this.waiting.length;
  }

  /** `w` can take a connection. */
  add(w: WorkerHandle): void {
    if (this.busy.has(w) || this.free.includes(w)) return;
    this.free.push(w);
    this.pump();
  }

  /** `w` takes no more connections (retiring, gone, or spent); its place may go to another. */
  remove(w: WorkerHandle): void {
    this.free = this.free.filter((x) => x !== w);
    if (this.busy.delete(w)) this.pump();
  }

  /** `w` has exited: as remove(), and the connection it served is over. */
  exited(w: WorkerHandle): void {
    this.remove(w);
    if (this.held !== undefined) this.releaseHeld(w);
  }

  /** `w`'s connection is over and it can take the next (LF). */
  release(w: WorkerHandle): void {
    if (!this.busy.delete(w)) return;
    if (this.held !== undefined) this.releaseHeld(w);
    this.free.push(w);
    this.pump();
  }

  private releaseHeld(w: WorkerHandle): void {
    const address = this.held!.get(w);
    if (address === undefined) return;
    this.held!.delete(w);
    this.opts.addressGate!.release(address);
  }

  /** A counted connection that goes nowhere (closed while waiting, or on stop). */
  private dropped(waited: Waiting): void {
    if (waited.address !== undefined) this.opts.addressGate!.release(waited.address);
  }

  /** `w` took a connection itself (LF: accepted on its copy of the socket): it counts as busy. */
  taken(w: WorkerHandle): void {
    if (this.busy.has(w)) return;
    this.free = this.free.filter((x) => x !== w);
    this.busy.add(w);
  }

  /** `w` is free, busy before or not: a waiting connection goes to it, else it stays free. */
  idle(w: WorkerHandle): void {
    this.busy.delete(w);
    if (this.held !== undefined) this.releaseHeld(w);
    this.add(w);
  }

  /** A free worker taken out of the pool, when no connection waits (LF lets it accept itself). */
  claimFree(): WorkerHandle | undefined {
    return this.waiting.length === 0 ? this.free.shift() : undefined;
  }

  /** Workers serving a connection (LF: those that reported theirs). */
  get busyCount(): number {
    return this.busy.size;
  }

  offer(socket: Socket): void {
    const { maxConnections, maxWaiting } = this.opts;
    if (maxConnections > 0 && this.connections >= maxConnections) {
      refused('max_connections');
      this.drops.add({ max: maxConnections, remote: socket.remoteAddress });
      socket.destroy();
      return;
    }
    if (!this.canHandOut() && this.waiting.length >= maxWaiting) {
      refused('queue_full');
      this.queueFull.add({ waiting: maxWaiting, busy: this.busy.size, remote: socket.remoteAddress });
      socket.destroy();
      return;
    }
    let address: string | undefined;
    const gate = this.opts.addressGate;
    if (gate !== undefined) {
      const a = gate.admit(socket.remoteAddress);
      if (isRefusal(a)) {
        gate.refuse(socket, socket.remoteAddress!, a);
        return;
      }
      if (a === 'counted') address = socket.remoteAddress;
    }
    socket.on('error', () => socket.destroy());
    const waitMs = this.opts.waitTimeoutMs ?? 0;
    this.waiting.push({
      socket,
      until: waitMs > 0 ? Date.now() + waitMs : Number.POSITIVE_INFINITY,
      address,
    });
    this.pump();
    this.armWaitTimer();
  }

  /** On stop: connections still waiting will not be served. */
  closeWaiting(): number {
    clearTimeout(this.waitTimer);
    this.waitTimer = undefined;
    const left = this.waiting.splice(0);
    for (const w of left) {
      w.socket.destroy();
      this.dropped(w);
    }
    return left.length;
  }

  /** Closes the connections whose wait is over, then waits for the next one's. */
  private expireWaiting = (): void => {
    this.waitTimer = undefined;
    const now = Date.now();
    while (this.waiting.length > 0 && this.waiting[0]!.until <= now) {
      const waited = this.waiting.shift()!;
      const { socket } = waited;
      this.dropped(waited);
      if (socket.destroyed) continue;
      refused('wait_timeout');
      this.waitedTooLong.add({ waitTimeoutMs: this.opts.waitTimeoutMs, remote: socket.remoteAddress });
      socket.destroy();
    }
    this.armWaitTimer();
  };

  private armWaitTimer(): void {
    const head = this.waiting[0];
    if (this.waitTimer !== undefined || head === undefined || head.until === Number.POSITIVE_INFINITY) return;
    this.waitTimer = setTimeout(this.expireWaiting, Math.max(0, head.until - Date.now()));
    this.waitTimer.unref();
  }

  private canHandOut(): boolean {
    return this.free.length > 0 && this.busy.size < this.maxBusy;
  }

  private pump(): void {
    while (this.canHandOut() && this.waiting.length > 0) {
      const waited = this.waiting.shift()!;
      const { socket } = waited;
      if (socket.destroyed) {
        this.dropped(waited);
        continue;
      }
      const w = this.free.shift()!;
      this.busy.add(w);
      if (waited.address !== undefined) this.held!.set(w, waited.address);
      this.opts.onHandout?.(w);
      const msg: ToWorker = { tdm: 'conn' };
      // keepOpen: our copy is closed as soon as the socket is on its way, not when the worker
      // acknowledges it; if the worker dies first, the kernel drops its copy and the peer sees
      // the connection end at once instead of hanging on a copy we would never close.
      w.send(msg, socket, { keepOpen: true }).then(
        () => socket.destroy(),
        () => {
          // The worker is going away (its exit removes it); the connection goes to another.
          this.busy.delete(w);
          // Not held any more: w's exit came first and released it; it waits on uncounted.
          if (waited.address !== undefined && !this.held!.delete(w)) waited.address = undefined;
          if (socket.destroyed) {
            this.dropped(waited);
            return;
          }
          this.waiting.unshift(waited);
          queueMicrotask(() => this.pump());
        },
      );
    }
  }
}
