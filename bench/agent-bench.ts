// The agent's request/response overhead, short runs, one JSON object on stdout:
//   npm run build && node --import tsx bench/agent-bench.ts [--duration SECONDS] [--clients N]
// One upstream (bin/tcpdaemon -m IOMP serving examples/seq-echo.ts). Round trips per second and
// latency percentiles of MessageClient.request() (seq codec, 64-byte bodies) with 1 and 32 requests
// in flight per client: direct to the upstream over TCP, and through `tcpdaemon agent` (a unix
// socket in, --connections 2 out). The ratio is what the extra hop costs.
import { mkdtempSync, rmSync } from 'node:fs';
import { availableParallelism, cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { MessageClient, type MessageClientOptions } from '../src/message/index.js';
import { readStatus } from '../src/status.js';
import { type DaemonProcess, startDaemon } from '../test/helpers/daemon.js';

const { values } = parseArgs({
  options: { duration: { type: 'string', default: '1' }, clients: { type: 'string', default: '1' } },
});
const seconds = Number(values.duration);
const clientCount = Number(values.clients);
if (
  !(seconds > 0 && seconds <= 30) ||
  !(Number.isInteger(clientCount) && clientCount >= 1 && clientCount <= 64)
) {
  process.stderr.write('bench/agent-bench.ts: --duration in (0, 30] seconds, --clients 1..64\n');
  process.exit(1);
}

interface Row {
  path: 'direct' | 'agent';
  clients: number;
  inFlight: number;
  roundTripsPerSec: number;
  p50Ms: number;
  p99Ms: number;
}

async function measure(
  path: Row['path'],
  target: Pick<MessageClientOptions, 'port' | 'path'>,
  inFlight: number,
  ms: number,
): Promise<Row> {
  const clients = Array.from(
    { length: clientCount },
    () => new MessageClient({ ...target, codec: 'seq', reconnect: false }),
  );
  try {
    await Promise.all(clients.map((c) => c.connect()));
    const body = Buffer.alloc(64, 0x62);
    let done = 0;
    let stop = false;
    const latencies: number[] = [];
    const loop = async (c: MessageClient) => {
      while (!stop) {
        const t = performance.now();
        await c.request(1, body, { timeout: 5000 });
        latencies.push(performance.now() - t);
        done++;
      }
    };
    // Warm-up: a few hundred round trips each before timing.
    for (const c of clients) for (let i = 0; i < 200; i++) await c.request(1, body);
    const start = performance.now();
    const loops = clients.flatMap((c) => Array.from({ length: inFlight }, () => loop(c)));
    await new Promise((r) => setTimeout(r, ms));
    stop = true;
    await Promise.all(loops);
    const elapsed = performance.now() - start;
    latencies.sort((x, y) => x - y);
    const pct = (p: number) =>
      Number(latencies[Math.min(latencies.length - 1, Math.floor(p * latencies.length))]!.toFixed(3));
    return {
      path,
      clients: clientCount,
      inFlight,
      roundTripsPerSec: Math.round(done / (elapsed / 1000)),
      p50Ms: pct(0.5),
      p99Ms: pct(0.99),
    };
  } finally {
    await Promise.all(clients.map((c) => c.close()));
  }
}

const dir = mkdtempSync(join(tmpdir(), 'tcpd-agent-bench-'));
const upstream = await startDaemon(['-m', 'IOMP', '-l', '127.0.0.1:0', '-s', 'examples/seq-echo.ts']);
let agent: DaemonProcess | undefined;
try {
  const sock = join(dir, 'agent.sock');
  const statusSock = join(dir, 'agent.status');
  agent = (
    await startDaemon([
      'agent',
      '-l',
      sock,
      '--upstream',
      `127.0.0.1:${upstream.port}`,
      '--connections',
      '2',
      '--status-socket',
      statusSock,
    ])
  ).daemon;
  const ready = agent;
  await ready.waitForLog(() => ready.logs.filter((l) => l.msg === 'upstream connected').length >= 2);
  const rows: Row[] = [];
  for (const inFlight of [1, 32]) {
    rows.push(await measure('direct', { port: upstream.port }, inFlight, seconds * 1000));
    rows.push(await measure('agent', { path: sock }, inFlight, seconds * 1000));
  }
  // What the agent itself counted: every agent round trip went through it.
  const status = await readStatus(statusSock);
  const upstreams = status.sections?.find((x) => x.title === 'upstreams')?.data as
    | { hosts: { requests: number; replies: number }[] }
    | undefined;
  const ratio = (inFlight: number) => {
    const d = rows.find((r) => r.path === 'direct' && r.inFlight === inFlight)!;
    const a = rows.find((r) => r.path === 'agent' && r.inFlight === inFlight)!;
    return Number((a.roundTripsPerSec / d.roundTripsPerSec).toFixed(2));
  };
  process.stdout.write(
    `${JSON.stringify(
      {
        machine: { cpus: availableParallelism(), cpu: cpus()[0]?.model, node: process.version },
        seconds,
        rows,
        agentOverDirect: { inFlight1: ratio(1), inFlight32: ratio(32) },
        agentCounted: upstreams?.hosts[0],
      },
      null,
      2,
    )}\n`,
  );
} finally {
  await agent?.kill();
  await upstream.daemon.kill();
  rmSync(dir, { recursive: true, force: true });
}
