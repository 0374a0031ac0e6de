// The benchmark runner's parts: its servers, process handling, tool runs and the
// BENCHMARKS.md section. (The runner as a whole is smoke-tested by `npm run bench -- --quick`.)
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chmodSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import type { Socket } from 'node:net';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { connect as tlsConnect } from 'node:tls';
import { BEGIN, END, type RunRecord, renderSection, replaceSection } from '../bench/markdown.js';
import { buildNative } from '../bench/native.js';
import { runTool, startServer, treeCpuSeconds, treeRss } from '../bench/processes.js';
import {
  generatorOf,
  runLoad,
  SCENARIOS,
  SERVERS,
  type ServerName,
  type ServerSpec,
  toolArgs,
  toolThreads,
} from '../bench/scenarios.js';
import type { BenchResult } from '../src/bench/report.js';
import { larsCodec } from '../src/message/codecs/lars.js';
import { canTransferSockets, hasReusePort, REUSE_PORT_NEEDS } from '../src/node-features.js';
import { TEST_MACHINE } from './helpers/bench-report.js';
import { checkNoLeftoverProcesses } from './helpers/leftovers.js';

/** A TLS client socket to a bench server (its certificate is made at start: not checked). */
function tlsOpen(port: number): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const s = tlsConnect({ port, host: '127.0.0.1', rejectUnauthorized: false });
    s.once('secureConnect', () => resolve(s)).once('error', reject);
  });
}

import { connect, readBytes } from './helpers/net.js';
import { tempDir } from './helpers/temp-dir.js';

checkNoLeftoverProcesses();
const transfers = await canTransferSockets();

describe('servers of the scenario table', () => {
  for (const name of Object.keys(SERVERS) as ServerName[]) {
    const missing = ((SERVERS[name] as ServerSpec).needs ?? []).filter((p) => spawnSync(p, ['-v']).error);
    const skip =
      (missing.length > 0 &&
        `not installed: ${missing.join(', ')} (apt-get install -y haproxy redis-server)`) ||
      ((SERVERS[name] as ServerSpec).reusePort && !hasReusePort()
        ? `--reuse-port needs ${REUSE_PORT_NEEDS}; this is ${process.version}`
        : false) ||
      ((SERVERS[name] as ServerSpec).socketTransfer && !transfers
        ? `this node (${process.version}) cannot transfer sockets to worker threads`
        : false);
    test(`${name}: starts on port 0, echoes, is measured, stops with every process`, { skip }, async () => {
      const native = (SERVERS[name] as ServerSpec).native;
      if (native) buildNative(native);
      const server = await startServer(SERVERS[name].command);
      try {
        assert.equal(server.host, '127.0.0.1');
        assert.ok(server.port > 0);
        const spec: ServerSpec = SERVERS[name];
        const socket = spec.tls ? await tlsOpen(server.port) : await connect(server.port);
        const ping =
          spec.codec === 'lars' ? larsCodec().encode(1, Buffer.from('ping\n')) : Buffer.from('ping\n');
        const probe = spec.probe ?? { send: ping, reply: ping };
        socket.write(probe.send);
        assert.equal(
          (await readBytes(socket, Buffer.byteLength(probe.reply))).toString('latin1'),
          Buffer.from(probe.reply).toString('latin1'),
        );
        socket.destroy();
        const own =
          Number(/^VmRSS:\s+(\d+) kB/m.exec(readFileSync(`/proc/${server.pid}/status`, 'utf8'))![1]) * 1024;
        const tree = treeRss(server.pid);
        // (> own, not a multiple of it: a C backend such as redis-server is much smaller than node.)
        if (spec.children) assert.ok(tree > own + 2 ** 20, `workers counted: ${tree} vs ${own}`);
        // Two reads of a live process: its RSS may move (GC) between them, so a margin both ways.
        else assert.ok(tree > 0.8 * own && tree < 1.5 * own, `one process: ${tree} vs ${own}`);
        // (A C server may not have used one clock tick yet.)
        if (!native) assert.ok(treeCpuSeconds(server.pid) > 0);
      } finally {
        await server.stop();
      }
    });
  }

  test('a server that exits before listening is reported with its stderr', async () => {
    await assert.rejects(
      startServer([process.execPath, '-e', 'console.error("no port for you"); process.exit(3)']),
      /exited \(3\) before listening[\s\S]*no port for you/,
    );
  });
});

