// The one place that maps a model name to its implementation.
import { ParamError, type ResolvedParams } from '../params.js';
import type { ModelName } from '../types.js';
import { instantFork } from './if.js';
import { iomp } from './iomp.js';
import { lf } from './lf.js';
import type { Model } from './model.js';
import { tlf } from './tlf.js';

const MODELS: Record<ModelName, Model | undefined> = {
  IOMP: iomp,
  LF: lf,
  IF: instantFork,
  TLF: tlf,
};

/** The model for these parameters; ParamError when it cannot run them (yet). */
export function modelFor(params: ResolvedParams): Model {
  const model = MODELS[params.model];
  if (!model) throw new ParamError(`model ${params.model} is not available yet`);
  const why = model.unavailable(params);
  if (why) throw new ParamError(why);
  return model;
}
