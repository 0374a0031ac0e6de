// `node --import tsx bench/gateway-hold.ts [N]`: one gateway process holds N (default 10,000) idle
// client connections. Each connection is proven by one Lars request answered by a worker, then
// held idle; the gateway process's VmRSS is read before and while holding. Prints one JSON line
// and a markdown table row. (The load tool's hold mode proves connections with a raw echo, which a
// framed gateway does not answer; hence this script.)
import { type ChildProcess, spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { larsCodec } from '../src/message/codecs/lars.js';

const N = Number(process.argv[2] ?? 10_000);
/** Connection attempts in progress at once. */
const PARALLEL = 100;
const HOLD_MS = 3000;

function rssBytes(pid: number): number {
  const m = /^VmRSS:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) * 1024 : Number.NaN;
}

function start(): Promise<{ child: ChildProcess; port: number; gatewayPid: number; openFiles: unknown }> {
  const child = spawn(
    'bin/tcpdaemon',
    [
      'gateway',
      '-l',
      '127.0.0.1:0',
      '--codec',
      'lars',
      '-s',
      'examples/gateway-echo.ts',
      '--business-workers',
      '1',
    ],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  );
  return new Promise((resolve, reject) => {
    let buf = '';
    let gatewayPid = 0;
    child.stdout!.setEncoding('utf8').on('data', (d: string) => {
      buf += d;
      for (let i = buf.indexOf('\n'); i >= 0; i = buf.indexOf('\n')) {
        const line = JSON.parse(buf.slice(0, i)) as Record<string, unknown>;
        buf = buf.slice(i + 1);
        if (line.msg === 'worker ready' && line.supervisor === 'gateways')
          gatewayPid = Number(line.workerPid);
        if (line.msg === 'listening') {
          const port = Number(String(line.address).split(':').pop());
          resolve({ child, port, gatewayPid, openFiles: line.openFiles });
        }
      }
    });
    child.once('exit', (code) => reject(new Error(`gateway exited with ${code}`)));
  });
}

/** Opens one connection and proves it with one echoed Lars frame. */
function open(port: number, i: number): Promise<Socket> {
  const codec = larsCodec();
  const body = Buffer.from(`hold ${i}`);
  return new Promise((resolve, reject) => {
    const s = connect(port, '127.0.0.1');
    const decoder = codec.createDecoder({
      frame: (_msgid, reply) => {
        s.removeAllListeners('data');
        s.pause();
        if (reply.equals(body)) resolve(s);
        else reject(new Error(`connection ${i}: wrong echo`));
      },
      error: (reason) => reject(new Error(`connection ${i}: ${reason}`)),
    });
    s.on('data', (d: Buffer) => decoder.push(d));
    s.once('error', reject);
    s.once('connect', () => s.write(codec.encode(1, body)));
  });
}

const g = await start();
await new Promise((r) => setTimeout(r, 500));
const before = rssBytes(g.gatewayPid);
const sockets: Socket[] = [];
let failed = 0;
const t0 = performance.now();
let next = 0;
await Promise.all(
  Array.from({ length: PARALLEL }, async () => {
    while (next < N) {
      const i = next++;
      try {
        sockets.push(await open(g.port, i));
      } catch {
        failed++;
      }
    }
  }),
);
const rampS = (performance.now() - t0) / 1000;
await new Promise((r) => setTimeout(r, HOLD_MS));
const holding = rssBytes(g.gatewayPid);
for (const s of sockets) s.destroy();
g.child.kill('SIGTERM');
await new Promise((r) => g.child.once('exit', r));

const perConnection = Math.round((holding - before) / Math.max(1, sockets.length));
const mib = (b: number) => `${(b / 1048576).toFixed(1)} MiB`;
process.stdout.write(
  `${JSON.stringify({ connections: N, open: sockets.length, failed, rampS, before, holding, perConnection, openFiles: g.openFiles })}\n`,
);
process.stdout.write(
  `| gateway process, ${N} idle Lars connections | ${sockets.length} / ${N} | ${failed} | ${mib(before)} | ${mib(holding)} | ${perConnection} B | ${rampS.toFixed(1)} |\n`,
);
