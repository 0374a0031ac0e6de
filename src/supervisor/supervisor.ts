// The one place where child lifetimes are managed. A supervisor owns `size` slots; each slot holds
// one serving worker (plus, briefly, its replacement or a retiring predecessor). Models (IOMP -c N,
// LF, IF, TLF, the proxy's backends, the gateway's workers) describe how to start a worker in a
// WorkerSpec and react to the 'ready' / 'retire' / 'exit' events; the supervisor does the rest:
// readiness, restarts with backoff, hang detection, recycling, rolling reload, graceful stop.
import type { MessageOptions, SendHandle } from 'node:child_process';
import { EventEmitter } from 'node:events';
import type { Logger } from 'pino';
import { ThrottledCount } from '../throttled-count.js';
import { MAX_TIMER_MS } from '../timer-limit.js';
import { accountExit, type BackoffOptions, checkBackoff, DEFAULT_BACKOFF } from './backoff.js';
import type { SupervisedChild } from './child.js';
import { ENV, isProtocolMessage, type SupervisorMessage, type WorkerMessage } from './protocol.js';
import { type Readiness, type ReadinessTarget, readyOnMessage } from './readiness.js';
import { readRssBytes } from './rss.js';

/**
 * starting: spawned, not ready yet; ready: in service in its slot; taken: out of its slot, the
 * model's own (take()); retiring: told to finish and exit.
 */
export type WorkerState = 'starting' | 'ready' | 'taken' | 'retiring';

export interface WorkerStartContext {
  /** 0..size-1. */
  slot: number;
  /** slot + 1: what handlers see as `env.workerId`. */
  workerId: number;
  /** Unique per start, increasing from 1. */
  spawnId: number;
  /** Protocol variables (ENV.*) the worker must receive in its environment. */
  env: Record<string, string>;
}

/** How to start one worker and what "ready" means for it. */
export interface WorkerSpec {
  /** Starts the worker (a ChildProcess, or an adapter). Throwing counts as a failed start (logged, retried with backoff). */
  start(ctx: WorkerStartContext): SupervisedChild;
  /** Default: the worker's `{ tdw: 'ready' }` IPC message. */
  readiness?: Readiness;
  /** The worker sends heartbeats (it uses worker-channel). Hang detection needs them. Default: it has IPC. */
  heartbeats?: boolean;
}

export interface SupervisorOptions {
  spec: WorkerSpec;
  /** Number of slots (workers in service), >= 1. */
  size: number;
  logger: Logger;
  /** Shown in every log line as `supervisor`. */
  name?: string;
  backoff?: Partial<BackoffOptions>;
  /** A worker not ready within this (ms) is killed and counts as a failure. Default 30 000. */
  readyTimeoutMs?: number;
  /** A ready worker silent longer than this (ms) is killed and replaced. 0 = off (default). */
  hangTimeoutMs?: number;
  /** Heartbeat period asked of workers and period of the supervisor's checks, ms. Default min(1000, hang/4). */
  heartbeatMs?: number;
  /** Recycle a worker whose RSS exceeds this many bytes. 0 = off (default). */
  maxRssBytes?: number;
  /** How long a worker retired by reload or recycling may drain, ms. Default 10 000. Any length works (no timer limit). */
  retireGraceMs?: number;
  /** A retired worker still alive this long (ms) after its drain deadline is SIGKILLed. Default 2000. */
  killMarginMs?: number;
  /** This many failures in a row mark the slot as crash-looping in the log. Default 3. */
  crashLoopAfter?: number;
}

/** A live worker as models see it. */
export interface WorkerHandle extends ReadinessTarget {
  readonly spawnId: number;
  readonly pid: number | undefined;
  readonly state: WorkerState;
  /** Date.now() at spawn, ms. */
  readonly startedAt: number;
  /** Totals from the last heartbeat. */
  readonly served: number;
  readonly active: number;
  readonly rssBytes: number | undefined;
  /** Sends over IPC; resolves once written, rejects when the worker has no channel or it is gone. */
  send(message: unknown, handle?: SendHandle, options?: MessageOptions): Promise<void>;
}

export interface ExitInfo {
  code: number | null;
  signal: NodeJS.Signals | null;
  /** Since spawn, ms. */
  uptimeMs: number;
  /** Why it ended: 'crashed', or what the supervisor asked ('reload', 'recycle: …', 'stop', 'hung', 'not ready'). */
  reason: string;
}

