// Proxy fronts' CPU per connection, measured in pairs on a loaded machine: every front runs at
// the same time, each in front of its own epoll-echo and loaded by its own connect-gen (one
// thread, 64 B, FIN or RST), start order rotating per round. Per round and front: utime + stime
// of the front's processes (/proc/PID/stat, children included) over the round ÷ connections.
// Fronts: `NAME=DIR` runs DIR's bin/tcpdaemon proxy (DIR built: npm run build there), with the
// timeouts bench/servers/proxy-stack.ts gives ours (--connect-timeout 5 --timeout 60);
// `minimal` runs bench/servers/minimal-proxy.ts. The servers run on the node that runs this.
// usage: node --import tsx bench/proxy-cpu-pair.ts --front before=/path/a --front after=. --front minimal
//          [--rounds 6] [--seconds 4] [--close fin|rst] [--loops 20]
import { type ChildProcess, spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { buildNative } from './native.js';

const ROOT = resolve(import.meta.dirname, '..');
const { values } = parseArgs({
  options: {
    rounds: { type: 'string', default: '6' },
    seconds: { type: 'string', default: '4' },
    close: { type: 'string', default: 'fin' },
    loops: { type: 'string', default: '20' },
    front: { type: 'string', multiple: true, default: [] },
  },
});
const CLK_TCK = 100; // Linux's USER_HZ for /proc/PID/stat
const gen = buildNative('connect-gen');
const echo = buildNative('epoll-echo');
const children: ChildProcess[] = [];
process.on('exit', () => {
  for (const c of children) c.kill('SIGKILL');
});
process.on('SIGINT', () => process.exit(1));

function start(argv: string[], cwd = ROOT): ChildProcess {
  const c = spawn(argv[0]!, argv.slice(1), { cwd, stdio: ['ignore', 'pipe', 'inherit'] });
  children.push(c);
  return c;
}

function listeningPort(child: ChildProcess): Promise<number> {
  return new Promise((res, rej) => {
    let buf = '';
    child.stdout!.setEncoding('utf8').on('data', (d: string) => {
      buf += d;
      for (let i = buf.indexOf('\n'); i >= 0; i = buf.indexOf('\n')) {
        const line = buf.slice(0, i);
        buf = buf.slice(i + 1);
        try {
          const l = JSON.parse(line) as { msg?: string; address?: string };
          if (l.msg === 'listening' && l.address) res(Number(/:(\d+)$/.exec(l.address)?.[1]));
        } catch {
          // not a log line
        }
      }
    });
    child.once('exit', (code) => rej(new Error(`${child.spawnargs.join(' ')} exited (${code})`)));
  });
}

/** utime + stime of `pid` and its descendants, µs. */
function cpuUs(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  let us = ((Number(f[11]) + Number(f[12])) * 1e6) / CLK_TCK;
  let kids: string[] = [];
  try {
    kids = readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean);
  } catch {
    // gone
  }
  for (const k of kids) us += cpuUs(Number(k));
  return us;
}

function load(port: number, seconds: number): Promise<{ completed: number; errorTotal: number }> {
  return new Promise((res, rej) => {
    const args = ['--port', String(port), '--connections', values.loops!, '--size', '64'];
    args.push('--duration', String(seconds), '--close', values.close!, '--threads', '1');
    const c = start([gen, ...args]);
    let out = '';
    c.stdout!.setEncoding('utf8').on('data', (d: string) => {
      out += d;
    });
    c.once('exit', () => {
      try {
        res(JSON.parse(out));
      } catch (err) {
        rej(err);
      }
    });
  });
}

interface Front {
  name: string;
  port: number;
  pid: number;
  perConn: number[];
}
const fronts: Front[] = [];
for (const spec of values.front!) {
  const [name, dir] = spec.split('=') as [string, string | undefined];
  const backend = await listeningPort(start([echo, '127.0.0.1:0']));
  const child =
    name === 'minimal'
      ? start([
          process.execPath,
          '--import',
          'tsx',
          join(ROOT, 'bench/servers/minimal-proxy.ts'),
          '127.0.0.1:0',
          `127.0.0.1:${backend}`,
        ])
      : start(
          [
            process.execPath,
            'bin/tcpdaemon',
            'proxy',
            '-l',
            '127.0.0.1:0',
            '--connect-timeout',
            '5',
            '--timeout',
            '60',
            '--backend',
            `127.0.0.1:${backend}`,
          ],
          resolve(dir ?? '.'),
        );
  fronts.push({ name, port: await listeningPort(child), pid: child.pid!, perConn: [] });
}
for (const f of fronts) await load(f.port, 2); // warm-up (JIT), one front at a time

const rounds = Number(values.rounds);
for (let r = 0; r < rounds; r++) {
  const order = fronts.map((_, i) => fronts[(i + r) % fronts.length]!);
  const results = await Promise.all(
    order.map(async (f) => {
      const before = cpuUs(f.pid);
      const out = await load(f.port, Number(values.seconds));
      return {
        f,
        us: (cpuUs(f.pid) - before) / out.completed,
        rate: out.completed / Number(values.seconds),
        errors: out.errorTotal,
      };
    }),
  );
  for (const x of results) x.f.perConn.push(x.us);
  const loadavg = readFileSync('/proc/loadavg', 'utf8').split(' ')[0];
  const line = results.map(
    (x) => `${x.f.name} ${x.us.toFixed(1)} µs (${x.rate.toFixed(0)}/s, errors ${x.errors})`,
  );
  console.log(`round ${r + 1}, load ${loadavg}: ${line.join(' | ')}`);
}

function median(a: number[]): number {
  const s = [...a].sort((x, y) => x - y);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}
const ref = fronts.find((f) => f.name === 'minimal');
for (const f of fronts) {
  let text = `${f.name}: median ${median(f.perConn).toFixed(1)} µs/conn (${f.perConn.map((v) => v.toFixed(1)).join(' ')})`;
  if (ref && f !== ref) {
    const ratios = f.perConn.map((v, i) => ref.perConn[i]! / v);
    text += `; minimal ÷ this, median of rounds ${median(ratios).toFixed(2)} (${Math.min(...ratios).toFixed(2)}–${Math.max(...ratios).toFixed(2)})`;
  }
  console.log(text);
}
console.log(
  `node ${process.version}, close ${values.close}, ${rounds} rounds × ${values.seconds} s, ${values.loops} loops`,
);
process.exit(0);
