// The runner's repeated rounds: the order runs are made in, the median round, paired ratios.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { type RunRecord, renderSection } from '../bench/markdown.js';
import { mergeRounds, pairedRatio, planRuns } from '../bench/rounds.js';
import type { Scenario, ServerName } from '../bench/scenarios.js';
import type { BenchResult } from '../src/bench/report.js';
import { TEST_MACHINE } from './helpers/bench-report.js';
import { checkNoLeftoverProcesses } from './helpers/leftovers.js';

checkNoLeftoverProcesses();

const scenario = (name: string, table: Scenario['table'], servers: string[], rounds?: number): Scenario =>
  ({
    name,
    table,
    servers: servers as ServerName[],
    load: { mode: 'echo', connections: 1, seconds: 1 },
    ...(rounds ? { rounds } : {}),
  }) as Scenario;

const record = (server: string, perSecond: number, p99 = 1, scenarioName = 's'): RunRecord => ({
  scenario: scenarioName,
  table: 'workers',
  server,
  serverCommand: 'x',
  toolCommand: 'y',
  exitCode: 0,
  result: {
    mode: 'echo',
    perSecond,
    mbPerSecond: 0,
    latencyMs: { p50: 0.5, p90: 1, p99, p999: 1, max: 2, mean: 0.5 },
    errors: {},
    errorTotal: 0,
    tool: { cpuCores: 1, threadBusy: [0.9] },
  } as unknown as BenchResult,
  serverCpu: perSecond / 1e5,
});

test('a group runs round by round, each round starting at the next server; other scenarios once', () => {
  const scenarios = [
    scenario('a', 'workers', ['x', 'y', 'z'], 3),
    scenario('b', 'workers', ['x', 'y'], 3),
    scenario('c', 'workers', ['x']),
    scenario('d', 'proxy', ['x', 'y'], 2),
  ];
  const plan = planRuns(scenarios, (s) => s.rounds ?? 1).map(
    (p) => `${p.scenario.name}.${p.server}${p.round}`,
  );
  assert.deepEqual(plan, [
    ...['a.x0', 'a.y0', 'a.z0', 'b.x0', 'b.y0'],
    ...['a.y1', 'a.z1', 'a.x1', 'b.y1', 'b.x1'],
    ...['a.z2', 'a.x2', 'a.y2', 'b.x2', 'b.y2'],
    'c.x0',
    ...['d.x0', 'd.y0', 'd.y1', 'd.x1'],
  ]);
});

test('the merged record is the median round, with every round in round order', () => {
  const merged = mergeRounds([
    record('t', 300),
    record('t', 100),
    record('t', 200),
    record('t', 500),
    record('t', 400),
  ]);
  assert.equal(merged.result?.perSecond, 300);
  assert.deepEqual(
    merged.rounds?.map((r) => r.perSecond),
    [300, 100, 200, 500, 400],
  );
  const even = mergeRounds([record('t', 40), record('t', 10), record('t', 30), record('t', 20)]);
  assert.equal(even.result?.perSecond, 20, 'even count: the lower middle round, a real run');
  assert.equal(mergeRounds([record('t', 7)]).rounds, undefined, 'one round: the record as it is');
});

test('a failed round fails the merged record and says which', () => {
  const bad: RunRecord = {
    ...record('t', 0),
    result: undefined,
    failure: 'server did not start',
  } as RunRecord;
  const merged = mergeRounds([record('t', 10), bad, record('t', 12)]);
  assert.equal(merged.result, undefined);
  assert.equal(merged.failure, 'round 2 of 3: server did not start');
});

test('ratios pair the runs of the same round: median and range', () => {
  // Round k of a is compared with round k of b, not median with median (which would be 1.00).
  const a = mergeRounds([record('a', 110), record('a', 90), record('a', 200)]);
  const b = mergeRounds([record('b', 100), record('b', 100), record('b', 100)]);
  assert.equal(
    pairedRatio(a, b, (f) => f.perSecond),
    '1.10× (0.90–2.00)',
  );
  const c = mergeRounds([record('c', 100), record('c', 200), record('c', 300), record('c', 400)]);
  const d = mergeRounds([record('d', 100), record('d', 100), record('d', 100), record('d', 100)]);
  assert.equal(
    pairedRatio(c, d, (f) => f.perSecond, 'x'),
    '2.50x (1.00–4.00)',
    'even count: mean of the middle two',
  );
  assert.equal(
    pairedRatio(record('a', 150), record('b', 100), (f) => f.perSecond),
    '1.50×',
    'single rounds',
  );
  assert.equal(
    pairedRatio(a, a, (f) => f.perSecond),
    '1.00×',
  );
  assert.equal(
    pairedRatio(a, undefined, (f) => f.perSecond),
    '',
  );
});

test('the report names the repeated scenarios and shows paired ratios in the workers table', () => {
  const ours = mergeRounds([record('tcpdaemon IOMP -c 2', 120, 2), record('tcpdaemon IOMP -c 2', 80, 2)]);
  const base = mergeRounds([record('node cluster 2', 100, 4), record('node cluster 2', 100, 4)]);
  const text = renderSection({
    machine: TEST_MACHINE,
    quick: false,
    runs: [ours, base],
  });
  assert.match(text, /Repeated rounds \(count in brackets\): s \(2\)\./);
  const row = text.split('\n').find((l) => l.startsWith('| s | node cluster 2 |'));
  assert.match(row ?? '', /\| 1\.00x \(0\.80–1\.20\) \|/);
});