test('--node PATH (TCPDAEMON_BENCH_NODE): servers run on that node, found first on PATH by bin/tcpdaemon', async () => {
  // A "node" that marks the processes it runs, then is the real one.
  const dir = tempDir('tcpd-bench-node-');
  const wrapper = join(dir, 'node');
  writeFileSync(wrapper, `#!/bin/sh\nexport BENCH_WRAPPED=yes\nexec '${process.execPath}' "$@"\n`);
  chmodSync(wrapper, 0o755);
  const script = `
    import { chmodSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
    import { startServer } from './bench/processes.ts';
    import { SERVERS } from './bench/scenarios.ts';
    import { SERVER_NODE, SERVER_NODE_VERSION } from './bench/server-node.ts';
    for (const name of ['tcpdaemon IOMP -c 1', 'node net']) {
      const server = await startServer(SERVERS[name].command);
      const env = readFileSync('/proc/' + server.pid + '/environ', 'latin1').split('\\0');
      console.log(JSON.stringify({ name, wrapped: env.includes('BENCH_WRAPPED=yes') }));
      await server.stop();
    }
    console.log(JSON.stringify({ SERVER_NODE, SERVER_NODE_VERSION, runner: process.env.BENCH_WRAPPED ?? 'no' }));
  `;
  const run = spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], {
    encoding: 'utf8',
    env: { ...process.env, TCPDAEMON_BENCH_NODE: wrapper },
    timeout: 60_000,
  });
  assert.equal(run.status, 0, run.stderr);
  const lines = run.stdout
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l));
  assert.deepEqual(lines, [
    { name: 'tcpdaemon IOMP -c 1', wrapped: true },
    { name: 'node net', wrapped: true },
    { SERVER_NODE: wrapper, SERVER_NODE_VERSION: process.version, runner: 'no' },
  ]);
});

test("a TLS stack's stop lets the tcpdaemon in it remove its private dirs (the key copy) before the stack exits", async () => {
  // The stack and the daemon make their dirs under TMPDIR (tsx its cache): none of ours may be left.
  const dir = tempDir('tcpd-bench-tmp-');
  const script = `
    import { readdirSync } from 'node:fs';
    import { startServer } from './bench/processes.ts';
    import { SERVERS } from './bench/scenarios.ts';
    process.env.TMPDIR = ${JSON.stringify(dir)};
    const server = await startServer(SERVERS['tls tcpdaemon IOMP -c 2'].command);
    const running = readdirSync(process.env.TMPDIR);
    await server.stop();
    console.log(JSON.stringify({ running, after: readdirSync(process.env.TMPDIR) }));
  `;
  const run = spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], {
    encoding: 'utf8',
    timeout: 60_000,
  });
  assert.equal(run.status, 0, run.stderr);
  const { running, after } = JSON.parse(run.stdout.trim().split('\n').at(-1)!);
  assert.ok(
    running.some((d: string) => d.startsWith('tcpdaemon-tls-')),
    `the daemon made its dir: ${running}`,
  );
  assert.deepEqual(
    after.filter((d: string) => d.startsWith('tcpdaemon-')),
    [],
  );
});

test('an interrupted runner stops its TLS stack with SIGTERM first, so no key copy is left in TMPDIR', async () => {
  const dir = tempDir('tcpd-bench-tmp-');
  const script = `
    import { readdirSync } from 'node:fs';
    import { startServer } from './bench/processes.ts';
    import { SERVERS } from './bench/scenarios.ts';
    process.env.TMPDIR = ${JSON.stringify(dir)};
    await startServer(SERVERS['tls tcpdaemon IOMP -c 2'].command);
    console.log(JSON.stringify({ running: readdirSync(process.env.TMPDIR) }));
    process.kill(process.pid, 'SIGTERM');
    setInterval(() => {}, 1000); // the handler's exit ends it
  `;
  const run = spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], {
    encoding: 'utf8',
    timeout: 60_000,
  });
  assert.equal(run.status, 130, run.stderr);
  const { running } = JSON.parse(run.stdout.trim().split('\n').at(-1)!);
  assert.ok(
    running.some((d: string) => d.startsWith('tcpdaemon-tls-')),
    `the daemon made its dir: ${running}`,
  );
  assert.deepEqual(
    readdirSync(dir).filter((d) => d.startsWith('tcpdaemon-')),
    [],
  );
});

