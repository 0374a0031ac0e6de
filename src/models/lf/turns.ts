// LF, the daemon's side: idle workers accept from the daemon's socket themselves, each on a copy
// the daemon sends it ('listen'), one connection per copy (accept-turns.ts). The daemon
// takes part only when a worker is free again ('idle': it gets the next copy, or a connection
// that waited) and when every worker is busy: then it accepts on a descriptor of its own (paused,
// so no byte is read before a worker does) and the connections wait in the Handoff, bounded by
// --max-waiting, --wait-timeout and --max-connections, for the next worker that is free.
//
// "Every worker is busy" is what the workers reported: a worker says 'took' only for a connection
// still open after TOOK_REPORT_MS, so until then a connection that finds no free worker waits in
// the kernel's accept queue (it is established, not refused) and short connections cost no report.
//
// The daemon's own descriptors come back from a worker ('copy-back', 'copy'): node has no dup(),
// and the daemon must be able to stop accepting (close its descriptor) without closing the socket.
import type { SendHandle } from 'node:child_process';
import { createServer, type Server } from 'node:net';
import type { WorkerHandle } from '../../supervisor/supervisor.js';
import type { Logger } from '../../types.js';
import type { ToWorker } from '../../worker/messages.js';
import type { Handoff } from '../handoff.js';

export interface LfTurnsOptions {
  /** The daemon's listening socket: sent, never accepted on here. */
  handle: SendHandle;
  handoff: Handoff;
  /** Busy, armed and waiting connections at most; 0 = no limit. */
  maxConnections: number;
  logger: Logger;
  /** The workers in service (one of them returns a copy). */
  workers(): WorkerHandle[];
}

const LISTEN: ToWorker = { tdm: 'listen' };
/** A copy, and leave to make the next ones itself: only with no --max-connections, which only the daemon counts. */
const LISTEN_OWN: ToWorker = { tdm: 'listen', own: true };
const OWN_COPIES_OFF: ToWorker = { tdm: 'own-copies-off' };
const COPY_BACK: ToWorker = { tdm: 'copy-back' };

export class LfTurns {
  /** Workers that joined and take connections (not spent, retiring or gone). */
  readonly #members = new Set<WorkerHandle>();
  /** Workers holding a copy: accepting, or serving a connection they have not reported yet. */
  readonly #armed = new Set<WorkerHandle>();
  /** Descriptors of the socket for the daemon to accept on (one kept ahead). */
  readonly #copies: unknown[] = [];
  /** The worker asked for a copy, until it answers or goes. */
  #copyFrom: WorkerHandle | undefined;
  /** Accepting in the daemon: every worker is busy. */
  #acceptor: Server | undefined;
  #closed = false;

  constructor(private readonly opts: LfTurnsOptions) {}

  /** Workers accepting now (or serving a connection not reported yet). */
  get armedCount(): number {
    return this.#armed.size;
  }

  /** True while the daemon accepts (every worker busy). */
  get accepting(): boolean {
    return this.#acceptor !== undefined;
  }

  /** `w` started and asks for its first copy (without one, it waits for a connection from here). */
  join(w: WorkerHandle): void {
    this.#members.add(w);
    // Connections waiting in the daemon go first: one is handed to `w` (a worker that accepted
    // from the kernel instead would leave them waiting for the next 'idle').
    if (this.opts.handoff.waitingCount === 0 && this.#canArm()) {
      this.#arm(w);
      return;
    }
    w.send(LISTEN).catch(() => undefined); // no copy: ready, and served from here
    this.opts.handoff.add(w);
    this.#fill();
  }

  /** `w` is in service: keep a copy ahead for the daemon. */
  ready(): void {
    this.#askCopy();
  }

