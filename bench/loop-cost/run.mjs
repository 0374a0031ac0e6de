// Loop-cost harness: server CPU µs per connection of node:net echo servers and tcpdaemon IOMP -c 1,
// driven by connect-gen (.bench-out/native/connect-gen; build it with bench/native.ts).
// usage: node bench/loop-cost/run.mjs [--node PATH] [--rounds N] [--seconds S] [--close fin|rst]
//          [--connections N] [--servers pipe,node-iter,our-iter,tcpdaemon,base:tcpdaemon]
//          [--base DIR] [--args 'NODE FLAGS'] [--handler FILE]
// Each round runs every server (alternating), connect-gen for 1 s of warm-up then S s measured;
// CPU = run time (/proc/PID/task/*/schedstat) of the server and its descendants over the measured part.
import { execFileSync, spawn } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { parseArgs } from 'node:util';

const ROOT = resolve(import.meta.dirname, '../..');
const { values: o } = parseArgs({
  options: {
    node: { type: 'string', default: process.execPath },
    rounds: { type: 'string', default: '3' },
    seconds: { type: 'string', default: '3' },
    close: { type: 'string', default: 'fin' },
    connections: { type: 'string', default: '50' },
    servers: { type: 'string', default: 'pipe,node-iter,our-iter,tcpdaemon' },
    handler: { type: 'string', default: 'examples/echo.js' },
    args: { type: 'string', default: '' },
    base: { type: 'string', default: '/tmp/lc-base' },
  },
});
const GEN = resolve(ROOT, '.bench-out/native/connect-gen');
const extra = o.args ? o.args.split(' ') : [];

// A name `base:NAME` runs NAME from the tree given with --base (e.g. a copy of the commit before),
// `/DIR:NAME` from DIR.
function commandFor(name) {
  name = name.replace(/^base:/, '').replace(/^\/[^:]*:/, '');
  if (name === 'tcpdaemon')
    return [o.node, ...extra, 'bin/tcpdaemon', '-m', 'IOMP', '-c', '1', '-l', '127.0.0.1:0', '-s', o.handler];
  return [o.node, ...extra, 'bench/loop-cost/servers.mjs', name];
}

function start(name) {
  const argv = commandFor(name);
  const cwd = name.startsWith('base:')
    ? o.base
    : name.startsWith('/')
      ? name.slice(0, name.indexOf(':'))
      : ROOT;
  const child = spawn(argv[0], argv.slice(1), { cwd, stdio: ['ignore', 'pipe', 'inherit'] });
  return new Promise((res, rej) => {
    let buf = '';
    child.stdout.setEncoding('utf8');
    child.stdout.on('data', (d) => {
      buf += d;
      const m = /"address":"127\.0\.0\.1:(\d+)"/.exec(buf) ?? /^(\d+)\n/.exec(buf);
      if (m) {
        child.stdout.removeAllListeners('data');
        child.stdout.resume();
        res({ child, port: Number(m[1]) });
      }
    });
    child.once('exit', (c) => rej(new Error(`${name} exited ${c}`)));
  });
}

function descendants(pid) {
  const kids = new Map();
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const s = readFileSync(`/proc/${d}/stat`, 'utf8');
      const ppid = Number(s.slice(s.lastIndexOf(')') + 2).split(' ')[1]);
      if (!kids.has(ppid)) kids.set(ppid, []);
      kids.get(ppid).push(Number(d));
    } catch {}
  }
  const out = [pid];
  for (let i = 0; i < out.length; i++) out.push(...(kids.get(out[i]) ?? []));
  return out;
}

// Run time of every thread (/proc/PID/task/TID/schedstat, ns: finer than utime+stime's ticks).
function cpuSeconds(pid) {
  let ns = 0;
  for (const p of descendants(pid)) {
    try {
      for (const t of readdirSync(`/proc/${p}/task`))
        ns += Number(readFileSync(`/proc/${p}/task/${t}/schedstat`, 'utf8').split(' ')[0]);
    } catch {}
  }
  return ns / 1e9;
}

function gen(port, seconds) {
  const out = execFileSync(
    GEN,
    [
      '--port',
      String(port),
      '--connections',
      o.connections,
      '--size',
      '64',
      '--duration',
      String(seconds),
      '--close',
      o.close,
    ],
    { encoding: 'utf8' },
  );
  return JSON.parse(out);
}

const names = o.servers.split(',');
const results = Object.fromEntries(names.map((n) => [n, []]));
for (let r = 0; r < Number(o.rounds); r++) {
  for (const name of r % 2 ? [...names].reverse() : names) {
    const { child, port } = await start(name);
    gen(port, 1);
    const c0 = cpuSeconds(child.pid);
    const g = gen(port, Number(o.seconds));
    const c1 = cpuSeconds(child.pid);
    child.kill('SIGTERM');
    await new Promise((res) => child.once('exit', res));
    const row = {
      rate: g.perSecond,
      cores: (c1 - c0) / g.seconds,
      us: ((c1 - c0) / g.completed) * 1e6,
      gen: g.cpu.cores,
      errors: g.errorTotal,
    };
    results[name].push(row);
    process.stderr.write(`round ${r} ${name}: ${JSON.stringify(row)}\n`);
  }
}
const med = (a) => [...a].sort((x, y) => x - y)[Math.floor(a.length / 2)];
console.log(
  `node ${execFileSync(o.node, ['--version'], { encoding: 'utf8' }).trim()} close ${o.close} load ${readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ')}`,
);
// Per-round ratios to the first server (its µs ÷ theirs, and rate ÷ its rate): adjacent runs
// share the machine's load of the moment, so these vary less than the figures themselves.
const first = results[names[0]];
for (const n of names) {
  const rs = results[n];
  const cpuRatio = med(rs.map((x, i) => first[i].us / x.us));
  const rateRatio = med(rs.map((x, i) => x.rate / first[i].rate));
  console.log(
    `${n.padEnd(15)} gen ${med(rs.map((x) => x.gen)).toFixed(2)} rate ${med(rs.map((x) => x.rate))
      .toFixed(0)
      .padStart(
        6,
      )}  cores ${med(rs.map((x) => x.cores)).toFixed(2)}  us/conn ${med(rs.map((x) => x.us)).toFixed(1)}  cpu-ratio ${cpuRatio.toFixed(2)}  rate-ratio ${rateRatio.toFixed(2)}  (${rs.map((x) => x.us.toFixed(1)).join(' ')})`,
  );
}
