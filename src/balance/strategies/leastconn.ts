import type { Candidate, PickContext, Strategy } from './types.js';

/**
 * Fewest active connections per unit of weight. Ties are broken by a rotating start
 * position, so idle backends share a burst of new connections instead of the first one
 * in the list taking them all.
 */
export function createLeastConn(): Strategy {
  let rotation = 0;
  return {
    name: 'leastconn',
    pick<C extends Candidate>(_ctx: PickContext, candidates: readonly C[]): C | undefined {
      const n = candidates.length;
      if (n === 0) return undefined;
      const start = rotation++ % n;
      if (rotation >= 0x3fffffff) rotation = 0;
      let best = candidates[start]!;
      let bestLoad = best.active / best.weight;
      for (let k = 1; k < n; k++) {
        const c = candidates[(start + k) % n]!;
        const load = c.active / c.weight;
        if (load < bestLoad) {
          best = c;
          bestLoad = load;
        }
      }
      return best;
    },
  };
}
