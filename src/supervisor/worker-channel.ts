// The worker side of the supervisor protocol. Imported by every worker process at start-up, so it
// imports nothing heavy: readiness, heartbeats from the event loop, retire and log-reopen requests.

import { readVar } from '../child-channel.js';
import { MAX_TIMER_MS } from '../timer-limit.js';
import { workerBus } from '../worker-bus.js';
import { onParentLost } from './parent-lost.js';
import { isProtocolMessage, type SupervisorMessage, type WorkerMessage } from './protocol.js';

/** How a worker talks to its supervisor. Default: this process's IPC channel. */
export interface ChannelTransport {
  /** Sends `m`; calls `done` once it is written (or dropped: no channel). */
  send(m: WorkerMessage, done: () => void): void;
  /** Calls `listener` with every message from the supervisor's side. */
  onMessage(listener: (m: unknown) => void): void;
}

export interface WorkerChannelOptions {
  /** Totals sent with each heartbeat. */
  counts?: () => { served: number; active: number };
  /**
   * Stop taking work, finish what is open within `graceMs` (ms), then exit. Called once, for a
   * retire message, SIGTERM, or the supervisor's disappearance. Default: exit(0) at once.
   */
  onRetire?: (graceMs: number) => void;
  /** Reopen the log file. */
  onReopenLog?: () => void;
  /**
   * Another way to the supervisor (a worker thread: its parentPort). Without one, the worker is a
   * process: it uses IPC and also retires on SIGTERM and when its supervisor disappears.
   */
  transport?: ChannelTransport;
}

export interface WorkerChannel {
  /** 1..N, the slot this worker fills. */
  readonly workerId: number;
  /** Unique per start within the supervisor. */
  readonly spawnId: number;
  /** Tell the supervisor this worker can take work. */
  ready(): void;
  /** Ask to be replaced; keep serving until the retire request comes. */
  requestRecycle(reason: string): void;
  /** What every heartbeat carries from now on besides the counts (a small JSON value). */
  setReport(report: () => unknown): void;
  /** --metrics: this worker's metric values, sent with every heartbeat from now on. */
  setMetrics(metrics: () => unknown): void;
  /** Sends a heartbeat now (final counts before exiting); resolves once written. */
  beat(): Promise<void>;
  /** True once a retire was asked for. */
  readonly retiring: boolean;
}

/** True in a process started by a supervisor. */
export function isSupervisedWorker(): boolean {
  return readVar('supervised') === '1' && typeof process.send === 'function';
}

const processTransport: ChannelTransport = {
  send(m, done) {
    if (process.connected) process.send!(m, undefined, {}, () => done());
    else done();
  },
  onMessage: (listener) => process.on('message', listener),
};

/**
 * Joins the supervisor that started this worker: starts heartbeats, wires retire (IPC message,
 * SIGTERM, or the parent's disappearance) and log reopening. SIGINT and SIGHUP are ignored: the
 * daemon coordinates those for all its workers (a terminal's Ctrl-C reaches the whole group).
 */
export function joinSupervisor(opts: WorkerChannelOptions = {}): WorkerChannel {
  const transport = opts.transport ?? processTransport;
  const supervised = opts.transport ? readVar('supervised') === '1' : isSupervisedWorker();
  if (!supervised) throw new Error('joinSupervisor: this worker was not started by a supervisor');
  const heartbeatMs = Number(readVar('heartbeatMs')) || 1000;
  const defaultGraceMs = Number(readVar('graceMs')) || 10_000;
  const counts = opts.counts ?? (() => ({ served: 0, active: 0 }));
  let report: (() => unknown) | undefined;
  let metrics: (() => unknown) | undefined;
  let retiring = false;

  let rssBytes = 0;
  const send = (m: WorkerMessage, done: () => void = () => undefined) => transport.send(m, done);
  const heartbeat = (done?: () => void) => {
    const { served, active } = counts();
    try {
      rssBytes = process.memoryUsage.rss();
    } catch {
      // It opens /proc/self/stat, which fails out of descriptors (EMFILE): the last value goes.
    }
    const extra = report === undefined ? undefined : report();
    const values = metrics === undefined ? undefined : metrics();
    send({ tdw: 'hb', served, active, rssBytes, report: extra, metrics: values }, done);
  };
  const retire = (graceMs: number, selfEnforce: boolean) => {
    if (retiring) return;
    retiring = true;
    clearInterval(beat);
    if (selfEnforce) {
      // Nobody is left to SIGKILL us at the deadline: do it ourselves.
      setTimeout(() => process.exit(0), Math.min(graceMs, MAX_TIMER_MS)).unref();
    }
    if (!opts.onRetire) process.exit(0);
    opts.onRetire(graceMs);
    // onRetire stops taking work before it returns: the supervisor's reload may count this one done.
    send({ tdw: 'retiring' });
  };

  const beat = setInterval(() => heartbeat(), heartbeatMs);
  beat.unref();

  transport.onMessage((m: unknown) => {
    if (!isProtocolMessage(m)) return;
    const msg = m as SupervisorMessage;
    if (msg.tdw === 'retire') retire(Number(msg.graceMs) || 0, false);
    else if (msg.tdw === 'reopen-log') opts.onReopenLog?.();
    else if (msg.tdw === 'bcast') workerBus.deliver(msg.topic, Buffer.from(msg.data, 'base64'), msg.from);
  });
  if (transport === processTransport) {
    onParentLost(() => retire(defaultGraceMs, true), heartbeatMs);
    process.on('SIGTERM', () => retire(defaultGraceMs, false));
    process.on('SIGINT', () => undefined);
    process.on('SIGHUP', () => undefined);
  }

  const workerId = Number(readVar('workerId')) || 0;
  workerBus.connect(
    (topic, data, sent) => send({ tdw: 'bcast', topic, data: data.toString('base64') }, sent),
    workerId,
  );

  return {
    workerId,
    spawnId: Number(readVar('spawnId')) || 0,
    ready: () => send({ tdw: 'ready' }),
    requestRecycle: (reason) => send({ tdw: 'recycle', reason }),
    beat: () => new Promise((resolve) => heartbeat(resolve)),
    setReport: (fn) => {
      report = fn;
    },
    setMetrics: (fn) => {
      metrics = fn;
    },
    get retiring() {
      return retiring;
    },
  };
}