test('the built tool runs as a child and prints one JSON result', async () => {
  const server = await startServer(SERVERS['node net'].command);
  try {
    const load = { mode: 'echo' as const, connections: 2, depth: 2, size: 16, seconds: 0.3 };
    const run = await runTool(
      ['bin/tcpdaemon', 'bench', ...toolArgs(load, 1, server.host, server.port)],
      20_000,
    );
    assert.equal(run.code, 0, run.stderr);
    const result = JSON.parse(run.stdout) as BenchResult;
    assert.equal(result.threads, 1);
    assert.equal(result.depth, 2);
    assert.ok(result.completed > 0);
  } finally {
    await server.stop();
  }
});

test('a paced load runs the built tool with --rate: an open loop, every start on time', async () => {
  const server = await startServer(SERVERS['node net'].command);
  try {
    const load = { mode: 'connect' as const, connections: 2, rate: 10, size: 16, seconds: 0.5 };
    const args = toolArgs(load, 1, server.host, server.port);
    assert.deepEqual(args.slice(args.indexOf('--rate'), args.indexOf('--rate') + 2), ['--rate', '10']);
    const run = await runTool(['bin/tcpdaemon', 'bench', ...args], 20_000);
    assert.equal(run.code, 0, `${run.stdout}\n${run.stderr}`);
    const result = JSON.parse(run.stdout) as BenchResult;
    assert.equal(result.paced?.rate, 10);
    assert.equal(result.paced?.late, 0);
    assert.ok(result.completed > 0 && result.completed <= 6, `${result.completed} cycles in 0.5 s at 10/s`);
  } finally {
    await server.stop();
  }
  const closed = toolArgs({ mode: 'connect', connections: 2, seconds: 1 }, 1, '127.0.0.1', 1);
  assert.ok(!closed.includes('--rate'), 'no --rate without a rate: closed loops');
});

test('closed-loop connect scenarios (TLS ones too) run connect-gen; gateway, message and TLS echo rows pipeline-gen; paced, other echo and hold ones the node tool', () => {
  for (const s of SCENARIOS) {
    if (s.table === 'redis') continue;
    const closedConnect = s.load.mode === 'connect' && s.load.rate === undefined && !s.load.generator;
    const pipelined =
      s.table === 'gateway' || s.table === 'message' || (s.table === 'tls' && s.load.mode === 'echo');
    assert.equal(
      generatorOf(s.load),
      closedConnect ? 'connect-gen' : pipelined ? 'pipeline-gen' : 'tcpdaemon bench',
      s.name,
    );
  }
  assert.ok(
    SCENARIOS.some((s) => s.table !== 'redis' && s.load.close === 'rst'),
    'rows with RST closes',
  );
  for (const tls of ['new', 'resume'] as const) {
    assert.ok(
      SCENARIOS.some(
        (s) =>
          s.table === 'tls' &&
          s.load.mode === 'connect' &&
          s.load.tls === tls &&
          generatorOf(s.load) === 'connect-gen',
      ),
      `TLS handshakes (${tls}) by connect-gen`,
    );
  }
  const echo = { mode: 'echo' as const, connections: 1, seconds: 1 };
  assert.throws(() => generatorOf({ ...echo, generator: 'connect-gen' }), /closed-loop connect loads only/);
  assert.throws(
    () => generatorOf({ ...echo, mode: 'connect', rate: 10, generator: 'connect-gen' }),
    /closed-loop connect loads only/,
  );
  assert.throws(() => generatorOf({ ...echo, close: 'rst' }), /close goes with connect-gen loads only/);
  assert.equal(generatorOf({ ...echo, codec: 'seq', generator: 'pipeline-gen' }), 'pipeline-gen');
  assert.equal(generatorOf({ ...echo, tls: 'new', generator: 'pipeline-gen' }), 'pipeline-gen');
  assert.ok(
    SCENARIOS.some((s) => s.table === 'tls' && s.load.mode === 'echo' && s.load.size === 16384),
    'a 16 KiB TLS echo row',
  );
  for (const load of [
    { ...echo, mode: 'connect' as const },
    { ...echo, codec: 'tdhb:4' },
    { ...echo, tls: 'resume' as const },
  ]) {
    assert.throws(() => generatorOf({ ...load, generator: 'pipeline-gen' }), /pipeline-gen runs echo loads/);
  }
});

