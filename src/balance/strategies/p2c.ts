import type { Candidate, PickContext, Strategy, StrategyOptions } from './types.js';

/**
 * Power of two choices: draw two distinct candidates at random and keep the one with fewer
 * active connections per unit of weight. Nearly as even as least-connections, O(1) per
 * pick, and no herd: several front workers with stale counts do not all pile onto the same
 * "least loaded" backend.
 */
export function createP2C(opts: StrategyOptions): Strategy {
  const random = opts.random ?? Math.random;
  return {
    name: 'p2c',
    pick<C extends Candidate>(_ctx: PickContext, candidates: readonly C[]): C | undefined {
      const n = candidates.length;
      if (n <= 1) return candidates[0];
      const i = Math.floor(random() * n);
      let j = Math.floor(random() * (n - 1));
      if (j >= i) j++;
      const a = candidates[i]!;
      const b = candidates[j]!;
      return b.active / b.weight < a.active / a.weight ? b : a;
    },
  };
}