/** One live worker in a status report; served and active are as of its last heartbeat. */
export interface WorkerStatus {
  workerId: number;
  pid: number | undefined;
  state: WorkerState;
  uptimeS: number;
  served: number;
  active: number;
  rssBytes: number | undefined;
  /** Since its last heartbeat (or readiness), ms: a worker whose loop is blocked falls silent. */
  silentMs: number;
}

export interface SupervisorStatus {
  /** In slot order; replacements and retiring or taken workers after the ones in service. */
  workers: WorkerStatus[];
  /** Workers started since the supervisor started. */
  started: number;
  /** Exits that were failures (crash, hang, not ready) and exits the supervisor asked for. */
  failedExits: number;
  plannedExits: number;
  /** Slots whose last starts all failed (crashLoopAfter or more in a row). */
  crashLooping: number[];
}

export type ReloadResult = { ok: true; replaced: number } | { ok: false; slot: number; error: string };

export interface SupervisorEvents {
  /** A worker went into service: give it work from now on. */
  ready: [worker: WorkerHandle];
  /** A worker was told to finish: give it no more work. */
  retire: [worker: WorkerHandle];
  /** A worker is gone (reaped). Work still assigned to it is lost. */
  exit: [worker: WorkerHandle, info: ExitInfo];
  /** A message that is not part of the supervisor protocol, with the handle sent along, if any. */
  message: [worker: WorkerHandle, message: unknown, handle: unknown];
  /** A heartbeat's metric values (--metrics; src/metrics/hub.ts merges them). */
  metrics: [worker: WorkerHandle, values: unknown];
}

class Worker implements WorkerHandle {
  state: WorkerState = 'starting';
  readonly startedAt = Date.now();
  readyAt = 0;
  lastSignOfLife = Date.now();
  /** The heartbeat period it was started with, ms. */
  heartbeatMs = 0;
  served = 0;
  active = 0;
  rssBytes: number | undefined;
  /** The `report` of its last heartbeat, if it sends one. */
  report: unknown;
  /** Bus messages relayed to it and not yet written to its channel, bytes (base64). */
  relayBytes = 0;
  /** Why the supervisor ended it; undefined = still wanted (an exit is then a crash). */
  intent: string | undefined;
  /** Its exit counts as a failure of the slot (crash, hang, readiness timeout), not a retirement. */
  failure = true;
  /** Set when the worker should be replaced when possible (memory, served count, request). */
  recycleWanted: string | undefined;
  /** The recycle asked for is routine (a request, not memory): its lines are logged at debug. */
  recycleRoutine = false;
  /** Started, retired or taken as routine (recycling, take()): its lines are logged at debug. */
  routine = false;
  killTimer: NodeJS.Timeout | undefined;
  /** Date.now() at which killTimer fires, ms. */
  killDeadline = Number.POSITIVE_INFINITY;
  exited = false;
  readonly readyAbort = new AbortController();
  readonly gone: Promise<void>;
  markGone!: () => void;
  /** It sent a supervisor-protocol message (it joined with joinSupervisor), so it answers a retire. */
  speaksProtocol = false;
  /** Resolves when a retired worker answered that it takes no new work, or exited. */
  readonly stoppedTaking: Promise<void>;
  markStoppedTaking!: () => void;
  /** Resolves when ready, rejects when it exits or times out first. */
  ready!: Promise<void>;

  constructor(
    readonly slot: number,
    readonly spawnId: number,
    readonly child: SupervisedChild,
  ) {
    this.gone = new Promise((resolve) => {
      this.markGone = resolve;
    });
    this.stoppedTaking = new Promise((resolve) => {
      this.markStoppedTaking = resolve;
    });
  }

  get workerId(): number {
    return this.slot + 1;
  }

  get pid(): number | undefined {
    return this.child.pid;
  }

  send(message: unknown, handle?: SendHandle, options: MessageOptions = {}): Promise<void> {
    return new Promise((resolve, reject) => {
      if (!this.child.connected) return reject(new Error(`worker ${this.pid} has no IPC channel`));
      try {
        this.child.send(message, handle, options, (err) => (err ? reject(err) : resolve()));
      } catch (err) {
        reject(err);
      }
    });
  }
}

interface Slot {
  readonly index: number;
  /** The worker in service (or starting to be). */
  current: Worker | undefined;
  /** A replacement being started while `current` serves. */
  next: Worker | undefined;
  replacing: Promise<void> | undefined;
  failures: number;
  restartTimer: NodeJS.Timeout | undefined;
  /** No recycling before this Date.now() (a failed replacement backs off too), ms. */
  recycleNotBefore: number;
}

