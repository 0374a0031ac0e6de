// `node --import tsx bench/gateway-pipeline.ts`: pipelining through the gateway (issue 19). One
// gateway process, 2 ipc workers, examples/gateway-echo.ts, Lars frames; two loads, each written
// at once: 10,000 requests on one connection, and 100 connections each writing 1,000. Every answer
// is checked (its body, so its order) and error frames (msgid -1) are counted; the gateway
// process's VmRSS is sampled every 20 ms; server CPU is the daemon's, the gateway's and the
// workers' utime + stime over the load. Prints one JSON line per load and markdown table rows.
import { type ChildProcess, spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { connect } from 'node:net';
import { larsCodec } from '../src/message/codecs/lars.js';

const CLK_TCK = 100;

interface Started {
  child: ChildProcess;
  port: number;
  gatewayPid: number;
  pids: number[];
}

function rssBytes(pid: number): number {
  const m = /^VmRSS:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) * 1024 : Number.NaN;
}

/** utime + stime of a process, seconds. */
function cpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) / CLK_TCK;
}

function start(): Promise<Started> {
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
      '2',
    ],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  );
  return new Promise((resolve, reject) => {
    let buf = '';
    let gatewayPid = 0;
    const pids = [child.pid!];
    child.stdout!.setEncoding('utf8').on('data', (d: string) => {
      buf += d;
      for (let i = buf.indexOf('\n'); i >= 0; i = buf.indexOf('\n')) {
        const line = JSON.parse(buf.slice(0, i)) as Record<string, unknown>;
        buf = buf.slice(i + 1);
        if (line.msg === 'worker ready') {
          pids.push(Number(line.workerPid));
          if (line.supervisor === 'gateways') gatewayPid = Number(line.workerPid);
        }
        if (line.msg === 'listening') {
          const port = Number(String(line.address).split(':').pop());
          resolve({ child, port, gatewayPid, pids });
        }
      }
    });
    child.once('exit', (code) => reject(new Error(`gateway exited with ${code}`)));
  });
}

interface ClientResult {
  answered: number;
  outOfOrder: number;
  errorFrames: number;
}

/** One connection writes `count` requests at once and reads every answer. */
function pipelined(port: number, client: number, count: number): Promise<ClientResult> {
  const codec = larsCodec();
  const body = (i: number) => Buffer.from(`c${client}:${i}`);
  const all = Buffer.concat(Array.from({ length: count }, (_, i) => codec.encode(1, body(i))));
  const r: ClientResult = { answered: 0, outOfOrder: 0, errorFrames: 0 };
  return new Promise((resolve, reject) => {
    const s = connect(port, '127.0.0.1');
    const decoder = codec.createDecoder({
      frame: (msgid, reply) => {
        if (msgid === -1) r.errorFrames++;
        else if (!reply.equals(body(r.answered))) r.outOfOrder++;
        if (++r.answered === count) {
          s.destroy();
          resolve(r);
        }
      },
      error: (reason) => reject(new Error(`client ${client}: ${reason}`)),
    });
    s.on('data', (d: Buffer) => decoder.push(d));
    s.once('error', reject);
    s.once('connect', () => s.write(all));
  });
}

async function load(g: Started, label: string, clients: number, each: number): Promise<string> {
  const rssBefore = rssBytes(g.gatewayPid);
  let rssPeak = rssBefore;
  const sampler = setInterval(() => {
    rssPeak = Math.max(rssPeak, rssBytes(g.gatewayPid));
  }, 20);
  const cpu0 = g.pids.reduce((n, p) => n + cpuSeconds(p), 0);
  const t0 = performance.now();
  const results = await Promise.all(Array.from({ length: clients }, (_, c) => pipelined(g.port, c, each)));
  const seconds = (performance.now() - t0) / 1000;
  const cpu = g.pids.reduce((n, p) => n + cpuSeconds(p), 0) - cpu0;
  clearInterval(sampler);
  rssPeak = Math.max(rssPeak, rssBytes(g.gatewayPid));
  const total = clients * each;
  const sum = (k: keyof ClientResult) => results.reduce((n, x) => n + x[k], 0);
  const out = {
    load: label,
    requests: total,
    answered: sum('answered'),
    outOfOrder: sum('outOfOrder'),
    errorFrames: sum('errorFrames'),
    seconds,
    perSecond: Math.round(total / seconds),
    serverCpuSeconds: cpu,
    requestsPerCpuSecond: cpu > 0 ? Math.round(total / cpu) : null,
    rssBefore,
    rssPeak,
  };
  process.stdout.write(`${JSON.stringify(out)}\n`);
  const mib = (b: number) => `${(b / 1048576).toFixed(1)} MiB`;
  return `| ${label} | ${out.answered.toLocaleString('en')} / ${total.toLocaleString('en')} | ${out.outOfOrder} | ${out.errorFrames} | ${seconds.toFixed(2)} | ${out.perSecond.toLocaleString('en')} | ${out.requestsPerCpuSecond?.toLocaleString('en') ?? '-'} | ${mib(rssBefore)} | ${mib(rssPeak)} |`;
}

const g = await start();
try {
  await pipelined(g.port, -1, 100); // warm-up
  const rows = [
    await load(g, '1 connection x 10,000 pipelined', 1, 10_000),
    await load(g, '100 connections x 1,000 pipelined', 100, 1000),
  ];
  process.stdout.write(
    '| load | answered | out of order | error frames | s | requests/s | requests per server CPU-s | gateway RSS before | gateway RSS peak |\n',
  );
  process.stdout.write('| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n');
  for (const r of rows) process.stdout.write(`${r}\n`);
} finally {
  g.child.kill('SIGTERM');
  await new Promise((r) => g.child.once('exit', r));
}
