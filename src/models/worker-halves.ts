// The one place that maps a model name to its worker half (what a worker process of that model
// does; src/worker/run.ts runs it). Imports only the worker halves: the worker entry bundles this.
// TLF has none here: its threads start from tlf/thread-main.ts.
import type { ModelName } from '../types.js';
import type { WorkerHalf } from '../worker/half.js';
import { ifWorker } from './if/worker.js';
import { iompWorker } from './iomp/worker.js';
import { lfWorker } from './lf/worker.js';

const HALVES: Partial<Record<ModelName, WorkerHalf>> = {
  IOMP: iompWorker,
  LF: lfWorker,
  IF: ifWorker,
};

export function workerHalfFor(model: ModelName): WorkerHalf {
  const half = HALVES[model];
  if (!half) throw new Error(`tcpdaemon: model ${model} has no worker processes`);
  return half;
}