/** Bus messages (base64 bytes) the daemon holds for one worker before that worker misses some. */
const RELAY_MAX_BYTES = 16 * 1024 * 1024;
/** How long a reload waits for its old workers to say they take no new work before it is done anyway, ms. */
const RETIRE_ANSWER_MS = 2000;

export class Supervisor extends EventEmitter<SupervisorEvents> {
  readonly size: number;
  private readonly spec: WorkerSpec;
  private readonly log: Logger;
  // The next five change on a config reload (reconfigure()).
  private backoff: BackoffOptions;
  private readonly readyTimeoutMs: number;
  private hangTimeoutMs: number;
  private heartbeatMs: number;
  /** heartbeatMs was given, not derived from hangTimeoutMs. */
  private readonly heartbeatFixed: boolean;
  private maxRssBytes: number;
  private retireGraceMs: number;
  private readonly killMarginMs: number;
  private readonly crashLoopAfter: number;
  private readonly readiness: Readiness;
  private readonly slots: Slot[];
  /** Live workers outside any slot: retiring, or taken by the model. */
  private readonly detached = new Set<Worker>();
  private spawnSeq = 0;
  private failedExits = 0;
  private plannedExits = 0;
  private started = false;
  private stopping: Promise<void> | undefined;
  private tickTimer: NodeJS.Timeout | undefined;
  private lastTickAt = Date.now();
  private reloadRunning: Promise<ReloadResult> | undefined;
  private reloadQueued: Promise<ReloadResult> | undefined;
  private startDone: (() => void) | undefined;
  /** Bus messages a worker missed because it did not keep up (see relay()). */
  private readonly relayDropped: ThrottledCount;

  constructor(opts: SupervisorOptions) {
    super();
    if (!(Number.isInteger(opts.size) && opts.size >= 1)) {
      throw new RangeError(`supervisor: size must be an integer >= 1, got ${opts.size}`);
    }
    this.size = opts.size;
    this.spec = opts.spec;
    this.log = opts.logger.child({ supervisor: opts.name ?? 'workers' });
    this.backoff = { ...DEFAULT_BACKOFF, ...opts.backoff };
    checkBackoff(this.backoff);
    this.readyTimeoutMs = nonNegative('readyTimeoutMs', opts.readyTimeoutMs ?? 30_000);
    this.hangTimeoutMs = nonNegative('hangTimeoutMs', opts.hangTimeoutMs ?? 0);
    this.heartbeatFixed = opts.heartbeatMs !== undefined;
    this.heartbeatMs = nonNegative('heartbeatMs', opts.heartbeatMs ?? defaultHeartbeatMs(this.hangTimeoutMs));
    this.maxRssBytes = nonNegative('maxRssBytes', opts.maxRssBytes ?? 0);
    this.retireGraceMs = nonNegative('retireGraceMs', opts.retireGraceMs ?? 10_000);
    this.killMarginMs = nonNegative('killMarginMs', opts.killMarginMs ?? 2000);
    this.crashLoopAfter = opts.crashLoopAfter ?? 3;
    this.relayDropped = new ThrottledCount(
      this.log,
      'broadcast not delivered to a worker that does not keep up',
    );
    this.readiness = opts.spec.readiness ?? readyOnMessage();
    this.slots = Array.from({ length: this.size }, (_, index) => ({
      index,
      current: undefined,
      next: undefined,
      replacing: undefined,
      failures: 0,
      restartTimer: undefined,
      recycleNotBefore: 0,
    }));
  }

  /**
   * Starts every slot in parallel; resolves once each slot has had a ready worker (or on stop).
   * A slot that never gets ready (crash loop) keeps it pending: do not block serving on it.
   */
  start(): Promise<void> {
    if (this.started) throw new Error('supervisor: already started');
    this.started = true;
    this.lastTickAt = Date.now();
    this.tickTimer = setInterval(() => this.tick(), this.heartbeatMs);
    this.tickTimer.unref();
    return new Promise((resolve) => {
      const pending = new Set(this.slots.map((s) => s.index));
      const onReady = (w: WorkerHandle) => {
        pending.delete(w.slot);
        if (pending.size === 0) this.startDone?.();
      };
      this.startDone = () => {
        this.startDone = undefined;
        this.off('ready', onReady);
        resolve();
      };
      this.on('ready', onReady);
      for (const slot of this.slots) this.launchCurrent(slot);
    });
  }

  /** Live workers: in service, starting, taken and retiring. */
  workers(): WorkerHandle[] {
    const out: Worker[] = [];
    for (const s of this.slots) {
      if (s.current) out.push(s.current);
      if (s.next) out.push(s.next);
    }
    return [...out, ...this.detached];
  }