test('--warmup gives every run but a hold the warm-up; --quick shortens it as it shortens the load', () => {
  const connect = { mode: 'connect' as const, connections: 8, size: 64, seconds: 3 };
  const hold = { mode: 'hold' as const, connections: 100, size: 1, seconds: 60, holdSeconds: 5 };
  assert.equal(runLoad(connect, false, undefined).warmupSeconds, undefined);
  assert.equal(runLoad(connect, false, 5).warmupSeconds, 5);
  assert.equal(runLoad({ ...connect, mode: 'echo', depth: 16 }, false, 5).warmupSeconds, 5);
  assert.equal(runLoad(hold, false, 5).warmupSeconds, undefined);
  const quick = runLoad(connect, true, 5);
  assert.equal(quick.warmupSeconds, 0.5);
  assert.equal(quick.seconds, 0.5);
});

test('the tool gets the cores the server leaves free, at least one', () => {
  const load = { mode: 'echo' as const, connections: 50, seconds: 1 };
  assert.equal(toolThreads(load, SERVERS['node net'], 2), 1);
  assert.equal(toolThreads(load, SERVERS['node net'], 8), 7);
  assert.equal(toolThreads(load, SERVERS['node cluster 2'], 2), 1);
  assert.equal(toolThreads({ ...load, threads: 4 }, SERVERS['node net'], 2), 4);
});

