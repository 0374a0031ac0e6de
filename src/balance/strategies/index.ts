import { createHash } from './hash.js';
import { createLeastConn } from './leastconn.js';
import { createP2C } from './p2c.js';
import { createRoundRobin } from './roundrobin.js';
import type { Strategy, StrategyFactory, StrategyOptions } from './types.js';

export type { Candidate, PickContext, Strategy, StrategyFactory, StrategyOptions } from './types.js';

/** Every load-balancing strategy, by the name `--strategy` takes. */
export const STRATEGIES = {
  roundrobin: createRoundRobin,
  leastconn: createLeastConn,
  p2c: createP2C,
  hash: createHash,
} as const satisfies Record<string, StrategyFactory>;

export type StrategyName = keyof typeof STRATEGIES;

export const STRATEGY_NAMES = Object.keys(STRATEGIES) as StrategyName[];

/** Used when none is configured. */
export const DEFAULT_STRATEGY: StrategyName = 'p2c';

export function isStrategyName(name: string): name is StrategyName {
  return Object.hasOwn(STRATEGIES, name);
}

/** A fresh strategy by name; throws a one-line reason for an unknown name. */
export function createStrategy(name: string, opts: StrategyOptions = {}): Strategy {
  if (!isStrategyName(name)) {
    throw new Error(`unknown strategy '${name}' (expected one of ${STRATEGY_NAMES.join(', ')})`);
  }
  return STRATEGIES[name](opts);
}
