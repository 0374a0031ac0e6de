// The one place that maps a model name to its implementation.
import { ParamError, type ResolvedParams } from '../params.js';
import type { ModelName } from '../types.js';
import { instantFork } from './if/daemon.js';
import { iomp } from './iomp/daemon.js';
import { lf } from './lf/daemon.js';
import type { Model } from './model.js';
import { tlf } from './tlf/daemon.js';

const MODELS: Record<ModelName, Model> = {
  IOMP: iomp,
  LF: lf,
  IF: instantFork,
  TLF: tlf,
};

/** The model for these parameters; ParamError when it cannot run them. */
export function modelFor(params: ResolvedParams): Model {
  const model = MODELS[params.model];
  const why = model.unavailable(params);
  if (why) throw new ParamError(why);
  return model;
}
