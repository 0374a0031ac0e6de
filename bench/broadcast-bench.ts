// What a message between workers costs (env.broadcast): one sender publishes M lines of 64 bytes,
// R receivers spread over the workers each get all M; one JSON object on stdout.
//   node --import tsx bench/broadcast-bench.ts [--messages M] [--receivers R] [--rounds K]
// Per model: published messages/s, deliveries/s (to connections), and the CPU of the daemon and its
// workers per published message, as medians of K rounds.
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { parseArgs } from 'node:util';
import { startDaemon } from '../test/helpers/daemon.js';

const { values } = parseArgs({
  options: {
    messages: { type: 'string', default: '20000' },
    receivers: { type: 'string', default: '8' },
    rounds: { type: 'string', default: '3' },
  },
});
const M = Number(values.messages);
const R = Number(values.receivers);
const ROUNDS = Number(values.rounds);
if (!(M > 0 && M <= 1e6 && R > 0 && R <= 200 && ROUNDS > 0 && ROUNDS <= 20)) {
  process.stderr.write('broadcast-bench: --messages 1..1e6, --receivers 1..200, --rounds 1..20\n');
  process.exit(1);
}
const LINE = `${'x'.repeat(63)}\n`;
const TICK = 100; // clock ticks per second on Linux

/** utime + stime of pid and its children (worker processes), seconds. */
function cpuSeconds(pid: number): number {
  const pids = [pid];
  try {
    pids.push(
      ...execFileSync('pgrep', ['-P', String(pid)], { encoding: 'utf8' })
        .trim()
        .split('\n')
        .map(Number),
    );
  } catch {
    // no children
  }
  let ticks = 0;
  for (const p of pids) {
    const fields = readFileSync(`/proc/${p}/stat`, 'utf8').split(') ')[1]!.split(' ');
    ticks += Number(fields[11]) + Number(fields[12]);
  }
  return ticks / TICK;
}

interface Client {
  socket: Socket;
  worker: string;
  got: number;
}

async function client(port: number): Promise<Client> {
  const socket = connect(port, '127.0.0.1');
  const c: Client = { socket, worker: '', got: 0 };
  await new Promise<void>((resolve, reject) => {
    let text = '';
    socket.once('error', reject);
    const onData = (d: Buffer) => {
      if (c.worker === '') {
        text += d.toString('latin1');
        const nl = text.indexOf('\n');
        if (nl === -1) return;
        c.worker = text.slice(0, nl);
        c.got += text.length - nl - 1;
        resolve();
      } else c.got += d.length;
    };
    socket.on('data', onData);
    socket.write('who\n');
  });
  return c;
}

async function round(model: string, workers: number) {
  const { daemon, port } = await startDaemon([
    '-m',
    model,
    '-c',
    String(workers),
    '-l',
    '127.0.0.1:0',
    '-s',
    'bench/servers/broadcast.mjs',
  ]);
  try {
    const receivers: Client[] = [];
    for (let i = 0; i < 200 && receivers.length < R; i++) receivers.push(await client(port));
    const sender = await client(port);
    const spread = new Set(receivers.map((c) => c.worker)).size;
    const expected = M * LINE.length;
    const cpu0 = cpuSeconds(daemon.pid!);
    const t0 = performance.now();
    sender.socket.write(LINE.repeat(M));
    const deadline = Date.now() + 120_000;
    while (receivers.some((c) => c.got < expected)) {
      if (Date.now() > deadline)
        throw new Error('broadcast-bench: receivers did not get every line within 120 s');
      await new Promise((r) => setTimeout(r, 5));
    }
    const seconds = (performance.now() - t0) / 1000;
    const cpu = cpuSeconds(daemon.pid!) - cpu0;
    for (const c of [...receivers, sender]) c.socket.destroy();
    return { seconds, cpu, spread };
  } finally {
    await daemon.kill();
  }
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const rows = [];
for (const [model, workers] of [
  ['IOMP', 1],
  ['IOMP', 2],
  ['TLF', 2],
] as const) {
  const runs = [];
  for (let i = 0; i < ROUNDS; i++) runs.push(await round(model, workers));
  process.stderr.write(`${model} -c ${workers} done\n`);
  rows.push({
    server: `${model} -c ${workers}`,
    workersWithReceivers: Math.min(...runs.map((r) => r.spread)),
    published: Math.round(M / median(runs.map((r) => r.seconds))),
    delivered: Math.round((M * R) / median(runs.map((r) => r.seconds))),
    cpuUsPerPublished: Math.round((median(runs.map((r) => r.cpu)) / M) * 1e6 * 10) / 10,
    cpuUsPerDelivered: Math.round((median(runs.map((r) => r.cpu)) / (M * R)) * 1e6 * 100) / 100,
  });
}
process.stdout.write(
  `${JSON.stringify({ messages: M, receivers: R, bytes: LINE.length, rounds: ROUNDS, rows })}\n`,
);
