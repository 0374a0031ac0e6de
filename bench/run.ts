// `npm run bench [-- --quick] [-- --only NAME[,NAME...]] [-- --rounds N] [-- --warmup S] [-- --write] [-- --node PATH]`
// Runs every scenario of scenarios.ts against each of its servers, each on a fresh server,
// one after the other, and writes the raw results to .bench-out/ and the tables to
// BENCHMARKS.md (between its markers). A --only run writes BENCHMARKS.md only with --write.
// --node PATH runs the servers on another node binary (server-node.ts), the load tool staying on
// this one; its results go to .bench-out/ named after that node's version, and (full or --write)
// BENCHMARKS.md's node-versions block sets its rows beside this node's last run (node-versions.ts).
import { spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import type { BenchResult } from '../src/bench/report.js';
import { describeMachine, rsaSignsPerSecond } from './machine.js';
import {
  type MessageMicro,
  type RunRecord,
  type RunReport,
  renderSection,
  replaceSection,
} from './markdown.js';
import {
  buildNative,
  type ConnectGenOutput,
  connectGenArgs,
  connectGenResult,
  nativeCommand,
  type PipelineCodec,
  type PipelineGenOutput,
  pipelineGenArgs,
  pipelineGenResult,
} from './native.js';
import { renderNodeVersions, replaceNodeVersions } from './node-versions.js';
import { ROOT, runTool, startServer, treeCpuSeconds, treeRss } from './processes.js';
import { runRedisOne } from './redis.js';
import { mergeRounds, planRuns } from './rounds.js';
import {
  generatorOf,
  type LoadSpec,
  quickRedis,
  runLoad,
  SCENARIOS,
  type Scenario,
  SERVERS,
  type ServerName,
  type ServerSpec,
  type ToolScenario,
  toolArgs,
  toolThreads,
} from './scenarios.js';
import { SERVER_NODE, SERVER_NODE_ENV, SERVER_NODE_VERSION } from './server-node.js';

/** On the runner's node, whatever node the servers run on. */
const TOOL = [process.execPath, 'bin/tcpdaemon', 'bench'];
/** ms a server gets after its listening line before the idle RSS is read. */
const SETTLE_MS = 500;

function usage(reason: string): never {
  const names = [
    ...new Set([...SCENARIOS.map((s) => s.table), ...SCENARIOS.map((s) => s.name), MESSAGE_MICRO]),
  ];
  process.stderr.write(
    `bench/run.ts: ${reason}\nusage: npm run bench -- [--quick] [--only NAME[,NAME...]] [--rounds N] [--warmup S] [--write] [--node PATH]\nnames: ${names.join(', ')}\n`,
  );
  process.exit(1);
}

/** Not a server scenario: bench/message-bench.ts, run in-process; `--only message-micro`. */
const MESSAGE_MICRO = 'message-micro';

function runMessageMicro(quick: boolean): MessageMicro | undefined {
  const seconds = quick ? 0.3 : 2;
  const run = spawnSync(
    SERVER_NODE,
    ['--import', 'tsx', 'bench/message-bench.ts', '--duration', String(seconds)],
    {
      cwd: ROOT,
      encoding: 'utf8',
      timeout: 120_000,
    },
  );
  if (run.status !== 0) {
    process.stderr.write(`bench/message-bench.ts failed (${run.status ?? run.signal}):\n${run.stderr}`);
    return undefined;
  }
  return JSON.parse(run.stdout) as MessageMicro;
}

function selectScenarios(only: string[] | undefined): Scenario[] {
  if (!only) return SCENARIOS;
  for (const name of only) {
    if (name !== MESSAGE_MICRO && !SCENARIOS.some((s) => s.name === name || s.table === name))
      usage(`no scenario or table named '${name}'`);
  }
  return SCENARIOS.filter((s) => only.includes(s.name) || only.includes(s.table));
}

async function runOne(scenario: ToolScenario, serverName: ServerName, load: LoadSpec): Promise<RunRecord> {
  const spec = SERVERS[serverName];
  const record: RunRecord = {
    scenario: scenario.name,
    table: scenario.table,
    server: serverName,
    load,
    serverCommand: spec.command.join(' ').replace(SERVER_NODE, 'node'),
    toolCommand: '',
    exitCode: null,
  };
  let server: Awaited<ReturnType<typeof startServer>>;
  try {
    const native = (spec as ServerSpec).native;
    if (native) buildNative(native);
    server = await startServer(spec.command);
  } catch (err) {
    record.failure = `server did not start: ${(err as Error).message}`;
    return record;
  }
  try {
    const threads = toolThreads(load, spec, availableParallelism());
    const generator = generatorOf(load);
    const close = load.close ?? 'fin';
    const tlsTag = load.tls ? ` tls ${load.tls}` : '';
    record.generator =
      generator === 'connect-gen'
        ? `connect-gen ${close}${tlsTag}`
        : generator === 'pipeline-gen' && load.tls
          ? 'pipeline-gen tls'
          : generator;
    const { size = 64, connections, tls } = load;
    const codec = (load.codec ?? 'raw') as PipelineCodec;
    const argvFor = (seconds: number) =>
      generator === 'connect-gen'
        ? [
            buildNative('connect-gen'),
            ...connectGenArgs({ connections, size, seconds, threads, close, tls }, server.host, server.port),
          ]
        : generator === 'pipeline-gen'
          ? [
              buildNative('pipeline-gen'),
              ...pipelineGenArgs(
                {
                  connections,
                  depth: load.depth ?? 1,
                  size,
                  seconds,
                  threads,
                  codec,
                  tls: tls !== undefined,
                },
                server.host,
                server.port,
              ),
            ]
          : [...TOOL, ...toolArgs({ ...load, seconds }, threads, server.host, server.port)];
    const argv = argvFor(load.seconds);
    const shown = generator === 'tcpdaemon bench' ? argv : [nativeCommand(generator), ...argv.slice(1)];
    record.toolCommand = shown
      .join(' ')
      .replace(` ${server.port} `, ' PORT ')
      .replace(/^bin\//, '');
    await sleep(SETTLE_MS);
    if (load.warmupSeconds) {
      const warm = await runTool(argvFor(load.warmupSeconds), load.warmupSeconds * 1000 + 60_000);
      if (warm.code !== 0 && warm.code !== 2) {
        record.failure = `load tool exited ${warm.code} in the warm-up: ${warm.stderr.trim()}`;
        return record;
      }
      record.toolCommand = `(after ${load.warmupSeconds} s of the same load) ${record.toolCommand}`;
    }
    const before = treeRss(server.pid);
    const cpuBefore = treeCpuSeconds(server.pid);
    let holding: Promise<number> | undefined;
    const timeoutMs = (load.seconds + (load.holdSeconds ?? 0)) * 1000 + 60_000;
    const run = await runTool(argv, timeoutMs, (line) => {
      // Read the server's memory halfway through the hold.
      if (line.startsWith('holding '))
        holding = sleep((load.holdSeconds ?? 0) * 500).then(() => treeRss(server.pid));
    });
    record.exitCode = run.code;
    if (run.code !== 0 && run.code !== 2) {
      record.failure = `load tool exited ${run.code}: ${run.stderr.trim()}`;
      return record;
    }
    const genOut = generator === 'connect-gen' ? (JSON.parse(run.stdout) as ConnectGenOutput) : undefined;
    const result = genOut
      ? connectGenResult(genOut)
      : generator === 'pipeline-gen'
        ? pipelineGenResult(JSON.parse(run.stdout) as PipelineGenOutput)
        : (JSON.parse(run.stdout) as BenchResult);
    if (genOut && load.tls) record.tlsResumed = genOut.resumed;
    record.result = result;
    // The tool's start and end add little server CPU, so this is close to the load's average.
    if (result.mode !== 'hold') record.serverCpu = (treeCpuSeconds(server.pid) - cpuBefore) / result.seconds;
    if (holding && result.hold) {
      const rss = await holding;
      const open = Math.max(1, result.hold.open);
      record.rss = { before, holding: rss, perConnection: (rss - before) / open };
    }
    return record;
  } catch (err) {
    record.failure = (err as Error).message;
    return record;
  } finally {
    await server.stop();
    if (scenario.table === 'workers') record.perWorker = server.workerCounts();
  }
}

function summary(r: RunRecord): string {
  const head = `${r.scenario.padEnd(18)} ${r.server.padEnd(20)}`;
  if (r.redisResult) {
    const rows = r.redisResult.map((x) => `${x.test} ${Math.round(x.rps)}/s p50 ${x.p50} ms p99 ${x.p99} ms`);
    return `${head} ${rows.join('  ')}  server ${r.serverCpu?.toFixed(2)} cores`;
  }
  if (!r.result) return `${head} FAILED ${r.failure}`;
  const x = r.result;
  const errs = x.errorTotal > 0 ? `  errors ${JSON.stringify(x.errors)}` : '';
  if (r.rss && x.hold) {
    return `${head} open ${x.hold.open}/${x.connections}  rss ${(r.rss.before / 2 ** 20).toFixed(1)} -> ${(r.rss.holding / 2 ** 20).toFixed(1)} MiB = ${Math.round(r.rss.perConnection)} B/conn${errs}`;
  }
  const busy = x.tool.threadBusy.length > 0 ? ` (threads busy ${x.tool.threadBusy.join(' ')})` : '';
  const cpu = `server ${r.serverCpu?.toFixed(2)} cores, ${r.generator ?? 'tool'} ${x.tool.cpuCores} cores${busy}`;
  const paced = x.paced ? `  offered ${x.paced.rate}/s, ${x.paced.late} late` : '';
  return `${head} ${Math.round(x.perSecond)}/s${paced}  p50 ${x.latencyMs.p50} ms  p99 ${x.latencyMs.p99} ms  ${cpu}${errs}`;
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

async function main(): Promise<number> {
  let values: {
    quick?: boolean;
    only?: string[];
    write?: boolean;
    rounds?: string;
    node?: string;
    warmup?: string;
  };
  try {
    values = parseArgs({
      options: {
        quick: { type: 'boolean' },
        only: { type: 'string', multiple: true },
        write: { type: 'boolean' },
        rounds: { type: 'string' },
        node: { type: 'string' },
        warmup: { type: 'string' },
      },
    }).values;
  } catch (err) {
    usage((err as Error).message);
  }
  if (values.node !== undefined) return rerunForNode(values.node);
  const roundsFlag = values.rounds === undefined ? undefined : Number(values.rounds);
  if (roundsFlag !== undefined && !(Number.isInteger(roundsFlag) && roundsFlag >= 1 && roundsFlag <= 20))
    usage(`--rounds must be an integer 1..20, not '${values.rounds}'`);
  const warmup = values.warmup === undefined ? undefined : Number(values.warmup);
  if (warmup !== undefined && !(Number.isFinite(warmup) && warmup > 0 && warmup <= 120))
    usage(`--warmup must be seconds in (0, 120], not '${values.warmup}'`);
  const only = values.only?.flatMap((o) => o.split(',')).filter((o) => o !== '');
  const quick = values.quick ?? false;
  const scenarios = selectScenarios(only);
  const report: RunReport = { machine: describeMachine(), quick, ...(only ? { only } : {}), runs: [] };
  process.stdout.write(
    `bench: ${report.machine.cpu}, ${report.machine.cores} cores, node ${report.machine.node}${report.machine.serverNode !== report.machine.node ? ` (servers on node ${report.machine.serverNode})` : ''}${quick ? ', quick' : ''}\n`,
  );
  // redis-benchmark runs once: its table has no ratios to pair.
  const roundsOf = (s: Scenario) => (quick || s.table === 'redis' ? 1 : (roundsFlag ?? s.rounds ?? 1));
  const byRun = new Map<string, RunRecord[]>();
  for (const { scenario, server, round } of planRuns(scenarios, roundsOf)) {
    const record =
      scenario.table === 'redis'
        ? await runRedisOne(scenario, server, quick ? quickRedis(scenario.redis) : scenario.redis)
        : await runOne(scenario, server, runLoad(scenario.load, quick, warmup));
    const key = `${scenario.name}\0${server}`;
    byRun.set(key, [...(byRun.get(key) ?? []), record]);
    const rounds = roundsOf(scenario);
    process.stdout.write(`${summary(record)}${rounds > 1 ? `  [round ${round + 1}/${rounds}]` : ''}\n`);
  }
  // In the scenarios' own order, whatever order the rounds ran in.
  for (const scenario of scenarios) {
    for (const server of scenario.servers)
      report.runs.push(mergeRounds(byRun.get(`${scenario.name}\0${server}`)!));
  }

  if (!only || only.includes(MESSAGE_MICRO)) {
    const micro = runMessageMicro(quick);
    if (micro) report.messageMicro = micro;
    process.stdout.write(
      `message-micro      ${micro ? JSON.stringify(micro.decoderFramesPerSec) : 'FAILED'}\n`,
    );
  }

  report.machine.rsaSignsPerSecond = { ...report.machine.rsaSignsPerSecond, end: rsaSignsPerSecond() };
  const outDir = join(ROOT, '.bench-out');
  mkdirSync(outDir, { recursive: true });
  const json = `${JSON.stringify(report, null, 2)}\n`;
  const stamp = report.machine.date.replaceAll(':', '-');
  const otherNode = SERVER_NODE_VERSION !== process.version;
  const tag = otherNode ? `-node-${SERVER_NODE_VERSION}` : '';
  writeFileSync(join(outDir, `${stamp}${tag}${quick ? '-quick' : ''}.json`), json);
  // latest.json is a full run's: a --node run sets its rows beside it, so an --only run must not replace it.
  const latest = `latest${only ? '-only' : ''}${tag}.json`;
  writeFileSync(join(outDir, latest), json);
  process.stdout.write(`raw results: .bench-out/${latest}\n`);
  if (!only || values.write) {
    const path = join(ROOT, 'BENCHMARKS.md');
    let doc = '# Benchmarks\n';
    try {
      doc = readFileSync(path, 'utf8');
    } catch {
      // first run: the file is created
    }
    if (otherNode) {
      const base = readBaseReport(join(outDir, 'latest.json'));
      if (!base) return 1;
      writeFileSync(path, replaceNodeVersions(doc, renderNodeVersions(base, report)));
    } else {
      writeFileSync(path, replaceSection(doc, renderSection(report)));
    }
    // The project's formatter owns Markdown layout (table padding); without this, lint fails.
    const biome = spawnSync(join(ROOT, 'node_modules/.bin/biome'), ['format', '--write', path], {
      encoding: 'utf8',
    });
    if (biome.status !== 0) process.stderr.write(`biome format BENCHMARKS.md failed:\n${biome.stderr}`);
    process.stdout.write(`${otherNode ? 'node-versions block' : 'tables'} written to BENCHMARKS.md\n`);
  }
  const microFailed = (!only || only.includes(MESSAGE_MICRO)) && !report.messageMicro;
  return report.runs.every((r) => r.result || r.redisResult) && !microFailed ? 0 : 1;
}

/** This node's last run, which a `--node` run is set beside; undefined (and a line) when there is none. */
function readBaseReport(path: string): RunReport | undefined {
  try {
    return JSON.parse(readFileSync(path, 'utf8')) as RunReport;
  } catch (err) {
    process.stderr.write(
      `BENCHMARKS.md not written: a --node run is set beside this node's last run, and ${path} cannot be read (${(err as Error).message}): run \`npm run bench\` first\n`,
    );
    return undefined;
  }
}

/** `--node PATH`: this run again, with the servers on PATH's node (server-node.ts reads the variable). */
function rerunForNode(node: string): number {
  const path = resolve(node);
  const probe = spawnSync(path, ['--version'], { encoding: 'utf8' });
  if (probe.status !== 0)
    usage(`--node ${node}: not a node binary (${probe.error?.message ?? probe.stderr.trim()})`);
  const args = process.argv
    .slice(2)
    .filter((a, i, all) => a !== '--node' && all[i - 1] !== '--node' && !a.startsWith('--node='));
  const run = spawnSync(process.execPath, [...process.execArgv, process.argv[1]!, ...args], {
    stdio: 'inherit',
    env: { ...process.env, [SERVER_NODE_ENV]: path },
  });
  return run.status ?? 1;
}

process.exitCode = await main();
