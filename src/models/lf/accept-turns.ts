// An LF worker accepts its connections itself, one at a time, on a copy of the daemon's listening
// socket, so an idle worker takes its next connection with no daemon in the path. It closes the
// copy inside the 'connection' callback of its first accept: libuv's accept loop stops when the
// descriptor is gone, so a busy worker takes nothing, not even a second connection that was
// already queued.
//
// Where the next copy comes from: with the native dup (src/native/addon.ts) the worker keeps one
// descriptor of the socket from its first copy and makes each next copy from it, so a connection
// that ends before TOOK_REPORT_MS costs no message at all: the worker listens again at once. A
// connection the daemon was told about ('took'), or one it handed over, ends with 'idle'
// (worker.ts), and the daemon answers with a connection that waited in the daemon while every
// worker was busy, or with the next copy (turns.ts). Without the native dup every turn ends so.
//
// The daemon learns that a worker is busy only from connections that last: one still open after
// TOOK_REPORT_MS is reported ('took'), so short connections cost no message for it, and the
// daemon starts accepting into its waiting queue once every worker has reported one.
import { createServer, type Server, type Socket } from 'node:net';
import { closeDup, type Dup, dupHandle } from '../../native/addon.js';
import type { FromWorker } from '../../worker/messages.js';

/** A connection open this long is reported to the daemon ('took'), ms. */
export const TOOK_REPORT_MS = 10;

export interface AcceptTurnsOptions {
  send(m: FromWorker): void;
  /** Serves one connection (counts it, recycles at -n). */
  serve(socket: Socket): void;
  /** The copy cannot be listened on: this worker cannot work. */
  fail(err: Error): void;
  /** The first copy is listening, or the daemon said to wait without one: the worker is ready. */
  onFirstTurn(): void;
  /** dup(2) (the native addon): each next copy is made here; absent, each comes from the daemon. */
  dup?: Dup;
  /** How long a connection is open before it is reported ('took'), ms; default TOOK_REPORT_MS. */
  tookReportMs?: number;
}

export class AcceptTurns {
  #server: Server | undefined;
  /** The connection this worker serves now (its own or one the daemon sent). */
  #current: Socket | undefined;
  /** performance.now() when #current was taken. */
  #since = 0;
  #reported = false;
  /** #current came from the daemon (it counts it until 'idle'). */
  #handed = false;
  /** The daemon leaves the next copies to this worker (no --max-connections to count them against). */
  #own = false;
  /** With dup: this worker's own descriptor of the listening socket, which each next copy is made from. */
  #master: number | undefined;
  #stopped = false;
  #turned = false;
  /** One timer for the worker's life, re-armed with refresh(): no timer object per connection. */
  #timer: NodeJS.Timeout | undefined;
  #timerPending = false;

  constructor(private readonly opts: AcceptTurnsOptions) {}

  /** True while a copy is listening here. */
  get listening(): boolean {
    return this.#server !== undefined;
  }

  /**
   * A copy of the listening socket from the daemon: accept the next connection on it. `own`: make
   * the next copies here (with dup) after connections the daemon was not told about.
   */
  arm(handle: unknown, own = true): void {
    if (this.#stopped || this.#server || this.#current) {
      closeHandle(handle); // busy, retiring or already listening: one turn at a time
      return;
    }
    this.#own = own;
    if (own) this.#keepMaster(handle);
    this.#listen(handle as Parameters<Server['listen']>[0]);
  }

  #listen(what: Parameters<Server['listen']>[0]): void {
    const server = createServer(this.#onConnection);
    this.#server = server;
    server.on('error', (err) => this.opts.fail(err));
    server.listen(what, () => this.#firstTurn());
  }

  /** With dup, once: a descriptor of the socket of our own, kept for the worker's life. */
  #keepMaster(handle: unknown): void {
    const { dup } = this.opts;
    // Out of descriptors: this turn's copy serves, the next ones come from the daemon.
    if (dup && this.#master === undefined) this.#master = dupHandle(dup, handle);
  }

  /** A 'listen' without a copy: --max-connections leaves no room; wait for a connection from the daemon. */
  hold(): void {
    this.#firstTurn();
  }

  #firstTurn(): void {
    if (this.#turned) return;
    this.#turned = true;
    this.opts.onFirstTurn();
  }

  /** A connection the daemon sent (it waited there): serve it like an accepted one. */
  take(socket: Socket): void {
    if (this.#begin(socket)) this.#handed = true;
  }

  /** A connection the daemon sent was lost on the way: the turn is still the daemon's to end. */
  takeLost(): void {
    this.#handed = true;
  }

  /** The next copies come from the daemon (it counts connections against a limit now). */
  ownCopiesOff(): void {
    this.#own = false;
  }

  /**
   * The current connection closed. True when this worker listens again by itself (a short
   * connection of its own, with dup); false when the daemon must be told ('idle').
   */
  finished(): boolean {
    const told = this.#reported || this.#handed;
    this.#current = undefined;
    this.#handed = false;
    this.#reported = false;
    if (told || !this.#own || this.#stopped || this.#server || this.#master === undefined) return false;
    let copy: number;
    try {
      copy = this.opts.dup!(this.#master);
    } catch {
      return false; // out of descriptors: the daemon sends the next copy (or says why not)
    }
    this.#listen({ fd: copy });
    return true;
  }

  /** Retiring or spent: accept nothing more. */
  stop(): void {
    this.#stopped = true;
    this.#close();
    if (this.#master !== undefined) {
      closeDup(this.#master); // never throws: retire goes on to exit
      this.#master = undefined;
    }
  }

  readonly #onConnection = (socket: Socket): void => {
    this.#close(); // before anything else: libuv accepts no second connection on this copy
    this.#begin(socket);
  };

  #begin(socket: Socket): boolean {
    if (this.#current) {
      socket.destroy(); // never two connections in one LF worker
      return false;
    }
    this.#current = socket;
    this.#since = performance.now();
    this.#reported = false;
    this.opts.serve(socket);
    if (this.#timerPending) return true;
    this.#timerPending = true;
    if (this.#timer) this.#timer.refresh();
    else {
      this.#timer = setTimeout(this.#check, this.opts.tookReportMs ?? TOOK_REPORT_MS);
      this.#timer.unref();
    }
    return true;
  }

  readonly #check = (): void => {
    this.#timerPending = false;
    if (!this.#current || this.#reported || this.#stopped) return;
    if (performance.now() - this.#since >= (this.opts.tookReportMs ?? TOOK_REPORT_MS)) {
      this.#reported = true;
      this.opts.send({ tdm: 'took' });
      return;
    }
    this.#timerPending = true;
    this.#timer!.refresh();
  };

  #close(): void {
    const server = this.#server;
    if (!server) return;
    this.#server = undefined;
    server.close();
  }
}

function closeHandle(handle: unknown): void {
  try {
    (handle as { close(): void }).close();
  } catch {
    // not a handle we can close; nothing leaks with it
  }
}
