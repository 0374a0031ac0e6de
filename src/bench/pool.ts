// Main-thread side of a run: spreads the connections over load threads, starts them
// together, stops them after the duration (or, in hold mode, after the ramp and the hold),
// and adds up what they counted.
import { Worker } from 'node:worker_threads';
import type { RampResult } from './engine.js';
import type { BenchOptions } from './options.js';
import type { FromThread, ThreadInit, ToThread } from './protocol.js';
import { Tally } from './tally.js';

export interface RunOutcome {
  tally: Tally;
  /** Seconds between start and stop (echo, connect) or of the hold itself (hold). */
  elapsed: number;
  /** hold mode: the ramp, with its length in seconds. */
  ramp?: RampResult & { seconds: number };
  /** Event-loop utilization of each load thread, 0..1. */
  threadBusy: number[];
  /** CPU time of the whole tool divided by wall time, in cores. */
  cpuCores: number;
}

export interface RunHooks {
  /** hold mode: called once every connection is open or failed, before the hold. */
  onRamped?(ramp: RampResult): void;
}

/** ms a thread may take to load, or to report after `stop`. */
const THREAD_TIMEOUT_MS = 30_000;

export async function runLoad(options: BenchOptions, hooks: RunHooks = {}): Promise<RunOutcome> {
  const threads = splitConnections(options.connections, options.threads).map(
    (connIds) => new LoadThread({ options, connIds }),
  );
  try {
    await Promise.all(threads.map((t) => t.next('ready')));
    const cpu0 = process.cpuUsage();
    const t0 = performance.now();
    for (const t of threads) t.send({ type: 'start' });
    let ramp: RunOutcome['ramp'];
    let holdStart = t0;
    if (options.mode === 'hold') {
      const parts = await Promise.all(
        threads.map((t) => t.next('ramped', options.duration * 1000 + THREAD_TIMEOUT_MS)),
      );
      holdStart = performance.now();
      ramp = { open: 0, failed: 0, seconds: (holdStart - t0) / 1000 };
      for (const p of parts) {
        ramp.open += p.open;
        ramp.failed += p.failed;
      }
      hooks.onRamped?.(ramp);
      await sleep(options.holdSeconds * 1000);
    } else {
      await sleep(options.duration * 1000);
    }
    const elapsed = (performance.now() - holdStart) / 1000;
    for (const t of threads) t.send({ type: 'stop' });
    const results = await Promise.all(threads.map((t) => t.next('result')));
    const cpu = process.cpuUsage(cpu0);
    const wall = (performance.now() - t0) / 1000;
    const tally = new Tally();
    for (const r of results) tally.add(r.tally);
    return {
      tally,
      elapsed,
      ...(ramp ? { ramp } : {}),
      threadBusy: results.map((r) => r.busy),
      cpuCores: (cpu.user + cpu.system) / 1e6 / wall,
    };
  } finally {
    await Promise.all(threads.map((t) => t.terminate()));
  }
}

/** Connection ids 0..connections-1 in `threads` nearly equal, contiguous parts. */
export function splitConnections(connections: number, threads: number): number[][] {
  const parts: number[][] = [];
  let id = 0;
  for (let i = 0; i < threads; i++) {
    const n = Math.floor(connections / threads) + (i < connections % threads ? 1 : 0);
    parts.push(Array.from({ length: n }, () => id++));
  }
  return parts.filter((p) => p.length > 0);
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

type Message<T extends FromThread['type']> = Extract<FromThread, { type: T }>;

/** One worker thread and its messages, awaited in order of type. */
class LoadThread {
  private readonly worker: Worker;
  private readonly inbox: FromThread[] = [];
  private waiter: (() => void) | undefined;
  private failure: Error | undefined;

  constructor(init: ThreadInit) {
    this.worker = startWorker(init);
    this.worker.on('message', (m: FromThread) => {
      this.inbox.push(m);
      this.waiter?.();
    });
    this.worker.on('error', (err) => this.fail(new Error(`load thread failed: ${err.message}`)));
    this.worker.on('exit', (code) => this.fail(new Error(`load thread exited (code ${code})`)));
  }

  private fail(err: Error): void {
    this.failure ??= err;
    this.waiter?.();
  }

  send(msg: ToThread): void {
    this.worker.postMessage(msg);
  }

  /** The next message of type `type` (earlier messages of other types are skipped). */
  async next<T extends FromThread['type']>(type: T, timeoutMs = THREAD_TIMEOUT_MS): Promise<Message<T>> {
    const deadline = performance.now() + timeoutMs;
    for (;;) {
      const i = this.inbox.findIndex((m) => m.type === type);
      if (i >= 0) return this.inbox.splice(i, 1)[0] as Message<T>;
      if (this.failure) throw this.failure;
      const left = deadline - performance.now();
      if (left <= 0)
        throw new Error(`load thread sent no '${type}' within ${Math.round(timeoutMs / 1000)} s`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.waiter = () => {
          clearTimeout(timer);
          this.waiter = undefined;
          resolve();
        };
      });
    }
  }

  async terminate(): Promise<void> {
    this.worker.removeAllListeners('exit');
    await this.worker.terminate();
  }
}

/**
 * Starts thread.js, or thread.ts when this module runs from source under tsx: a worker
 * does not inherit tsx's loader in Node 20, so it registers it before importing.
 */
function startWorker(init: ThreadInit): Worker {
  if (!import.meta.url.endsWith('.ts')) {
    return new Worker(new URL('./thread.js', import.meta.url), { workerData: init });
  }
  const entry = new URL('./thread.ts', import.meta.url).href;
  const api = import.meta.resolve('tsx/esm/api');
  const code = `import(${JSON.stringify(api)}).then((m) => { m.register(); return import(${JSON.stringify(entry)}); });`;
  return new Worker(code, { eval: true, workerData: init });
}