  /** `w` has served its connection for TOOK_REPORT_MS: busy. */
  took(w: WorkerHandle): void {
    if (!this.#armed.delete(w)) return; // a connection handed over from here is counted already
    this.opts.handoff.taken(w);
    this.#check();
  }

  /** `w`'s connection is over: a waiting connection goes to it, or the next copy. */
  idle(w: WorkerHandle): void {
    if (!this.#members.has(w)) return; // retired meanwhile
    this.#armed.delete(w);
    this.opts.handoff.idle(w);
    this.#fill();
    this.#check();
  }

  /** `w` takes nothing more (spent, retiring, gone). */
  remove(w: WorkerHandle): void {
    this.#members.delete(w);
    this.#armed.delete(w);
    this.opts.handoff.remove(w);
    if (this.#copyFrom === w) {
      this.#copyFrom = undefined;
      this.#askCopy();
    }
    this.#fill();
    this.#check();
  }

  /** A worker's answer to 'copy-back'. */
  copy(w: WorkerHandle, handle: unknown): void {
    if (this.#copyFrom === w) this.#copyFrom = undefined;
    if (!handle) return;
    if (this.#closed || this.#copies.length > 0) {
      closeHandle(handle);
      return;
    }
    this.#copies.push(handle);
    this.#check();
  }

  /** On stop: the daemon accepts nothing more, its descriptors are closed. */
  close(): void {
    this.#closed = true;
    this.#stopAccepting();
    for (const h of this.#copies.splice(0)) closeHandle(h);
    this.#armed.clear();
    this.#members.clear();
  }

  /** A config reload changed --max-connections: more (or fewer) workers may hold a copy from now on. */
  setMaxConnections(max: number): void {
    const was = this.opts.maxConnections;
    this.opts.maxConnections = max;
    // Workers that make their own copies take no turn from here: with a limit they must again.
    if (was === 0 && max > 0) for (const w of this.#members) w.send(OWN_COPIES_OFF).catch(() => undefined);
    this.#fill();
  }

  #canArm(): boolean {
    const max = this.opts.maxConnections;
    return !this.#closed && (max === 0 || this.opts.handoff.connections + this.#armed.size < max);
  }

  /** Arms free workers while --max-connections leaves room and no connection waits. */
  #fill(): void {
    while (this.#canArm()) {
      const w = this.opts.handoff.claimFree();
      if (!w) return;
      this.#arm(w);
    }
  }

  #arm(w: WorkerHandle): void {
    this.#armed.add(w);
    this.#stopAccepting(); // a worker accepts now: the daemon would only race it
    w.send(this.opts.maxConnections === 0 ? LISTEN_OWN : LISTEN, this.opts.handle).catch(() => {
      // The worker is going away; its exit removes it.
      this.#armed.delete(w);
      this.#check();
    });
  }

  /** With no worker armed, the daemon accepts, so connections wait bounded in the Handoff. */
  #check(): void {
    if (this.#closed || this.#armed.size > 0 || this.#acceptor) return;
    const copy = this.#copies.pop();
    if (copy === undefined) {
      this.#askCopy();
      return;
    }
    const { handoff, logger } = this.opts;
    const acceptor = createServer({ pauseOnConnect: true }, (socket) => handoff.offer(socket));
    acceptor.on('error', (err) => logger.error({ err: err.message }, 'LF: the daemon cannot accept'));
    acceptor.listen(copy as Parameters<Server['listen']>[0]);
    this.#acceptor = acceptor;
    this.#askCopy();
  }

  #stopAccepting(): void {
    const acceptor = this.#acceptor;
    if (!acceptor) return;
    this.#acceptor = undefined;
    acceptor.close();
    this.#askCopy();
  }

  #askCopy(): void {
    if (this.#closed || this.#copyFrom || this.#copies.length > 0) return;
    // An armed worker is idle: it answers at once (a busy one's handler may hold its event loop).
    const w = this.#armed.values().next().value ?? this.opts.workers()[0];
    if (!w) return;
    this.#copyFrom = w;
    w.send(COPY_BACK, this.opts.handle).catch(() => {
      if (this.#copyFrom === w) this.#copyFrom = undefined;
    });
  }
}

function closeHandle(handle: unknown): void {
  try {
    (handle as { close(): void }).close();
  } catch {
    // not a handle we can close; nothing leaks with it
  }
}
