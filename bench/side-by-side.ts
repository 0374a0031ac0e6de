// Rounds of servers measured at the same time (bench/tls-side-by-side.ts): each round gives every
// server its operations and the CPU it used for them; a host whose speed moves between windows of a
// few seconds moves every server of a round alike, so per-round ratios cancel it.

/** One server's figures in one round. */
export interface SideRound {
  operations: number;
  /** utime + stime of the server's processes over the round, seconds. */
  cpuSeconds: number;
  seconds: number;
}

export interface SideSummary {
  name: string;
  /** Medians over the rounds. */
  usPerOp: number;
  perSecond: number;
  /** The reference's µs per operation ÷ this server's, per round (above 1: cheaper than the reference). */
  costRatio?: Spread;
  /** This server's operations per second ÷ the reference's, per round. */
  rateRatio?: Spread;
}

export interface Spread {
  median: number;
  low: number;
  high: number;
}

export function usPerOp(r: SideRound): number {
  return (r.cpuSeconds * 1e6) / r.operations;
}

/** Medians and per-round ratios to `reference` (one of `rounds`' keys); every server has the same rounds. */
export function summarise(rounds: Map<string, SideRound[]>, reference: string): SideSummary[] {
  const ref = rounds.get(reference);
  if (!ref) throw new Error(`reference ${reference} is not among the servers`);
  return [...rounds].map(([name, own]) => {
    if (own.length !== ref.length)
      throw new Error(`${name}: ${own.length} rounds, the reference ${ref.length}`);
    const summary: SideSummary = {
      name,
      usPerOp: median(own.map(usPerOp)),
      perSecond: median(own.map((r) => r.operations / r.seconds)),
    };
    if (name === reference) return summary;
    return {
      ...summary,
      costRatio: spread(own.map((r, k) => usPerOp(ref[k]!) / usPerOp(r))),
      rateRatio: spread(own.map((r, k) => r.operations / r.seconds / (ref[k]!.operations / ref[k]!.seconds))),
    };
  });
}

export function spread(values: number[]): Spread {
  if (values.length === 0) throw new Error('no values');
  const sorted = [...values].sort((a, b) => a - b);
  return { median: median(sorted), low: sorted[0]!, high: sorted.at(-1)! };
}

export function formatSpread(s: Spread | undefined): string {
  return s ? `${s.median.toFixed(2)}× (${s.low.toFixed(2)}–${s.high.toFixed(2)})` : '';
}

function median(values: number[]): number {
  const s = [...values].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 === 1 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}
