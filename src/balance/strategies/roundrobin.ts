import type { Candidate, PickContext, Strategy } from './types.js';

/**
 * Smooth weighted round robin (the nginx scheme): each pick adds every candidate's weight
 * to its running score, takes the highest and subtracts the total from it. Weights 5,1,1
 * give a,a,b,a,c,a,a rather than a burst of five a's. With equal weights it is plain
 * round robin.
 */
export function createRoundRobin(): Strategy {
  /** Running score per backend id. Entries of ids that stop appearing are dropped lazily. */
  const score = new Map<string, number>();
  return {
    name: 'roundrobin',
    pick<C extends Candidate>(_ctx: PickContext, candidates: readonly C[]): C | undefined {
      let best: C | undefined;
      let bestScore = Number.NEGATIVE_INFINITY;
      let total = 0;
      for (const c of candidates) {
        const s = (score.get(c.id) ?? 0) + c.weight;
        score.set(c.id, s);
        total += c.weight;
        if (s > bestScore) {
          best = c;
          bestScore = s;
        }
      }
      if (best === undefined) return undefined;
      score.set(best.id, bestScore - total);
      if (score.size > 2 * candidates.length + 16) prune(score, candidates);
      return best;
    },
  };
}

function prune(score: Map<string, number>, candidates: readonly Candidate[]): void {
  const keep = new Set(candidates.map((c) => c.id));
  for (const id of score.keys()) if (!keep.has(id)) score.delete(id);
}
