// The gateway over NATS for the benchmark: a nats-server of its own (free port, JetStream in a
// temp dir), `tcpdaemon worker` with 2 workers and `tcpdaemon gateway`, as three process trees.
// Prints the gateway's lines (its "listening" line included); SIGTERM/SIGINT stop all three.
//   node --import tsx bench/servers/gateway-nats.ts 127.0.0.1:0
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const listen = process.argv[2] ?? '127.0.0.1:0';
const dir = mkdtempSync(join(tmpdir(), 'tcpdaemon-bench-nats-'));
const children: ChildProcess[] = [];
// On any exit, a failed start's included: nothing of the three and no JetStream data left behind.
process.on('exit', () => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  rmSync(dir, { recursive: true, force: true });
});

const port = await new Promise<number>((resolve) => {
  const s = createServer().listen(0, '127.0.0.1', () => {
    const p = (s.address() as { port: number }).port;
    s.close(() => resolve(p));
  });
});
const nats = spawn('nats-server', ['-a', '127.0.0.1', '-p', String(port), '-js', '-sd', dir], {
  stdio: ['ignore', 'ignore', 'pipe'],
});
children.push(nats);
await new Promise<void>((resolve, reject) => {
  let err = '';
  nats.stderr!.setEncoding('utf8').on('data', (d: string) => {
    err += d;
    if (err.includes('Server is ready')) resolve();
  });
  nats.once('exit', () => reject(new Error(`nats-server exited:\n${err}`)));
});
const queue = ['--queue', `nats://127.0.0.1:${port}`];
const workers = spawn('bin/tcpdaemon', ['worker', '-s', 'examples/gateway-echo.ts', '-c', '2', ...queue], {
  stdio: ['ignore', 'pipe', 'inherit'],
});
children.push(workers);
await new Promise<void>((resolve, reject) => {
  let out = '';
  const onData = (d: string) => {
    out += d;
    if (out.includes('"msg":"workers ready"')) {
      workers.stdout!.off('data', onData).resume();
      resolve();
    }
  };
  workers.stdout!.setEncoding('utf8').on('data', onData);
  workers.once('exit', (code) => reject(new Error(`tcpdaemon worker exited (${code}):\n${out}`)));
});
const gateway = spawn('bin/tcpdaemon', ['gateway', '-l', listen, '--codec', 'lars', ...queue], {
  stdio: ['ignore', 'inherit', 'inherit'],
});
children.push(gateway);

/** SIGTERM to each, the gateway first; SIGKILL to what is left after 3 s; exit once all are gone. */
function stop(): void {
  const alive = children.filter((c) => c.exitCode === null && c.signalCode === null);
  const gone = Promise.all(alive.map((c) => new Promise((res) => c.once('exit', res))));
  for (const c of [...alive].reverse()) c.kill('SIGTERM');
  const timer = setTimeout(() => {
    for (const c of alive) c.kill('SIGKILL');
  }, 3000);
  void gone.then(() => {
    clearTimeout(timer);
    process.exit(0);
  });
}
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
