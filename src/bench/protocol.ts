// Messages between the main thread (pool.ts) and a load thread (thread.ts).
// main -> thread: workerData ThreadInit; then `start` once every thread is ready, then `stop`.
// thread -> main: `ready`; `ramped` (hold mode, once); `result` after `stop`, then it exits.
import type { RampResult } from './engine.js';
import type { BenchOptions } from './options.js';
import type { TallyData } from './tally.js';

export interface ThreadInit {
  options: BenchOptions;
  connIds: number[];
}

export type ToThread = { type: 'start' } | { type: 'stop' };

export type FromThread =
  | { type: 'ready' }
  | ({ type: 'ramped' } & RampResult)
  | {
      type: 'result';
      tally: TallyData;
      /** Event-loop utilization 0..1 between start and stop. */
      busy: number;
    };