  /** What runs now, for `tcpdaemon status` and the library's handle.status(). */
  status(): SupervisorStatus {
    const now = Date.now();
    const workers = (this.workers() as Worker[]).map((w) => ({
      workerId: w.workerId,
      pid: w.pid,
      state: w.state,
      uptimeS: Math.round((now - w.startedAt) / 100) / 10,
      served: w.served,
      active: w.active,
      rssBytes: w.rssBytes,
      silentMs: now - w.lastSignOfLife,
    }));
    return {
      workers,
      started: this.spawnSeq,
      failedExits: this.failedExits,
      plannedExits: this.plannedExits,
      crashLooping: this.slots.filter((s) => s.failures >= this.crashLoopAfter).map((s) => s.index + 1),
    };
  }

  /** The last heartbeat reports of the live workers that send one (see WorkerChannel.setReport). */
  reports(): unknown[] {
    return (this.workers() as Worker[]).flatMap((w) => (w.report === undefined ? [] : [w.report]));
  }

  /** The workers in service now. */
  readyWorkers(): WorkerHandle[] {
    return this.slots.flatMap((s) => (s.current?.state === 'ready' ? [s.current] : []));
  }

  /** Sends `message` to every live worker with an IPC channel (e.g. `{ tdw: 'reopen-log' }`). */
  broadcast(message: SupervisorMessage | object): void {
    for (const w of this.workers()) (w as Worker).send(message).catch(() => undefined);
  }

  /**
   * A worker-bus message from the daemon itself (from 0) to every live worker, starting ones
   * included (a worker's IPC holds it until its channel listens), bounded as relayed ones are.
   */
  publish(topic: string, data: Uint8Array): void {
    this.relay(0, topic, Buffer.from(data).toString('base64'));
  }

  /**
   * Asks for `slot`'s worker to be replaced: a new one starts, and once it is ready the old one
   * retires gracefully. Repeated asks while one is underway are merged.
   */
  recycle(slot: number, reason: string): void {
    const w = this.slots[slot]?.current;
    if (w) this.wantRecycle(w, reason, true);
  }

  /**
   * Takes a ready worker out of its slot for the model's own use (IF: one connection), and starts
   * its slot's replacement at once. A taken worker is never recycled, reloaded or restarted: it
   * ends when it likes, and its exit is expected ('exit' with reason 'taken', logged at debug);
   * stop() retires it with the others. False (nothing done) when `worker` is not ready in its slot.
   */
  take(worker: WorkerHandle): boolean {
    const w = worker as Worker;
    const slot = this.slots[w.slot];
    if (!slot || slot.current !== w || w.state !== 'ready' || this.stopping) return false;
    w.state = 'taken';
    w.intent = 'taken';
    w.failure = false;
    w.routine = true;
    slot.current = undefined;
    this.detached.add(w);
    // A replacement already starting (recycling) takes the slot when ready; else start one, on
    // the next turn: forking takes the daemon a few ms, and the caller has a connection to hand over.
    setImmediate(() => {
      if (!this.stopping && slot.current === undefined && !slot.next) this.launchCurrent(slot, true);
    });
    return true;
  }

  /**
   * A config reload: new supervision values for what happens from now on (restarts, hang checks,
   * recycling, drains). Workers already running keep the heartbeat period they were started with,
   * and are judged hung only after four of their own periods at least.
   */
  reconfigure(
    opts: Pick<SupervisorOptions, 'backoff' | 'hangTimeoutMs' | 'maxRssBytes' | 'retireGraceMs'>,
  ): void {
    const backoff = { ...this.backoff, ...opts.backoff };
    checkBackoff(backoff);
    this.backoff = backoff;
    if (opts.hangTimeoutMs !== undefined)
      this.hangTimeoutMs = nonNegative('hangTimeoutMs', opts.hangTimeoutMs);
    if (opts.maxRssBytes !== undefined) this.maxRssBytes = nonNegative('maxRssBytes', opts.maxRssBytes);
    if (opts.retireGraceMs !== undefined)
      this.retireGraceMs = nonNegative('retireGraceMs', opts.retireGraceMs);
    const heartbeatMs = this.heartbeatFixed ? this.heartbeatMs : defaultHeartbeatMs(this.hangTimeoutMs);
    if (heartbeatMs === this.heartbeatMs || this.tickTimer === undefined || this.stopping) return;
    this.heartbeatMs = heartbeatMs;
    clearInterval(this.tickTimer);
    this.tickTimer = setInterval(() => this.tick(), this.heartbeatMs);
    this.tickTimer.unref();
  }

