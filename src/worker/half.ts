// A model's worker half (src/models/<model>/worker.ts) and what the model-neutral worker process
// (run.ts) gives it. run.ts joins the supervisor, loads the handler, serves and counts connections,
// recycles at -n and retires; the half decides where connections come from and what the daemon
// hears about them. Chosen by config.model in src/models/worker-halves.ts.
import type { Socket } from 'node:net';
import type { AdmissionClient } from '../address-admission.js';
import type { ConnectionTracker } from '../connection-tracker.js';
import type { Meter } from '../metrics/meter.js';
import type { WorkerChannel } from '../supervisor/worker-channel.js';
import type { Logger } from '../types.js';
import type { WorkerConfig } from './config.js';
import type { FromWorker, ToWorker } from './messages.js';

export interface WorkerHalf {
  /** One connection, then exit (IF): pino loads with the first line logged; a throw ends the process. */
  readonly single: boolean;
  /** Called once the handler is loaded. */
  create(base: WorkerBase): WorkerRules;
}

/** What run.ts gives a worker half. */
export interface WorkerBase {
  readonly config: WorkerConfig;
  readonly logger: Logger;
  readonly channel: WorkerChannel;
  /** This worker's open connections. */
  readonly tracker: ConnectionTracker;
  /** --metrics: this worker's meter; undefined without. */
  readonly meter: Meter | undefined;
  /** --max-conns-per-ip, --max-conn-rate-per-ip: admit each connection this worker accepts itself; undefined = off. */
  readonly admission: AdmissionClient | undefined;
  /** Counts and serves one connection (its 'close' calls WorkerRules.closed); asks to be recycled at -n. */
  serve(socket: Socket): void;
  /** To the daemon; resolves once written. */
  send(m: FromWorker): Promise<void>;
  /** To the daemon, fire and forget (no promise per message). */
  post(m: FromWorker): void;
  /** The socket sent to accept on cannot be listened on: logged, exit 1. */
  fail(err: Error): void;
  /** Writes out what the log holds. */
  flush(): void;
  /** Served its -n connections: a replacement is on its way. */
  readonly spent: boolean;
  /** Draining before exiting. */
  readonly retiring: boolean;
}

/** A worker half's rules for one worker process. */
export interface WorkerRules {
  /** Once the daemon's messages are listened to: ask for a socket to accept on, or say ready. */
  start(): void;
  /** A message from the daemon about connections, with its handle ('warm' and 'admitted' are run.ts's). */
  message(msg: ToWorker, handle: unknown): void;
  /** After each serve(). */
  served?(): void;
  /** A served connection closed. */
  closed(): void;
  /** -n reached: accept nothing more. */
  spent?(): void;
  /** Retiring: stop accepting. */
  retire(): void;
  /** Retiring, after retire(): resolves once connections accepted but not yet served are decided. */
  settled?(): Promise<void>;
}

export function closeHandle(handle: unknown): void {
  try {
    (handle as { close(): void }).close();
  } catch {
    // not a handle we can close; nothing leaks with it
  }
}
