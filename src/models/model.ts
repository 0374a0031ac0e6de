import type { Server, Socket } from 'node:net';
import type { AddressGate } from '../address-gate.js';
import type { SharedListener } from '../listen.js';
import type { ResolvedParams } from '../params.js';
import type { Supervisor, SupervisorStatus } from '../supervisor/supervisor.js';
import type { DaemonTls } from '../tls/daemon-tls.js';
import type { Logger, Tcpmain } from '../types.js';

/** What the daemon gives a model: the one listening server and everything loaded before listening. */
export interface ModelHost {
  params: ResolvedParams;
  /** Listening and accepting in the daemon (listenMode 'accept'); owned by the daemon, never closed by a model. */
  server: Server | null;
  /** Bound for workers to accept on (listenMode 'shared'); owned by the daemon. */
  shared: SharedListener | null;
  /** The address as logged, e.g. `127.0.0.1:9527` (with the real port when 0 was asked for). */
  address: string;
  logger: Logger;
  tcpmain: Tcpmain;
  /** Absolute module path, or undefined when the library was given a function. */
  handlerPath: string | undefined;
  /** Which tcpdaemon() call of this process started the daemon (0 = the first): a re-run worker finds its call by it. */
  callIndex: number;
  /** Absolute --logfile, or undefined for stdout. */
  logfile: string | undefined;
  /** Aborted when the daemon starts stopping. */
  stopSignal: AbortSignal;
  /** --tls-cert: the checked material; the model's serving processes terminate TLS with it. */
  tls: DaemonTls | undefined;
  /** --max-conns-per-ip, --max-conn-rate-per-ip: where every accepted connection is admitted; undefined = both off. */
  addressGate: AddressGate | undefined;
  /** --metrics: models hand it their supervisor (and IOMP -c 1 its runner); undefined without. */
  metrics?: ModelMetrics;
  /** Every supervisor the model creates, for the daemon's own messages to the workers (sendToWorkers). */
  adopt?(supervisor: Supervisor): void;
}

/** What a model tells the metrics (src/metrics/hub.ts) about its serving processes. */
export interface ModelMetrics {
  /** Merge the metric values of this supervisor's workers; count their starts and exits. */
  watch(supervisor: Supervisor): void;
  /** IOMP -c 1: the daemon serves connections itself through this runner. */
  meterRunner(runner: { serve(socket: Socket, ...rest: never[]): void }): void;
}

export interface RunningModel {
  /** Open connections across the model's workers. */
  readonly connections: number;
  /** Connections have `deadlineMs` to finish after accepting stopped; then the rest are cut. */
  close(deadlineMs: number): Promise<void>;
  /** SIGUSR1: every process of the model reopens the logfile. */
  reopenLogs?(): void;
  /**
   * SIGHUP: serve new connections with the handler as it is on disk now; none refused meanwhile.
   * Worker models replace their workers one by one (a new process loads the module afresh).
   */
  reload?(): Promise<void>;
  /**
   * A config reload changed live values of host.params (in place): apply them to what runs now.
   * Workers started from now on (the reload that follows replaces them all) read host.params.
   */
  reconfigure?(): void;
  /** Worker models: their supervisor's view; LF and IF also the connections waiting for a worker. */
  status?(): ModelStatus;
}

export interface ModelStatus {
  workers: SupervisorStatus;
  waiting?: number;
  /** The live workers' heartbeat reports (DaemonOptions.workerReport). */
  reports: unknown[];
}

export interface Model {
  /** Why these parameters cannot run on this model (checked before listening), or undefined. */
  unavailable(params: ResolvedParams): string | undefined;
  /** Whether accepted sockets must start paused (they are handed to another process). */
  pauseOnConnect(params: ResolvedParams): boolean;
  /**
   * 'accept' (default): the daemon listens and accepts (host.server). 'shared': the daemon only
   * binds and holds the socket; the model's workers accept from it (host.shared).
   */
  listenMode?(params: ResolvedParams): 'accept' | 'shared';
  /** Whether worker processes or threads (not the daemon) run the handler, hence terminate TLS. */
  servesInWorkers(params: ResolvedParams): boolean;
  start(host: ModelHost): Promise<RunningModel>;
}