  /** Kills `worker` at once (SIGKILL); it is restarted like a crashed one. */
  kill(worker: WorkerHandle, reason: string): void {
    const w = worker as Worker;
    if (w.exited) return;
    if (w.intent === undefined) {
      w.intent = reason;
      w.failure = true;
    }
    signal(w, 'SIGKILL');
  }

  /**
   * Rolling reload: slot by slot, start a replacement, wait until it is ready, then retire the old
   * worker gracefully. Stops at the first replacement that fails (the old workers keep serving).
   * A reload asked for while one runs is queued once.
   */
  reload(): Promise<ReloadResult> {
    if (this.reloadRunning === undefined) {
      this.reloadRunning = this.runReload().finally(() => {
        this.reloadRunning = undefined;
        // Recycles asked for meanwhile waited for the reload: do not leave them to the next tick.
        for (const slot of this.slots) this.maybeRecycle(slot);
      });
      return this.reloadRunning;
    }
    this.reloadQueued ??= this.reloadRunning.then(() => {
      this.reloadQueued = undefined;
      return this.reload();
    });
    return this.reloadQueued;
  }

  /**
   * Graceful stop: no more restarts; every worker is told to finish within `graceMs`; one still
   * alive killMarginMs later is SIGKILLed. Resolves when all workers have exited and been reaped.
   * Idempotent.
   */
  stop(graceMs: number = this.retireGraceMs): Promise<void> {
    if (this.stopping) return this.stopping;
    clearInterval(this.tickTimer);
    this.startDone?.();
    const live = this.workers() as Worker[];
    for (const slot of this.slots) {
      clearTimeout(slot.restartTimer);
      slot.restartTimer = undefined;
    }
    for (const w of live) this.retire(w, 'stop', graceMs);
    this.log.info({ workers: live.length, graceMs }, 'stopping workers');
    this.stopping = Promise.all(live.map((w) => w.gone)).then(() => {
      this.log.info('workers stopped');
    });
    return this.stopping;
  }

  // ---- internals ----

  private launchCurrent(slot: Slot, routine = false): void {
    const w = this.launch(slot);
    if (!w) return;
    w.routine = routine;
    slot.current = w;
    w.ready.then(
      () => {
        if (slot.current === w && !this.stopping) this.emit('ready', w);
      },
      () => undefined, // the exit handler accounts for it
    );
  }

  /** Spawns a worker for `slot`; undefined if the spec could not even start it (retried later). */
  private launch(slot: Slot): Worker | undefined {
    if (this.stopping) return undefined;
    const spawnId = ++this.spawnSeq;
    const ctx: WorkerStartContext = {
      slot: slot.index,
      workerId: slot.index + 1,
      spawnId,
      env: {
        [ENV.supervised]: '1',
        [ENV.workerId]: String(slot.index + 1),
        [ENV.spawnId]: String(spawnId),
        [ENV.heartbeatMs]: String(this.heartbeatMs),
        [ENV.graceMs]: String(this.retireGraceMs),
      },
    };
    let child: SupervisedChild;
    try {
      child = this.spec.start(ctx);
    } catch (err) {
      const { failures, delayMs } = accountExit(slot.failures, 0, this.backoff);
      slot.failures = failures;
      this.log.error(
        { slot: slot.index, err, failures, nextDelayMs: delayMs },
        'worker could not be started',
      );
      this.scheduleRestart(slot, delayMs);
      return undefined;
    }
    const w = new Worker(slot.index, spawnId, child);
    w.heartbeatMs = this.heartbeatMs;
    this.log.debug({ slot: slot.index, workerPid: child.pid, spawnId }, 'worker starting');
    child.on('exit', (code, sig) => this.onExit(w, code, sig));
    child.on('error', (err) => {
      // A failed spawn reports here and never emits 'exit'.
      if (child.pid === undefined) {
        this.log.error({ slot: slot.index, err: err.message }, 'worker could not be spawned');
        this.onExit(w, null, null);
      } else {
        this.log.debug({ slot: slot.index, workerPid: child.pid, err: err.message }, 'worker channel error');
      }
    });
    child.on('message', (m: unknown, handle: unknown) => this.onMessage(w, m, handle));
    w.ready = this.awaitReady(w);
    return w;
  }

