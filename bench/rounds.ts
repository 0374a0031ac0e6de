// Repeated rounds: on 2 shared cores one 3-second run moves by ±30%, so a scenario with
// `rounds` runs that many times, and the report shows the median round and, for every ratio,
// the median and range of the ratios of the same round (runs next to each other in time).
import type { RunRecord } from './markdown.js';
import type { Scenario, ServerName } from './scenarios.js';

/** One round's figures of one (scenario, server), kept beside the median round's full record. */
export interface RoundFigures {
  perSecond: number;
  p50: number;
  p99: number;
  /** cores */
  serverCpu?: number;
}

/** One run to make: a scenario's server in a given round. */
export interface PlannedRun {
  scenario: Scenario;
  server: ServerName;
  round: number;
}

/**
 * The runs in order. Consecutive scenarios of one table with the same round count form a group;
 * a group runs round by round (every scenario of the group once per round), so the rounds of
 * scenarios compared with each other interleave. Round r starts at the r-th server of each
 * scenario, so no server always runs first after a scenario's start.
 */
export function planRuns(scenarios: Scenario[], roundsOf: (s: Scenario) => number): PlannedRun[] {
  const plan: PlannedRun[] = [];
  let i = 0;
  while (i < scenarios.length) {
    const first = scenarios[i]!;
    const rounds = roundsOf(first);
    let end = i + 1;
    while (end < scenarios.length && sameGroup(scenarios[end]!, first, roundsOf)) end++;
    for (let round = 0; round < rounds; round++) {
      for (const scenario of scenarios.slice(i, end)) {
        const n = scenario.servers.length;
        for (let k = 0; k < n; k++)
          plan.push({ scenario, server: scenario.servers[(k + round) % n]!, round });
      }
    }
    i = end;
  }
  return plan;
}

function sameGroup(a: Scenario, b: Scenario, roundsOf: (s: Scenario) => number): boolean {
  return a.table === b.table && roundsOf(a) === roundsOf(b);
}

/**
 * One record for the rounds of one (scenario, server), in round order: the median round's record
 * (by rate, so its columns belong together) with every round's figures. A failed round fails it.
 */
export function mergeRounds(records: RunRecord[]): RunRecord {
  if (records.length === 1) return records[0]!;
  const failed = records.findIndex((r) => !r.result);
  if (failed >= 0) {
    const r = records[failed]!;
    return { ...r, failure: `round ${failed + 1} of ${records.length}: ${r.failure ?? 'no result'}` };
  }
  const rounds = records.map((r) => figures(r));
  const order = records.map((_, k) => k).sort((a, b) => rounds[a]!.perSecond - rounds[b]!.perSecond);
  const median = records[order[Math.floor((order.length - 1) / 2)]!]!;
  return { ...median, rounds };
}

function figures(r: RunRecord): RoundFigures {
  const x = r.result!;
  return {
    perSecond: x.perSecond,
    p50: x.latencyMs.p50,
    p99: x.latencyMs.p99,
    ...(r.serverCpu !== undefined ? { serverCpu: r.serverCpu } : {}),
  };
}

/**
 * a's figure over b's: with rounds on both, the median of the per-round ratios and their range,
 * e.g. `1.04× (0.97–1.12)`; else the single ratio; '' when a figure is missing.
 */
export function pairedRatio(
  a: RunRecord | undefined,
  b: RunRecord | undefined,
  figure: (f: RoundFigures) => number | undefined,
  sign = '×',
): string {
  if (!a || !b) return '';
  if (a === b) return `1.00${sign}`;
  if (a.rounds && b.rounds && a.rounds.length === b.rounds.length) {
    const ratios: number[] = [];
    for (let k = 0; k < a.rounds.length; k++) {
      const x = figure(a.rounds[k]!);
      const y = figure(b.rounds[k]!);
      if (!x || !y) return '';
      ratios.push(x / y);
    }
    ratios.sort((p, q) => p - q);
    const range = `${ratios[0]!.toFixed(2)}–${ratios.at(-1)!.toFixed(2)}`;
    return `${median(ratios).toFixed(2)}${sign} (${range})`;
  }
  const x = a.result && figure(figures(a));
  const y = b.result && figure(figures(b));
  return x && y ? `${(x / y).toFixed(2)}${sign}` : '';
}

/** Median of sorted numbers. */
function median(sorted: number[]): number {
  const mid = sorted.length >> 1;
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}
