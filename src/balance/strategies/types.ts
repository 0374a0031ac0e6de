/**
 * The one load-balancing interface. A strategy is a small stateful value chosen by name
 * (see `index.ts`); the pool hands it the backends that may be picked right now and it
 * returns one of them. Strategies never mutate candidates and never do I/O.
 */

/** What a strategy may look at. */
export interface Candidate {
  /** Stable and unique: `host:port` or a unix socket path. */
  readonly id: string;
  /** Relative share of new connections, integer >= 1. */
  readonly weight: number;
  /** Connections open to this backend right now (this process). */
  readonly active: number;
}

export interface PickContext {
  /** Affinity key for `hash`: the client's address (no port). Other strategies ignore it. */
  readonly clientKey: string;
}

export interface Strategy {
  readonly name: string;
  /**
   * One of `candidates`, or undefined when it is empty. Every candidate is eligible
   * (healthy, not yet tried for this connection); order carries no meaning.
   */
  pick<C extends Candidate>(ctx: PickContext, candidates: readonly C[]): C | undefined;
}

export interface StrategyOptions {
  /** Uniform in [0, 1); `p2c` draws from it. Default Math.random (tests pass a seeded one). */
  random?: () => number;
  /** Ring points per unit of weight for `hash`. Default 160. */
  virtualNodes?: number;
}

/** Builds a fresh strategy; each pool owns its own (round-robin position, hash ring). */
export type StrategyFactory = (opts: StrategyOptions) => Strategy;