  private async awaitReady(w: Worker): Promise<void> {
    const timer =
      this.readyTimeoutMs > 0
        ? setTimeout(() => {
            if (w.state !== 'starting' || w.exited) return;
            this.log.error(
              { slot: w.slot, workerPid: w.pid, readyTimeoutMs: this.readyTimeoutMs },
              'worker not ready in time',
            );
            this.kill(w, 'not ready');
          }, this.readyTimeoutMs)
        : undefined;
    try {
      await this.readiness(w, w.readyAbort.signal);
    } finally {
      clearTimeout(timer);
    }
    if (w.exited) throw new Error('exited before it was ready');
    if (w.state !== 'starting') throw new Error(`${w.intent ?? 'retired'} before it was ready`);
    w.state = 'ready';
    w.readyAt = Date.now();
    w.lastSignOfLife = w.readyAt;
    this.log[w.routine ? 'debug' : 'info'](
      { slot: w.slot, workerPid: w.pid, startMs: w.readyAt - w.startedAt },
      'worker ready',
    );
  }

  private onMessage(w: Worker, m: unknown, handle: unknown): void {
    w.lastSignOfLife = Date.now();
    if (!isProtocolMessage(m)) {
      this.emit('message', w, m, handle);
      return;
    }
    const msg = m as WorkerMessage;
    w.speaksProtocol = true;
    if (msg.tdw === 'hb') {
      w.served = Number(msg.served) || 0;
      w.active = Number(msg.active) || 0;
      w.rssBytes = Number(msg.rssBytes) || undefined;
      if (msg.report !== undefined) w.report = msg.report;
      if (msg.metrics !== undefined) this.emit('metrics', w, msg.metrics);
    } else if (msg.tdw === 'recycle') {
      this.wantRecycle(w, String(msg.reason), true);
    } else if (msg.tdw === 'retiring') {
      w.markStoppedTaking();
    } else if (msg.tdw === 'bcast') {
      this.relay(w.workerId, msg.topic, msg.data);
    }
  }

  /**
   * A bus message from `from` goes to every live worker, the sender included. What waits to be
   * written to one worker is bounded (RELAY_MAX_BYTES): past it that worker misses the message,
   * counted and logged, and the others still get it.
   */
  private relay(from: number, topic: string, data: string): void {
    const message = { tdw: 'bcast', topic, data, from };
    const size = data.length;
    for (const w of this.workers() as Worker[]) {
      if (w.exited) continue;
      if (w.relayBytes + size > RELAY_MAX_BYTES) {
        this.relayDropped.add({ workerId: w.workerId, topic, pendingBytes: w.relayBytes });
        continue;
      }
      w.relayBytes += size;
      const written = () => {
        w.relayBytes -= size;
      };
      w.send(message).then(written, written);
    }
  }

  private onExit(w: Worker, code: number | null, sig: NodeJS.Signals | null): void {
    if (w.exited) return;
    w.exited = true;
    w.markStoppedTaking();
    clearTimeout(w.killTimer);
    w.readyAbort.abort(new Error(`exited (code ${code}, signal ${sig}) before it was ready`));
    const slot = this.slots[w.slot]!;
    if (slot.current === w) slot.current = undefined;
    if (slot.next === w) slot.next = undefined;
    this.detached.delete(w);
    const info: ExitInfo = {
      code,
      signal: sig,
      uptimeMs: Date.now() - w.startedAt,
      reason: w.intent ?? 'crashed',
    };
    const fields = {
      slot: w.slot,
      workerPid: w.pid,
      code,
      signal: sig,
      uptimeMs: info.uptimeMs,
      reason: info.reason,
      served: w.served,
    };
    if (!w.failure || this.stopping) this.plannedExits++;
    else this.failedExits++;
    if (!w.failure || this.stopping) {
      this.log[w.routine && !this.stopping ? 'debug' : 'info'](fields, 'worker exited');
    } else {
      const healthyMs = w.readyAt > 0 ? Date.now() - w.readyAt : 0;
      const { failures, delayMs } = accountExit(slot.failures, healthyMs, this.backoff);
      slot.failures = failures;
      slot.recycleNotBefore = Date.now() + delayMs;
      const crashLoop = failures >= this.crashLoopAfter;
      // A replacement already starting (or the worker it was replacing) fills the slot.
      const restarts = slot.next === undefined && slot.current === undefined;
      const nextDelayMs = restarts ? delayMs : null;
      const level = crashLoop ? 'error' : 'warn';
      this.log[level]({ ...fields, failures, nextDelayMs, crashLoop }, 'worker exited');
      if (restarts) this.scheduleRestart(slot, delayMs);
    }
    this.emit('exit', w, info);
    w.markGone();
  }

  private scheduleRestart(slot: Slot, delayMs: number): void {
    if (this.stopping) return;
    clearTimeout(slot.restartTimer);
    slot.restartTimer = setTimeout(() => {
      slot.restartTimer = undefined;
      if (!this.stopping && slot.current === undefined) this.launchCurrent(slot);
    }, delayMs);
  }

