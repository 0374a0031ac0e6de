// A real client/server pair for the proxy comparison: redis-benchmark against redis-server,
// direct or through a front. One fresh server per run, as for the other scenarios.
import type { RunRecord } from './markdown.js';
import { runTool, startServer, treeCpuSeconds } from './processes.js';
import { type RedisLoad, type RedisScenario, redisArgs, SERVERS, type ServerName } from './scenarios.js';
import { SERVER_NODE } from './server-node.js';

/** One line of redis-benchmark --csv. Latencies in ms. */
export interface RedisRow {
  test: string;
  rps: number;
  p50: number;
  p99: number;
  max: number;
}

/** Parses redis-benchmark --csv output (a header line, then one quoted line per test). */
export function parseRedisCsv(text: string): RedisRow[] {
  const lines = text
    .trim()
    .split('\n')
    .filter((l) => l.startsWith('"'));
  const head = (lines.shift() ?? '').split(',').map((c) => c.replaceAll('"', ''));
  const col = (name: string) => head.indexOf(name);
  return lines.map((line) => {
    const cells = line.split(',').map((c) => c.replaceAll('"', ''));
    return {
      test: cells[col('test')] ?? '?',
      rps: Number(cells[col('rps')]),
      p50: Number(cells[col('p50_latency_ms')]),
      p99: Number(cells[col('p99_latency_ms')]),
      max: Number(cells[col('max_latency_ms')]),
    };
  });
}

export async function runRedisOne(
  scenario: RedisScenario,
  serverName: ServerName,
  load: RedisLoad,
): Promise<RunRecord> {
  const spec = SERVERS[serverName];
  const record: RunRecord = {
    scenario: scenario.name,
    table: scenario.table,
    server: serverName,
    redis: load,
    serverCommand: spec.command.join(' ').replace(SERVER_NODE, 'node'),
    toolCommand: '',
    exitCode: null,
  };
  let server: Awaited<ReturnType<typeof startServer>>;
  try {
    server = await startServer(spec.command);
  } catch (err) {
    record.failure = `server did not start: ${(err as Error).message}`;
    return record;
  }
  try {
    const args = redisArgs(load, server.host, server.port);
    record.toolCommand = `redis-benchmark ${args.join(' ').replace(` ${server.port} `, ' PORT ')}`;
    const cpuBefore = treeCpuSeconds(server.pid);
    const started = Date.now();
    const run = await runTool(['redis-benchmark', ...args], 300_000);
    const seconds = (Date.now() - started) / 1000;
    record.exitCode = run.code;
    const rows = run.code === 0 ? parseRedisCsv(run.stdout) : [];
    if (rows.length === 0) {
      record.failure = `redis-benchmark exited ${run.code}: ${(run.stderr || run.stdout).trim()}`;
      return record;
    }
    record.redisResult = rows;
    record.serverCpu = (treeCpuSeconds(server.pid) - cpuBefore) / seconds;
    return record;
  } catch (err) {
    record.failure = (err as Error).message;
    return record;
  } finally {
    await server.stop();
  }
}
