// --max-conns-per-ip and --max-conn-rate-per-ip where workers accept from a shared socket (IOMP
// -c N, TLF threads): a limit per address must hold across all workers, so the daemon's one
// AddressGate decides. Worker half: before serving a new connection, ask (one round trip over the
// supervisor channel); when a counted one closes, say so (batched per event-loop turn). Daemon
// half: answer from the gate, remember what each worker holds, release it when the worker exits.
// Set up only when a limit is on; with both off no message is sent.
import type { Socket } from 'node:net';
import type { AddressGate } from './address-gate.js';
import { type Admission, isRefusal } from './address-limits.js';
import type { Supervisor, WorkerHandle } from './supervisor/supervisor.js';
import { MAX_TIMER_MS } from './timer-limit.js';
import { type FromWorker, isModelMessage, type ToWorker } from './worker/messages.js';

interface Pending {
  socket: Socket;
  address: string;
  serve: (socket: Socket) => void;
  dropped: (() => void) | undefined;
}

/** A connection waiting for its answer may reset meanwhile: no crash for that. */
function ignoreError(): void {}

/** The worker half. `send` writes a message to the daemon (rejects when there is no channel). */
export class AdmissionClient {
  private seq = 0;
  /** Connections accepted and waiting for the daemon's answer, by request id. */
  private readonly pending = new Map<number, Pending>();
  private releases: string[] = [];
  /** Waiting in settled(). */
  private settledWaiters: (() => void)[] = [];

  constructor(private readonly send: (m: FromWorker) => Promise<void>) {}

  /**
   * Asks the daemon about `socket`; calls `serve` with it once admitted, closes it if refused.
   * `dropped` is called instead of `serve` when the socket is closed unserved (LF: the turn is over).
   */
  admit(socket: Socket, serve: (socket: Socket) => void, dropped?: () => void): void {
    const address = socket.remoteAddress;
    if (address === undefined) {
      socket.destroy(); // the peer is gone already
      dropped?.();
      return;
    }
    const id = ++this.seq;
    socket.on('error', ignoreError);
    this.pending.set(id, { socket, address, serve, dropped });
    this.send({ tdm: 'admit', id, address }).catch(() => {
      this.forget(id);
      socket.destroy();
      dropped?.();
    });
  }

  /** The daemon's answer to an admit. */
  answer(id: number, admission: Admission): void {
    const p = this.pending.get(id);
    if (p === undefined) return;
    this.forget(id);
    const { socket, address } = p;
    socket.off('error', ignoreError);
    if (isRefusal(admission)) {
      socket.destroy(); // the daemon logged it
      p.dropped?.();
      return;
    }
    if (admission === 'counted') {
      if (socket.destroyed) {
        this.release(address);
        p.dropped?.();
        return;
      }
      socket.once('close', () => this.release(address));
    }
    if (!socket.destroyed) p.serve(socket);
    else p.dropped?.();
  }

  /** Connections waiting for an answer (stopping: they are closed). */
  closePending(): void {
    for (const p of this.pending.values()) p.socket.destroy();
    this.pending.clear();
    this.forget(0);
  }

  /**
   * Stopping: waits up to `timeoutMs` for the answers still to come (each connection is served
   * or refused by then), then closes what still waits. A retiring worker drains after this, so
   * a connection it accepted just before is served, not lost.
   */
  async finish(timeoutMs: number): Promise<void> {
    if (this.pending.size > 0) {
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([
        new Promise<void>((resolve) => this.settledWaiters.push(resolve)),
        new Promise<void>((resolve) => {
          timer = setTimeout(resolve, Math.min(timeoutMs, MAX_TIMER_MS));
        }),
      ]);
      clearTimeout(timer);
    }
    this.closePending();
  }

  private forget(id: number): void {
    this.pending.delete(id);
    if (this.pending.size === 0) for (const resolve of this.settledWaiters.splice(0)) resolve();
  }

  private release(address: string): void {
    if (this.releases.length === 0) setImmediate(this.flush);
    this.releases.push(address);
  }

  private readonly flush = (): void => {
    const addresses = this.releases;
    this.releases = [];
    this.send({ tdm: 'release', addresses }).catch(() => undefined);
  };
}

/** The daemon half: answers the supervisor's workers from `gate`. */
export function serveAdmissions(supervisor: Supervisor, gate: AddressGate): void {
  supervisor.on('message', (w: WorkerHandle, m: unknown) => {
    if (!isModelMessage(m)) return;
    const msg = m as FromWorker;
    if (msg.tdm === 'admit') {
      if (typeof msg.address !== 'string' || typeof msg.id !== 'number') return;
      const admission = gate.admitFor(w, msg.address);
      if (isRefusal(admission)) gate.logRefusal(msg.address, admission);
      const answer: ToWorker = { tdm: 'admitted', id: msg.id, admission };
      w.send(answer).catch(() => undefined); // a worker gone meanwhile: its exit releases what it held
    } else if (msg.tdm === 'release' && Array.isArray(msg.addresses)) {
      for (const a of msg.addresses) if (typeof a === 'string') gate.releaseFor(w, a);
    }
  });
  supervisor.on('exit', (w: WorkerHandle) => gate.forget(w));
}