  /** Starts a replacement for `slot.current`, and once it is ready, retires the old worker. */
  private replace(slot: Slot, reason: string, routine = false): Promise<void> {
    const run = async () => {
      const w = this.launch(slot);
      if (!w) throw new Error(this.stopping ? 'stopping' : 'could not be started');
      w.routine = routine;
      slot.next = w;
      await w.ready;
      slot.next = undefined;
      const old = slot.current;
      slot.current = w;
      clearTimeout(slot.restartTimer);
      slot.restartTimer = undefined;
      this.emit('ready', w);
      if (old) {
        old.routine = routine;
        this.retire(old, reason, this.retireGraceMs);
      }
    };
    const p = run().finally(() => {
      if (slot.replacing !== p) return;
      slot.replacing = undefined;
      // The new worker may have asked to be recycled already (a small -n): do not wait a tick.
      this.maybeRecycle(slot);
    });
    slot.replacing = p;
    return p;
  }

  /** Marks `w` for replacement; a worker still starting is replaced once it is in service. */
  private wantRecycle(w: Worker, reason: string, routine: boolean): void {
    if (w.exited || w.intent !== undefined) return;
    if (w.recycleWanted === undefined) {
      w.recycleWanted = reason;
      w.recycleRoutine = routine;
    }
    this.maybeRecycle(this.slots[w.slot]!);
  }

  private maybeRecycle(slot: Slot): void {
    const w = slot.current;
    if (!w?.recycleWanted || w.state !== 'ready' || this.stopping || this.reloadRunning) return;
    if (slot.replacing || Date.now() < slot.recycleNotBefore) return;
    const reason = `recycle: ${w.recycleWanted}`;
    this.log[w.recycleRoutine ? 'debug' : 'info'](
      { slot: slot.index, workerPid: w.pid, reason: w.recycleWanted, served: w.served },
      'recycling worker',
    );
    this.replace(slot, reason, w.recycleRoutine).catch((err: Error) => {
      if (this.stopping) return;
      this.log.error(
        { slot: slot.index, workerPid: w.pid, err: err.message },
        'recycle failed; the old worker keeps serving',
      );
    });
  }

  private retire(w: Worker, reason: string, graceMs: number): void {
    if (w.exited) return;
    const deadline = Date.now() + graceMs + this.killMarginMs;
    if (w.state === 'retiring') {
      this.armKill(w, deadline); // already draining: a stop may only shorten the deadline
      return;
    }
    const inService = w.state === 'ready' || w.state === 'taken';
    w.intent = reason;
    w.failure = false;
    w.state = 'retiring';
    const slot = this.slots[w.slot]!;
    if (slot.current === w) slot.current = undefined;
    if (slot.next === w) slot.next = undefined;
    this.detached.add(w);
    if (inService) this.emit('retire', w);
    if (inService && w.child.connected) {
      const msg: SupervisorMessage = { tdw: 'retire', graceMs };
      w.send(msg).catch(() => signal(w, 'SIGTERM'));
    } else {
      signal(w, 'SIGTERM');
    }
    this.armKill(w, deadline);
  }

  private armKill(w: Worker, deadline: number): void {
    if (w.killDeadline <= deadline) return;
    w.killDeadline = deadline;
    this.setKillTimer(w);
  }

  /** Long deadlines are reached in steps of at most MAX_TIMER_MS. */
  private setKillTimer(w: Worker): void {
    clearTimeout(w.killTimer);
    const left = w.killDeadline - Date.now();
    w.killTimer = setTimeout(
      () => {
        if (w.killDeadline - Date.now() > 0) return this.setKillTimer(w);
        this.log.warn(
          { slot: w.slot, workerPid: w.pid, reason: w.intent },
          'worker did not finish in time; killing it',
        );
        signal(w, 'SIGKILL');
      },
      Math.min(MAX_TIMER_MS, Math.max(0, left)),
    );
  }

