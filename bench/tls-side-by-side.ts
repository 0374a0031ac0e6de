// TLS servers measured at the same time: every server named runs for the whole batch, and in each
// round all of them are loaded at once, each by its own one-thread generator (connect-gen
// --tls new|resume, or pipeline-gen --tls for echo), start order rotating. So a host whose speed
// moves between windows of a few seconds (this VM's does, by more than 15 %) moves every server of
// a round alike. Per round and server: operations, and utime + stime of its processes (/proc)
// over the round; the figures are medians of rounds, and ratios to the reference are medians of
// per-round ratios (bench/side-by-side.ts). The servers are the TLS servers of bench/scenarios.ts,
// named without the key's suffix; they run on the node named by TCPDAEMON_BENCH_NODE, like the
// runner's --node (bench/server-node.ts), the generators are C.
// usage: node --import tsx bench/tls-side-by-side.ts --load new|resume|echo64|echo16k [--key ecdsa|rsa]
//          --server NAME [--server NAME ...] [--reference 'tls node tls'] [--rounds 10] [--seconds 4]
//          [--warmup 3] [--connections 50] [--pin]
// --pin: every server's processes on the last CPU, every generator on the others (taskset), so the
// servers take turns on one core and no server shares its core with a generator.
import { readFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { parseArgs } from 'node:util';
import {
  buildNative,
  type ConnectGenOutput,
  connectGenArgs,
  type PipelineGenOutput,
  pipelineGenArgs,
} from './native.js';
import { pinTree, type RunningServer, runTool, startServer, treeCpuSeconds } from './processes.js';
import { SERVERS, type ServerName, type ServerSpec } from './scenarios.js';
import { SERVER_NODE_VERSION } from './server-node.js';
import { formatSpread, type SideRound, summarise } from './side-by-side.js';

const USAGE =
  "usage: node --import tsx bench/tls-side-by-side.ts --load new|resume|echo64|echo16k [--key ecdsa|rsa] --server NAME [--server NAME ...] [--reference 'tls node tls'] [--rounds N] [--seconds S] [--warmup S] [--connections N] [--pin]";
const { values } = parseArgs({
  options: {
    load: { type: 'string' },
    key: { type: 'string', default: 'ecdsa' },
    server: { type: 'string', multiple: true, default: [] },
    reference: { type: 'string', default: 'tls node tls' },
    rounds: { type: 'string', default: '10' },
    seconds: { type: 'string', default: '4' },
    warmup: { type: 'string', default: '3' },
    connections: { type: 'string', default: '50' },
    pin: { type: 'boolean', default: false },
  },
});

function usage(why: string): never {
  process.stderr.write(`tls-side-by-side: ${why}\n${USAGE}\n`);
  process.exit(2);
}

function count(name: string, text: string, min: number): number {
  const n = Number(text);
  if (!Number.isInteger(n) || n < min) usage(`--${name} must be a whole number ≥ ${min}, not '${text}'`);
  return n;
}

const LOADS = ['new', 'resume', 'echo64', 'echo16k'] as const;
type Load = (typeof LOADS)[number];
const load = values.load as Load;
if (!LOADS.includes(load)) usage(`--load must be one of ${LOADS.join(', ')}, not '${values.load ?? ''}'`);
if (values.key !== 'ecdsa' && values.key !== 'rsa') usage(`--key must be ecdsa or rsa, not '${values.key}'`);
const suffix = values.key === 'rsa' ? ' RSA' : '';
const rounds = count('rounds', values.rounds!, 1);
const seconds = count('seconds', values.seconds!, 1);
const warmup = count('warmup', values.warmup!, 0);
const connections = count('connections', values.connections!, 1);
// A server named twice (or the reference named again) runs twice, the second as 'NAME #2': an
// A/A pair shows how far the method itself spreads.
const names = [values.reference!, ...values.server!];
if (names.length < 2) usage('name at least one --server besides the reference');
const labels = names.map((n, i) => {
  const seen = names.slice(0, i).filter((m) => m === n).length;
  return seen === 0 ? n : `${n} #${seen + 1}`;
});
const TLS_NAMES = Object.keys(SERVERS).filter(
  (n) => (SERVERS[n as ServerName] as ServerSpec).tls && !n.endsWith(' RSA'),
);
for (const n of names) {
  if (!TLS_NAMES.includes(n)) usage(`unknown server '${n}'; TLS servers: ${TLS_NAMES.join(', ')}`);
}

const cpus = availableParallelism();
if (values.pin && cpus < 2) usage(`--pin needs 2 CPUs or more; this machine has ${cpus}`);
const SERVER_CPUS = String(cpus - 1);
const GENERATOR_CPUS = cpus === 2 ? '0' : `0-${cpus - 2}`;

const generator = load === 'new' || load === 'resume' ? 'connect-gen' : 'pipeline-gen';
const binary = buildNative(generator);
const unit = generator === 'connect-gen' ? 'handshake' : 'message';

function generatorArgv(port: number, duration: number): string[] {
  if (generator === 'connect-gen') {
    const tls = load as 'new' | 'resume';
    return [
      binary,
      ...connectGenArgs(
        { connections, size: 64, seconds: duration, threads: 1, close: 'fin', tls },
        '127.0.0.1',
        port,
      ),
    ];
  }
  const size = load === 'echo64' ? 64 : 16384;
  return [
    binary,
    ...pipelineGenArgs(
      { connections, depth: 1, size, seconds: duration, threads: 1, codec: 'raw', tls: true },
      '127.0.0.1',
      port,
    ),
  ];
}

interface GenRun {
  completed: number;
  errors: number;
  cores: number;
}

async function generate(port: number, duration: number): Promise<GenRun> {
  const argv = [...(values.pin ? ['taskset', '-c', GENERATOR_CPUS] : []), ...generatorArgv(port, duration)];
  const run = await runTool(argv, duration * 1000 + 60_000);
  let out: ConnectGenOutput | PipelineGenOutput;
  try {
    out = JSON.parse(run.stdout);
  } catch {
    throw new Error(`${argv.join(' ')} exited ${run.code} without its JSON:\n${run.stderr}`);
  }
  if (run.code !== 0) throw new Error(`${argv.join(' ')} exited ${run.code}:\n${run.stderr}`);
  return { completed: out.completed, errors: out.errorTotal + out.verifyFailures, cores: out.cpu.cores };
}

const servers = new Map<string, RunningServer>();
const stopAll = () => Promise.all([...servers.values()].map((s) => s.stop()));
try {
  for (const [i, n] of names.entries()) {
    servers.set(labels[i]!, await startServer(SERVERS[`${n}${suffix}` as ServerName].command));
  }
  const started = [...servers];
  if (values.pin) for (const [, s] of started) pinTree(s.pid, SERVER_CPUS);
  if (warmup > 0) await Promise.all(started.map(([, s]) => generate(s.port, warmup)));

  const figures = new Map<string, SideRound[]>(labels.map((n) => [n, []]));
  for (let r = 0; r < rounds; r++) {
    const order = started.map((_, i) => started[(i + r) % started.length]!);
    const before = order.map(([, s]) => treeCpuSeconds(s.pid));
    const runs = await Promise.all(order.map(([, s]) => generate(s.port, seconds)));
    const parts = order.map(([name, s], i) => {
      const round: SideRound = {
        operations: runs[i]!.completed,
        cpuSeconds: treeCpuSeconds(s.pid) - before[i]!,
        seconds,
      };
      figures.get(name)!.push(round);
      const us = ((round.cpuSeconds * 1e6) / round.operations).toFixed(1);
      const errors = runs[i]!.errors ? `, ${runs[i]!.errors} errors` : '';
      return `${name} ${(round.operations / seconds).toFixed(0)}/s ${us} µs (generator ${runs[i]!.cores.toFixed(2)} cores${errors})`;
    });
    const loadavg = readFileSync('/proc/loadavg', 'utf8').split(' ')[0];
    console.log(`round ${r + 1}, load ${loadavg}: ${parts.join(' | ')}`);
  }

  const pinned = values.pin ? `, servers on CPU ${SERVER_CPUS} and generators on ${GENERATOR_CPUS}` : '';
  console.log(
    `\nnode ${SERVER_NODE_VERSION}, --load ${load} --key ${values.key}, ${rounds} rounds × ${seconds} s at once, ${connections} connections per generator${pinned}; reference ${values.reference}`,
  );
  console.log(
    `| server | µs of server CPU per ${unit} | ${unit}s/s | reference µs ÷ this (cost) | this ÷ reference (rate) |`,
  );
  console.log('| --- | ---: | ---: | --- | --- |');
  for (const s of summarise(figures, values.reference!)) {
    console.log(
      `| ${s.name} | ${s.usPerOp.toFixed(1)} | ${s.perSecond.toFixed(0)} | ${formatSpread(s.costRatio)} | ${formatSpread(s.rateRatio)} |`,
    );
  }
} finally {
  await stopAll();
}