describe('BENCHMARKS.md section', () => {
  const failed: RunRecord = {
    scenario: 'echo-50x1-64B',
    table: 'echo',
    server: 'node net',
    load: { mode: 'echo', connections: 50, seconds: 1 },
    serverCommand: 'node bench/servers/plain-echo.ts',
    toolCommand: 'tcpdaemon bench --port PORT',
    exitCode: null,
    failure: 'server did not start: boom | bang\nmore',
  };
  const machine = TEST_MACHINE;
  const section = renderSection({
    machine,
    quick: true,
    runs: [failed],
  });

  test('says it is a quick run, names the machine and the commands, shows failures on one line', () => {
    assert.match(section, /Quick run/);
    assert.match(section, /\| cpu \| Test CPU, 2 cores/);
    assert.match(section, /\| echo-50x1-64B \| node net \| failed: server did not start: boom \/ bang \|/);
    assert.match(section, /load \*\*echo-50x1-64B\*\*: `tcpdaemon bench --port PORT`/);
  });

  test("the machine's speed at the start and the end of the run, when openssl measured it", () => {
    assert.doesNotMatch(section, /openssl speed/, 'no row without a figure');
    const timed = renderSection({
      machine: { ...machine, rsaSignsPerSecond: { start: 1100, end: 2450 } },
      quick: true,
      runs: [failed],
    });
    assert.match(timed, /\| speed \(openssl speed rsa2048, signs\/s, one core\) \| start 1100, end 2450 \|/);
  });

  test('the connect table shows the offered rate and late starts of paced rows, blank for loops', () => {
    const connect = (server: string, paced?: BenchResult['paced']): RunRecord => ({
      scenario: paced ? 'connect-if-paced' : 'connect-4-if',
      table: 'connect',
      server,
      serverCommand: 'x',
      toolCommand: 'y',
      exitCode: paced?.late ? 2 : 0,
      generator: paced ? 'tcpdaemon bench' : 'connect-gen fin',
      result: {
        mode: 'connect',
        perSecond: 9.6,
        latencyMs: { p50: 4.1, p90: 5, p99: 9.5, p999: 10, max: 12.25, mean: 4.5 },
        errors: {},
        errorTotal: 0,
        tool: { threadBusy: [], cpuCores: paced ? 0.25 : 0.125, cores: 2 },
        ...(paced ? { paced } : {}),
      } as unknown as BenchResult,
      serverCpu: 0.5,
    });
    const text = renderSection({
      machine,
      quick: false,
      runs: [
        connect('tcpdaemon IF -c 4', { rate: 10, due: 100, late: 0, unstarted: 0 }),
        connect('tcpdaemon LF -c 4', { rate: 10, due: 100, late: 3, unstarted: 1 }),
        connect('node -e 0 per connection'),
      ],
    });
    const rows = text.split('\n').filter((l) => l.startsWith('| connect-'));
    assert.deepEqual(rows, [
      '| connect-if-paced | tcpdaemon IF -c 4 | 10 | 10 | 0 | 4.1 | 9.5 | 12.25 | 0 | 0.50 cores | tcpdaemon bench | 0.25 cores |',
      '| connect-if-paced | tcpdaemon LF -c 4 | 10 | 10 | 3 (1 never started) | 4.1 | 9.5 | 12.25 | 0 | 0.50 cores | tcpdaemon bench | 0.25 cores |',
      '| connect-4-if | node -e 0 per connection | 10 |  |  | 4.1 | 9.5 | 12.25 | 0 | 0.50 cores | connect-gen fin | 0.13 cores |',
    ]);
    const header = text.split('\n').find((l) => l.startsWith('| scenario | server | connections/s'));
    assert.equal(header?.split('|').length, rows[0]!.split('|').length, 'as many cells as columns');
  });

  test('the gateway table: each row against the message layer, server µs per message, the generator and its CPU', () => {
    const run = (server: string, perSecond: number, cpuCores: number): RunRecord => ({
      scenario: 'gateway-50x16-64B',
      table: 'gateway',
      server,
      load: {
        mode: 'echo',
        connections: 50,
        depth: 16,
        seconds: 3,
        codec: 'lars',
        generator: 'pipeline-gen',
      },
      serverCommand: 'x',
      toolCommand: 'y',
      exitCode: 0,
      generator: 'pipeline-gen',
      result: {
        mode: 'echo',
        perSecond,
        latencyMs: { p50: 1, p90: 2, p99: 3, p999: 4, max: 5, mean: 1 },
        errors: {},
        errorTotal: 0,
        tool: { threadBusy: [], cpuCores, cores: 2 },
      } as unknown as BenchResult,
      serverCpu: 0.5,
    });
    const text = renderSection({
      machine,
      quick: false,
      runs: [
        run('C epoll echo', 4_000_000, 0.5),
        run('message layer lars', 1_000_000, 0.25),
        run('gateway ipc 2 workers', 250_000, 0.125),
      ],
    });
    const rows = text.split('\n').filter((l) => l.startsWith('| gateway-50x16-64B'));
    assert.deepEqual(rows, [
      '| gateway-50x16-64B | C epoll echo | 4,000,000 | 4.00x | 1 | 3 | 5 | 0 | 0.50 cores | 0.13 | pipeline-gen | 0.50 cores |  |',
      '| gateway-50x16-64B | message layer lars | 1,000,000 | 1.00x | 1 | 3 | 5 | 0 | 0.50 cores | 0.50 | pipeline-gen | 0.25 cores |  |',
      '| gateway-50x16-64B | gateway ipc 2 workers | 250,000 | 0.25x | 1 | 3 | 5 | 0 | 0.50 cores | 2.00 | pipeline-gen | 0.13 cores |  |',
    ]);
    const header = text
      .split('\n')
      .find((l) => l.startsWith('| scenario | server | msg/s | vs message layer'));
    assert.equal(header?.split('|').length, rows[0]!.split('|').length, 'as many cells as columns');
  });

  test('the TLS table: each row against node tls (pipe) and node tls (for await) of its key type, server CPU µs per unit, resumed count', () => {
    const run = (server: string, perSecond: number, serverCpu: number): RunRecord => ({
      scenario: 'tls-handshake-resume-rsa',
      table: 'tls',
      server,
      load: { mode: 'connect', connections: 50, seconds: 4, tls: 'resume' },
      serverCommand: 'x',
      toolCommand: 'y',
      exitCode: 0,
      generator: 'connect-gen fin tls resume',
      tlsResumed: perSecond * 4 - 1,
      result: {
        mode: 'connect',
        perSecond,
        latencyMs: { p50: 1, p90: 2, p99: 3, p999: 4, max: 5, mean: 1 },
        errors: {},
        errorTotal: 0,
        tool: { threadBusy: [], cpuCores: 0.25, cores: 2 },
      } as unknown as BenchResult,
      serverCpu,
    });
    const text = renderSection({
      machine,
      quick: false,
      runs: [
        run('tls tcpdaemon IOMP -c 1 RSA', 1900, 0.95),
        run('tls node tls (for await) RSA', 1800, 0.9),
        run('tls node tls RSA', 2000, 0.9),
      ],
    });
    const rows = text.split('\n').filter((l) => l.startsWith('| tls-handshake-resume-rsa'));
    assert.deepEqual(rows, [
      '| tls-handshake-resume-rsa | tls tcpdaemon IOMP -c 1 RSA | 1,900 | handshakes | 0.95x | 1.06x | 500 | 1.11x | 1 | 3 | 0 | 0.95 cores | 7,599 | connect-gen fin tls resume | 0.25 cores |',
      '| tls-handshake-resume-rsa | tls node tls (for await) RSA | 1,800 | handshakes | 0.90x |  | 500 | 1.11x | 1 | 3 | 0 | 0.90 cores | 7,199 | connect-gen fin tls resume | 0.25 cores |',
      '| tls-handshake-resume-rsa | tls node tls RSA | 2,000 | handshakes |  | 1.11x | 450 |  | 1 | 3 | 0 | 0.90 cores | 7,999 | connect-gen fin tls resume | 0.25 cores |',
    ]);
    const header = text.split('\n').find((l) => l.startsWith('| scenario | server | per second'));
    assert.equal(header?.split('|').length, rows[0]!.split('|').length, 'as many cells as columns');
  });

  test('the generator table shows each generator against the C echo over the fastest server connect row', () => {
    const run = (
      scenario: string,
      table: RunRecord['table'],
      server: string,
      perSecond: number,
      generator: string,
    ): RunRecord => ({
      scenario,
      table,
      server,
      load: { mode: 'connect', connections: 50, seconds: 3 },
      serverCommand: 'x',
      toolCommand: 'y',
      exitCode: 0,
      generator,
      result: {
        mode: 'connect',
        perSecond,
        latencyMs: { p50: 1, p90: 2, p99: 3, p999: 4, max: 5, mean: 1 },
        errors: {},
        errorTotal: 0,
        tool: { threadBusy: [], cpuCores: 0.5, cores: 2 },
      } as unknown as BenchResult,
      serverCpu: 1,
    });
    const text = renderSection({
      machine,
      quick: false,
      runs: [
        run('generator-connect-50-fin', 'generator', 'C epoll echo', 30_000, 'connect-gen fin'),
        run('generator-connect-50-fin', 'generator', 'node net', 9_000, 'connect-gen fin'),
        run('workers-connect-50', 'workers', 'node cluster 2', 12_000, 'connect-gen fin'),
        run('connect-8-2w', 'connect', 'tcpdaemon IOMP -c 2', 5_000, 'connect-gen fin'),
      ],
    });
    const rows = text.split('\n').filter((l) => l.startsWith('| generator-'));
    assert.deepEqual(rows, [
      '| generator-connect-50-fin | C epoll echo | connect-gen fin | 30,000 | 2.50x | 1 | 3 | 0 | 1.00 cores | 0.50 cores | 17 |',
      '| generator-connect-50-fin | node net | connect-gen fin | 9,000 |  | 1 | 3 | 0 | 1.00 cores | 0.50 cores | 56 |',
    ]);
    assert.match(
      text,
      /Fastest server connect row of this run: workers-connect-50, node cluster 2, 12,000 conn\/s/,
    );
    const worker = text.split('\n').find((l) => l.startsWith('| workers-connect-50 |'));
    assert.match(worker ?? '', /\| connect-gen fin \| 0\.50 cores \|/);
  });

  test('replaces only what lies between the markers', () => {
    const doc = `# Benchmarks\n\nprose before\n\n${BEGIN}\nold tables\n${END}\n\nprose after\n`;
    const next = replaceSection(doc, section);
    assert.ok(next.startsWith('# Benchmarks\n\nprose before\n\n'));
    assert.ok(next.endsWith(`${END}\n\nprose after\n`));
    assert.doesNotMatch(next, /old tables/);
    assert.equal(replaceSection(next, section), next, 'idempotent');
  });

  test('appends the markers to a file that has none', () => {
    const next = replaceSection('# Benchmarks\n\nprose\n', 'tables');
    assert.equal(next, `# Benchmarks\n\nprose\n\n${BEGIN}\ntables\n${END}\n`);
  });
});
