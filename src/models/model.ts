import type { Server } from 'node:net';
import type { ResolvedParams } from '../params.js';
import type { Logger, Tcpmain } from '../types.js';

/** What the daemon gives a model: the one listening server and everything loaded before listening. */
export interface ModelHost {
  params: ResolvedParams;
  /**
   * Listening; owned by the daemon. A model attaches to it and never closes it, except a model
   * whose workers accept on their own copies of the socket (TLF: models/listener-copy.ts), which
   * stops the daemon's accepting. The daemon reads the bound address before `start`.
   */
  server: Server;
  logger: Logger;
  /** Absolute path of --logfile (resolved before --work-path), or undefined for stdout. */
  logfile: string | undefined;
  tcpmain: Tcpmain;
  /** Absolute module path, or undefined when the library was given a function. */
  handlerPath: string | undefined;
  /** Aborted when the daemon starts stopping. */
  stopSignal: AbortSignal;
}

export interface RunningModel {
  /** Open connections across the model's workers. */
  readonly connections: number;
  /** Connections have `deadlineMs` to finish after accepting stopped; then the rest are cut. */
  close(deadlineMs: number): Promise<void>;
  /** SIGUSR1: every process of the model reopens the logfile. */
  reopenLogs?(): void;
  /** SIGHUP: serve new connections with the handler as it is on disk now; none refused meanwhile. */
  reload?(): Promise<void>;
}

export interface Model {
  /** Why these parameters cannot run on this model (checked before listening), or undefined. */
  unavailable(params: ResolvedParams): string | undefined;
  /** Whether accepted sockets must start paused (they are handed to another process). */
  pauseOnConnect(params: ResolvedParams): boolean;
  start(host: ModelHost): Promise<RunningModel>;
}
