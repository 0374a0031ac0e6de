import type { Candidate, PickContext, Strategy, StrategyOptions } from './types.js';

/**
 * Consistent hashing on the client key. Every backend owns `virtualNodes * weight` points on
 * a 32-bit ring, at positions that depend only on its id; a key belongs to the first point
 * clockwise from hash(key) whose backend is a candidate. So removing (or skipping an
 * unhealthy or already-tried) backend moves only the keys it owned, and adding one moves
 * only the keys it takes over: about 1/N of them.
 */
export function createHash(opts: StrategyOptions): Strategy {
  const perWeight = opts.virtualNodes ?? 160;
  let ring = buildRing([], perWeight);
  return {
    name: 'hash',
    pick<C extends Candidate>(ctx: PickContext, candidates: readonly C[]): C | undefined {
      if (candidates.length <= 1) return candidates[0];
      const byId = new Map<string, C>();
      for (const c of candidates) byId.set(c.id, c);
      // The ring is a cache: rebuild it when a candidate (or a weight) is new to it. Points
      // are deterministic, so a rebuilt ring maps keys exactly as the old one did.
      if (candidates.some((c) => ring.weights.get(c.id) !== c.weight))
        ring = buildRing(candidates, perWeight);
      const { points, owners } = ring;
      let i = lowerBound(points, hash32(ctx.clientKey));
      for (let k = 0; k < points.length; k++, i++) {
        if (i === points.length) i = 0;
        const c = byId.get(owners[i]!);
        if (c !== undefined) return c;
      }
      return candidates[0];
    },
  };
}

interface Ring {
  /** Sorted ascending. */
  points: Uint32Array;
  /** owners[i] is the backend id at points[i]. */
  owners: string[];
  /** Weight each id was built with. */
  weights: Map<string, number>;
}

function buildRing(candidates: readonly Candidate[], perWeight: number): Ring {
  const entries: { point: number; id: string }[] = [];
  const weights = new Map<string, number>();
  for (const c of candidates) {
    weights.set(c.id, c.weight);
    for (let v = 0; v < perWeight * c.weight; v++) entries.push({ point: hash32(`${c.id}#${v}`), id: c.id });
  }
  // Ties on a point (rare) are settled by id so the ring does not depend on input order.
  entries.sort((a, b) => a.point - b.point || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  return { points: Uint32Array.from(entries, (e) => e.point), owners: entries.map((e) => e.id), weights };
}

/** First index whose point is >= x (points.length when none). */
function lowerBound(points: Uint32Array, x: number): number {
  let lo = 0;
  let hi = points.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (points[mid]! < x) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/** FNV-1a over UTF-16 code units, then murmur3's finalizer so near-equal strings spread out. */
export function hash32(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}
