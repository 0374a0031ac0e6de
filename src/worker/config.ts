// What a worker process needs to know, passed by the daemon in one environment variable
// (TCPDAEMON_WORKER, src/child-channel.ts). Imported by the worker entry: types and JSON only.
import { readVar, takeVar } from '../child-channel.js';
import type { LogFormat } from '../log-format.js';
import type { LogLevel } from '../logger.js';
import type { WorkerTls } from '../tls/daemon-tls.js';
import type { ModelName } from '../types.js';

// Kept on globalThis, not in this module: the worker entry runs from a bundle with its own copy
// of this module, and a handler importing 'tcpdaemon' must still see the config it took.
const TAKEN = Symbol.for('tcpdaemon.workerConfig');
const store = globalThis as { [TAKEN]?: WorkerConfig };

export interface WorkerConfig {
  model: ModelName;
  /**
   * 'shared': accept from the listening handle the daemon sends (IOMP -c N; TLF threads take
   * their own copy of it). 'one-at-a-time': accept one connection at a time on copies of the
   * listening handle the daemon sends, or serve one the daemon sends (LF; src/models/lf/accept-turns.ts).
   * 'single': serve the one socket the daemon sends, then exit (IF).
   */
  accept: 'shared' | 'one-at-a-time' | 'single';
  /** Absolute handler module path; null = the function passed to tcpdaemon() in the re-run script. */
  handlerPath: string | null;
  /** Which tcpdaemon() call of the re-run script this worker serves (0 = the first). */
  callIndex: number;
  /** The daemon's address as logged, and as address() returns it in a function-handler worker. */
  address: string;
  addressInfo: { address: string; family: string; port: number } | string | null;
  /** Seconds; 0 = none. */
  idleTimeout: number;
  /** --proxy-protocol: ms the PROXY header may take; null = no header expected. */
  proxyHeaderTimeoutMs: number | null;
  tcpNodelay: boolean;
  /** Seconds; null = OS default close. */
  tcpLinger: number | null;
  unix: boolean;
  params: Record<string, string>;
  loglevel: LogLevel;
  logFormat: LogFormat;
  logfile: string | null;
  /** Serve this many connections, then ask to be replaced; 0 = never. */
  recycleAfter: number;
  /** Connections this worker holds at most; more are closed at once and counted (IOMP); 0 = no cap. */
  maxConnections: number;
  /** Bytes a connection may have written but not yet sent; 0 = no limit (--max-output-buffer). */
  maxOutputBuffer: number;
  /** --tls-cert: this worker terminates TLS with the material in the daemon's snapshot; null = plain TCP. */
  tls: WorkerTls | null;
  /** --max-conns-per-ip / --max-conn-rate-per-ip are on and this worker accepts: ask the daemon before serving (src/address-admission.ts). */
  admission: boolean;
  /** --metrics: meter the connection path and send the values with every heartbeat. */
  metrics: boolean;
}

/** The child-channel variables that carry `config` to a worker (see childEnv). */
export function workerEnv(config: WorkerConfig): { worker: string } {
  return { worker: JSON.stringify(config) };
}

/** True in a process the daemon started as a worker. */
export function isWorkerProcess(): boolean {
  return (
    store[TAKEN] !== undefined || (readVar('worker') !== undefined && typeof process.send === 'function')
  );
}

/**
 * Reads this worker's config and removes it from the environment, so processes the handler
 * starts do not take themselves for workers. Undefined when this is no worker.
 */
export function takeWorkerConfig(): WorkerConfig | undefined {
  if (readVar('worker') === undefined || typeof process.send !== 'function') return undefined;
  const taken = JSON.parse(takeVar('worker')!) as WorkerConfig;
  store[TAKEN] = taken;
  return taken;
}

/** The config takeWorkerConfig() read in this process, if any. */
export function currentWorkerConfig(): WorkerConfig | undefined {
  return store[TAKEN];
}