  private async runReload(): Promise<ReloadResult> {
    this.log.info({ workers: this.size }, 'reload started');
    let replaced = 0;
    const retired: Worker[] = [];
    for (const slot of this.slots) {
      await slot.replacing?.catch(() => undefined);
      if (this.stopping) return { ok: false, slot: slot.index, error: 'stopping' };
      try {
        const old = slot.current;
        if (old?.state === 'ready') {
          await this.replace(slot, 'reload');
          retired.push(old);
        } else {
          // Nothing in service here (crashed, backing off, or starting old code): start afresh now.
          clearTimeout(slot.restartTimer);
          slot.restartTimer = undefined;
          if (slot.current) this.retire(slot.current, 'reload', 0);
          slot.failures = 0;
          this.launchCurrent(slot);
          if (!slot.current) throw new Error(this.stopping ? 'stopping' : 'could not be started');
          await (slot.current as Worker).ready;
        }
        replaced++;
      } catch (err) {
        const error = (err as Error).message;
        if (this.stopping) return { ok: false, slot: slot.index, error: 'stopping' };
        this.log.error(
          { slot: slot.index, err: error, replaced },
          'reload failed; remaining workers keep serving',
        );
        return { ok: false, slot: slot.index, error };
      }
    }
    // Done means the old code takes nothing new: each old worker closes its listener when it gets
    // the retire message, which a busy one reads late (IOMP and TLF accept on the shared socket).
    const late = await this.untilStoppedTaking(retired.filter((w) => w.speaksProtocol));
    if (late.length > 0 && !this.stopping)
      this.log.warn(
        { workerPids: late.map((w) => w.pid), waitedMs: RETIRE_ANSWER_MS },
        'reload: old workers did not answer the retire in time; they may still take connections until they do',
      );
    this.log.info({ replaced }, 'reload done');
    return { ok: true, replaced };
  }

  /** The workers of `retired` that did not say they stopped taking work within RETIRE_ANSWER_MS. */
  private async untilStoppedTaking(retired: Worker[]): Promise<Worker[]> {
    const answered = new Set<Worker>();
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([
      Promise.all(retired.map((w) => w.stoppedTaking.then(() => answered.add(w)))),
      new Promise((resolve) => {
        timer = setTimeout(resolve, RETIRE_ANSWER_MS);
      }),
    ]);
    clearTimeout(timer);
    return retired.filter((w) => !answered.has(w));
  }

  /** Hang detection and recycling checks, every heartbeatMs. */
  private tick(): void {
    const now = Date.now();
    const stalled = now - this.lastTickAt > this.heartbeatMs + this.hangTimeoutMs / 2;
    this.lastTickAt = now;
    for (const slot of this.slots) {
      const w = slot.current;
      if (w?.state !== 'ready') continue;
      if (stalled) {
        // Our own loop was blocked: heartbeats may be waiting unread; judge nobody this round.
        w.lastSignOfLife = now;
      } else if (
        this.hangTimeoutMs > 0 &&
        this.heartbeatsOn(w) &&
        now - w.lastSignOfLife > this.hangLimitMs(w)
      ) {
        this.log.error(
          { slot: slot.index, workerPid: w.pid, silentMs: now - w.lastSignOfLife },
          'worker hung; killing it',
        );
        this.kill(w, 'hung');
        continue;
      }
      if (this.maxRssBytes > 0) this.checkRss(slot, w);
      this.maybeRecycle(slot);
    }
  }

  /** A worker started before a reload changed the heartbeat period gets four of its own periods. */
  private hangLimitMs(w: Worker): number {
    if (w.heartbeatMs === this.heartbeatMs) return this.hangTimeoutMs;
    return Math.max(this.hangTimeoutMs, 4 * w.heartbeatMs);
  }

  private heartbeatsOn(w: Worker): boolean {
    return this.spec.heartbeats ?? w.child.connected;
  }

  private checkRss(slot: Slot, w: Worker): void {
    const judge = (rss: number | undefined) => {
      if (rss === undefined || rss <= this.maxRssBytes || w.recycleWanted) return;
      w.recycleWanted = `rss ${Math.round(rss / 1048576)} MB > ${Math.round(this.maxRssBytes / 1048576)} MB`;
      w.recycleRoutine = false;
      this.maybeRecycle(slot);
    };
    if (this.heartbeatsOn(w) && w.rssBytes !== undefined) judge(w.rssBytes);
    else if (w.pid !== undefined) readRssBytes(w.pid).then(judge, () => undefined);
  }
}

function signal(w: Worker, sig: NodeJS.Signals): void {
  if (w.exited || w.child.pid === undefined) return;
  try {
    w.child.kill(sig);
  } catch {
    // already gone; 'exit' follows
  }
}

/** Heartbeats four times per hang timeout, at most once a second. */
function defaultHeartbeatMs(hangTimeoutMs: number): number {
  return hangTimeoutMs > 0 ? Math.min(1000, Math.max(10, hangTimeoutMs / 4)) : 1000;
}

function nonNegative(name: string, v: number): number {
  if (!(Number.isFinite(v) && v >= 0))
    throw new RangeError(`supervisor: ${name} must be a number >= 0, got ${v}`);
  return v;
}
