// Stress for "a live reload fails no connection": starts bin/tcpdaemon with --config, runs a
// connect loop against it, and sends SIGHUP (the config's --max-connections flipping between two
// values) many times, waiting for each rolling reload to finish. Prints the failed connections and
// the daemon's warn/error lines. Not a test (it runs for minutes); run it by hand:
//   node --import tsx scripts/reload-stress.ts [-m IOMP] [-c 2] [--reloads 30] [--loops 1]
//     [--max 2,4] [--reuse-port] [--hog] [--steady SECONDS] [-- more daemon flags]
// --hog keeps one other core busy (a `node -e 'for(;;);'` child, killed at the end).
// bin/tcpdaemon runs with the `node` on PATH: put another runtime first on PATH to test it.
import { spawn } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { FIXTURES, startDaemon } from '../test/helpers/daemon.js';
import { startLoadLoop } from '../test/helpers/net.js';

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    m: { type: 'string', default: 'IOMP' },
    c: { type: 'string', default: '2' },
    reloads: { type: 'string', default: '30' },
    loops: { type: 'string', default: '1' },
    max: { type: 'string', default: '2,4' },
    'reuse-port': { type: 'boolean', default: false },
    hog: { type: 'boolean', default: false },
    /** Instead of reloading: run the loop this long without SIGHUP (the same load, for comparison). */
    steady: { type: 'string', default: '0' },
  },
});

const maxes = values.max.split(',').map(Number);
const dir = mkdtempSync(join(tmpdir(), 'tcpd-stress-'));
const file = join(dir, 'config.json');
const handler = join(FIXTURES, 'worker-echo.mjs');
const write = (maxConnections: number) => writeFileSync(file, JSON.stringify({ maxConnections, handler }));
write(maxes[0]!);

const hog = values.hog ? spawn(process.execPath, ['-e', 'for(;;);'], { stdio: 'ignore' }) : undefined;
const args = ['--config', file, '-m', values.m, '-c', values.c, '-l', '127.0.0.1:0'];
if (values['reuse-port']) args.push('--reuse-port');
args.push(...positionals); // after --: more daemon flags
const { daemon, port } = await startDaemon(args);
// IOMP -c 1 reloads in its own process: its 'config reloaded' line is the end of it.
const inProcess = values.m === 'IOMP' && values.c === '1';
const isDone = (l: { msg?: unknown }) => l.msg === (inProcess ? 'config reloaded' : 'reload done');
const load = startLoadLoop(port, { loops: Number(values.loops), maxMs: 3_600_000 });
const started = Date.now();
let lastFailed = 0;
try {
  const steadyMs = Number(values.steady) * 1000;
  if (steadyMs > 0) await new Promise((r) => setTimeout(r, steadyMs));
  for (let i = 0; steadyMs === 0 && i < Number(values.reloads); i++) {
    const before = load.stats.ok;
    while (load.stats.ok < before + 20) await new Promise((r) => setTimeout(r, 5));
    const seen = daemon.logs.filter(isDone).length;
    write(maxes[(i + 1) % maxes.length]!);
    daemon.signal('SIGHUP');
    const deadline = Date.now() + 60_000;
    while (daemon.logs.filter(isDone).length <= seen) {
      if (Date.now() > deadline) throw new Error(`reload ${i + 1}: not done within 60 s`);
      await new Promise((r) => setTimeout(r, 5));
    }
    if (load.stats.failed !== lastFailed) {
      console.log(`reload ${i + 1}: ${load.stats.failed - lastFailed} failed connection(s)`);
      lastFailed = load.stats.failed;
    }
  }
  const after = load.stats.ok;
  while (load.stats.ok < after + 20) await new Promise((r) => setTimeout(r, 5));
} finally {
  const stats = await load.stop();
  daemon.signal('SIGTERM');
  await daemon.waitForExit(30_000).catch(() => daemon.kill());
  hog?.kill('SIGKILL');
  const loud = (l: { level?: unknown }) =>
    ['warn', 'error', 'fatal'].includes(String(l.level)) || Number(l.level) >= 40;
  const notable = daemon.logs.filter((l) => loud(l) || /refused|reset/.test(String(l.msg)));
  for (const l of notable) console.log(JSON.stringify(l));
  if (daemon.stderr) {
    writeFileSync(join(dir, 'stderr.txt'), daemon.stderr);
    console.log(`daemon stderr: ${join(dir, 'stderr.txt')}`);
  }
  console.log(
    JSON.stringify({
      node: process.version,
      model: values.m,
      workers: Number(values.c),
      reusePort: values['reuse-port'],
      hog: values.hog,
      reloads: Number(values.reloads),
      ok: stats.ok,
      failed: stats.failed,
      errors: stats.errors,
      seconds: Math.round((Date.now() - started) / 1000),
    }),
  );
}
