import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { type RunRecord, renderSection } from '../bench/markdown.js';
import { parseRedisCsv } from '../bench/redis.js';
import { redisArgs, SCENARIOS, SERVERS } from '../bench/scenarios.js';
import type { BenchResult } from '../src/bench/report.js';
import { TEST_MACHINE } from './helpers/bench-report.js';
import { checkNoLeftoverProcesses } from './helpers/leftovers.js';

checkNoLeftoverProcesses();

const machine = TEST_MACHINE;

function result(perSecond: number, p50: number): BenchResult {
  return {
    mode: 'echo',
    perSecond,
    latencyMs: { p50, p90: p50, p99: p50 * 2, p999: p50 * 3, max: p50 * 4, mean: p50 },
    errors: {},
    errorTotal: 0,
    tool: { threadBusy: [0.5], cpuCores: 0.75, cores: 2 },
  } as unknown as BenchResult;
}

function run(server: string, perSecond: number, p50: number): RunRecord {
  return {
    scenario: 'proxy-echo-50x1-64B',
    table: 'proxy',
    server,
    serverCommand: 'x',
    toolCommand: 'y',
    exitCode: 0,
    generator: 'tcpdaemon bench',
    result: result(perSecond, p50),
    serverCpu: 1,
  };
}

describe('proxy benchmarks', () => {
  it('every proxy and redis scenario names servers that exist', () => {
    for (const s of SCENARIOS.filter((x) => x.table === 'proxy' || x.table === 'redis')) {
      for (const name of s.servers) assert.ok(name in SERVERS, `${s.name}: ${name}`);
    }
    assert.ok(SCENARIOS.some((s) => s.table === 'redis'));
  });

  it('shows each front against HAProxy and the p50 it adds over the direct path', () => {
    const section = renderSection({
      machine,
      quick: false,
      runs: [
        run('echo direct', 40000, 0.5),
        run('echo via tcpdaemon proxy', 30000, 0.8),
        run('echo via HAProxy', 25000, 0.75),
        run('echo via minimal node proxy', 20000, 1),
      ],
    });
    assert.match(
      section,
      /\| proxy-echo-50x1-64B \| echo via tcpdaemon proxy \| 30,000 msg\/s \| 1\.20× \| 0\.8 \| 0\.300 \|/,
    );
    assert.match(
      section,
      /\| proxy-echo-50x1-64B \| echo via HAProxy \| 25,000 msg\/s \| 1\.00× \| 0\.75 \| 0\.250 \|/,
    );
    assert.match(
      section,
      /\| proxy-echo-50x1-64B \| echo via minimal node proxy \| 20,000 msg\/s \| 0\.80× \| 1 \| 0\.500 \|/,
    );
    assert.match(section, /\| proxy-echo-50x1-64B \| echo direct \| 40,000 msg\/s \| {2}\| 0\.5 \| {2}\|/);
    // The generator and its CPU close every row.
    assert.match(section, /\| echo direct \| .* \| 1\.00 cores \| tcpdaemon bench \| 0\.75 cores \|$/m);
  });

  it('reads redis-benchmark --csv and renders one row per command', () => {
    const csv = [
      '"test","rps","avg_latency_ms","min_latency_ms","p50_latency_ms","p95_latency_ms","p99_latency_ms","max_latency_ms"',
      '"SET","41237.11","0.839","0.072","0.327","3.087","6.503","34.495"',
      '"GET","50000.00","0.553","0.120","0.311","2.679","4.023","10.359"',
    ].join('\n');
    const rows = parseRedisCsv(csv);
    assert.deepEqual(rows, [
      { test: 'SET', rps: 41237.11, p50: 0.327, p99: 6.503, max: 34.495 },
      { test: 'GET', rps: 50000, p50: 0.311, p99: 4.023, max: 10.359 },
    ]);
    const redis = (server: string, rps: number): RunRecord => ({
      scenario: 'redis-get-set-50',
      table: 'redis',
      server,
      serverCommand: 'x',
      toolCommand: 'y',
      exitCode: 0,
      redisResult: rows.map((r) => ({ ...r, rps })),
    });
    const section = renderSection({
      machine,
      quick: false,
      runs: [redis('redis via tcpdaemon proxy', 45000), redis('redis via HAProxy', 50000)],
    });
    assert.match(section, /\| redis-get-set-50 \| redis via tcpdaemon proxy \| SET \| 45,000 \| 0\.90× \|/);
    assert.deepEqual(
      redisArgs({ tests: 'get,set', requests: 10, clients: 5, pipeline: 16 }, '127.0.0.1', 7000),
      ['-h', '127.0.0.1', '-p', '7000', '-t', 'get,set', '-n', '10', '-c', '5', '-P', '16', '--csv'],
    );
  });
});
