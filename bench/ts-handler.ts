// `node --import tsx bench/ts-handler.ts [--rounds N] [--seconds S]`: what a TypeScript handler
// costs against the same handler as JavaScript, on the node first on PATH (run it once per
// version: PATH="$(scripts/node-runtime.sh 24):$PATH"). Prints a markdown table of
// - IF connect rate: 4 connect loops against `-m IF -c 4 --spares 4`, examples/echo.ts and
//   examples/echo.js alternating, N rounds each (medians);
// - IF CPU per connection process: the CPU of the daemon's reaped children (/proc, cutime +
//   cstime) over 40 sequential connect/echo/close cycles; steadier than the rate on a busy machine;
// - start-up: spawn to the "listening" line, per model, medians of N starts each.
// The compiled copy of echo.ts (where this node needs one) exists before the timed starts: the
// first start compiles it; a cold start is timed once, separately.
import { readFileSync, rmSync } from 'node:fs';
import { connect } from 'node:net';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { parseArgs } from 'node:util';
import { ROOT, runTool, startServer } from './processes.js';

const { values } = parseArgs({
  options: { rounds: { type: 'string', default: '3' }, seconds: { type: 'string', default: '5' } },
});
const rounds = Number(values.rounds);
const seconds = Number(values.seconds);
const BIN = 'bin/tcpdaemon';
const handlers = ['examples/echo.js', 'examples/echo.ts'];

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

async function ifRate(handler: string): Promise<number> {
  const server = await startServer([
    BIN,
    '-m',
    'IF',
    '-c',
    '4',
    '--spares',
    '4',
    '-l',
    '127.0.0.1:0',
    '-s',
    handler,
  ]);
  try {
    const run = await runTool(
      [
        BIN,
        'bench',
        '--port',
        String(server.port),
        '--mode',
        'connect',
        '--connections',
        '4',
        '--duration',
        String(seconds),
        '--json',
      ],
      (seconds + 30) * 1000,
    );
    return (JSON.parse(run.stdout) as { perSecond: number }).perSecond;
  } finally {
    await server.stop();
  }
}

/** CPU seconds of the reaped children of `pid`. */
function reapedCpu(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  return (Number(fields[13]) + Number(fields[14])) / 100; // clock ticks (USER_HZ 100 on Linux)
}

async function echoOnce(port: number): Promise<void> {
  const s = connect(port, '127.0.0.1');
  s.on('data', () => s.end());
  s.write('x');
  await new Promise((r) => s.once('close', r));
}

async function ifCpuMs(handler: string, n = 40): Promise<number> {
  const server = await startServer([
    BIN,
    '-m',
    'IF',
    '-c',
    '4',
    '--spares',
    '4',
    '-l',
    '127.0.0.1:0',
    '-s',
    handler,
  ]);
  try {
    await echoOnce(server.port);
    await sleep(1000); // the first process has exited, the spares have started
    const before = reapedCpu(server.pid);
    for (let i = 0; i < n; i++) await echoOnce(server.port);
    await sleep(1000);
    return ((reapedCpu(server.pid) - before) * 1000) / n;
  } finally {
    await server.stop();
  }
}

async function startup(args: string[]): Promise<number> {
  const t0 = performance.now();
  const server = await startServer([BIN, ...args, '-l', '127.0.0.1:0']);
  const ms = performance.now() - t0;
  await server.stop();
  return ms;
}

const out: string[] = [`node ${process.version}`];
for (const h of handlers)
  rmSync(join(ROOT, 'examples', `.${h.split('/')[1]}.tcpdaemon.json`), { force: true });
const cold = await startup(['-m', 'IOMP', '-s', 'examples/echo.ts']);
out.push(`cold start (IOMP -c 1, echo.ts, compiled copy removed first): ${cold.toFixed(0)} ms`);

const rates = new Map<string, number[]>(handlers.map((h) => [h, []]));
for (let r = 0; r < rounds; r++) for (const h of handlers) rates.get(h)!.push(await ifRate(h));
const js = median(rates.get(handlers[0]!)!);
const ts = median(rates.get(handlers[1]!)!);
out.push(
  '',
  '| IF -c 4 --spares 4, 4 connect loops | conn/s (median) | rounds |',
  '| --- | ---: | --- |',
  `| echo.js | ${js.toFixed(1)} | ${rates
    .get(handlers[0]!)!
    .map((x) => x.toFixed(1))
    .join(', ')} |`,
  `| echo.ts | ${ts.toFixed(1)} | ${rates
    .get(handlers[1]!)!
    .map((x) => x.toFixed(1))
    .join(', ')} |`,
  `| ts / js | ${(ts / js).toFixed(2)} | |`,
);

const cpu = new Map<string, number[]>(handlers.map((h) => [h, []]));
for (let r = 0; r < rounds; r++) for (const h of handlers) cpu.get(h)!.push(await ifCpuMs(h));
out.push(
  '',
  '| IF CPU per connection process, ms (median) | | rounds |',
  '| --- | ---: | --- |',
  ...handlers.map(
    (h) =>
      `| ${h.split('/')[1]} | ${median(cpu.get(h)!).toFixed(0)} | ${cpu
        .get(h)!
        .map((x) => x.toFixed(0))
        .join(', ')} |`,
  ),
);

const models: [string, string[]][] = [
  ['IOMP -c 1', ['-m', 'IOMP', '-c', '1']],
  ['IOMP -c 2', ['-m', 'IOMP', '-c', '2']],
  ['LF -c 2', ['-m', 'LF', '-c', '2']],
  ['IF -c 2', ['-m', 'IF', '-c', '2']],
  ['TLF -c 2', ['-m', 'TLF', '-c', '2']],
];
out.push('', '| start to "listening", ms (median) | echo.js | echo.ts |', '| --- | ---: | ---: |');
for (const [name, args] of models) {
  const cells: string[] = [];
  for (const h of handlers) {
    const times: number[] = [];
    for (let r = 0; r < rounds; r++) times.push(await startup([...args, '-s', h]));
    cells.push(median(times).toFixed(0));
  }
  out.push(`| ${name} | ${cells.join(' | ')} |`);
}
process.stdout.write(`${out.join('\n')}\n`);
