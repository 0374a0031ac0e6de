// node:cluster echo server: N worker processes share one listening handle (round-robin by
// the primary, node's default on Linux). Reference point for tcpdaemon's multi-worker models.
// usage: node --import tsx bench/servers/cluster-echo.ts [HOST:PORT] [--workers N] [--for-await] [--shared]   (default 2)
// --for-await echoes with the loop of examples/echo.js (what tcpdaemon's workers run); default pipe.
// --shared: SCHED_NONE, every worker accepts from the one shared handle itself (no round-robin).
// The primary prints one `listening` line once every worker listens; SIGTERM or SIGINT
// stops the workers and the primary.
import cluster from 'node:cluster';
import { createServer } from 'node:net';
import { parseArgs } from 'node:util';
import { announceListening, listenAddress } from './listen-address.js';

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    workers: { type: 'string', default: '2' },
    'for-await': { type: 'boolean', default: false },
    shared: { type: 'boolean', default: false },
  },
});
const workers = Number(values.workers);
if (!Number.isInteger(workers) || workers < 1 || workers > 64) {
  process.stderr.write(`--workers must be 1..64, not '${values.workers}'\n`);
  process.exit(1);
}
const { host, port } = listenAddress(positionals[0]);

if (cluster.isPrimary) {
  if (values.shared) cluster.schedulingPolicy = cluster.SCHED_NONE;
  let listening = 0;
  let stopping = false;
  let exitCode = 0;
  cluster.on('listening', (_worker, address) => {
    listening += 1;
    if (listening === workers) {
      const family = address.addressType === 6 ? 'IPv6' : 'IPv4';
      announceListening({ address: address.address ?? host, port: address.port, family }, { workers });
    }
  });
  cluster.on('exit', (worker, code, signal) => {
    if (stopping) {
      if (Object.keys(cluster.workers ?? {}).length === 0) process.exit(exitCode);
      return;
    }
    process.stderr.write(`worker ${worker.process.pid} died (${signal ?? code}); stopping\n`);
    stop(1);
  });
  for (let i = 0; i < workers; i++) cluster.fork();
  // Stops the workers and exits once they are gone (so none is left unreaped).
  const stop = (code: number) => {
    stopping = true;
    exitCode = code;
    for (const w of Object.values(cluster.workers ?? {})) w?.process.kill('SIGTERM');
    setTimeout(() => process.exit(code), 3000).unref();
    if (Object.keys(cluster.workers ?? {}).length === 0) process.exit(code);
  };
  for (const sig of ['SIGTERM', 'SIGINT'] as const) process.on(sig, () => stop(0));
} else {
  let served = 0;
  const server = createServer((socket) => {
    served++;
    socket.on('error', () => socket.destroy());
    if (!values['for-await']) {
      socket.pipe(socket);
      return;
    }
    (async () => {
      for await (const chunk of socket) socket.write(chunk);
    })().catch(() => socket.destroy());
  });
  server.listen({ host, port, backlog: 4096 }, () => undefined);
  // The spread per worker, in the line tcpdaemon's supervisor writes for its workers.
  process.on('SIGTERM', () => {
    process.stdout.write(`${JSON.stringify({ msg: 'worker exited', served })}\n`, () => process.exit(0));
  });
}
