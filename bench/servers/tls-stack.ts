// A TLS echo server for the benchmark runner: a certificate made now (openssl; ECDSA P-256 or
// RSA-2048) in a temp dir, then one of: tcpdaemon IOMP -c N (examples/echo.js, or with
// --handler pipe bench/servers/pipe-echo.js, with --tls-cert),
// a plain node `tls` echo server (pipe, or with --for-await the very loop of examples/echo.js; with
// --workers N under node:cluster), or HAProxy terminating TLS (mode tcp, nbthread 1) in front of
// the node:net echo. All: node's/OpenSSL's defaults, so TLS 1.3 with X25519 and the same suite;
// Nagle off in each (tcpdaemon --tcp-nodelay, node's noDelay, HAProxy's own default), else a
// handshake's last flight (the session tickets) and the echo behind it wait for a delayed ACK and
// the handshake rows measure that wait instead of the servers.
// One `listening` line with the TLS port; SIGTERM stops everything and removes the key.
// usage: node --import tsx bench/servers/tls-stack.ts --server tcpdaemon|node-tls|haproxy
//          [--workers N] [--key ecdsa|rsa] [--for-await] [--handler echo|pipe] [--shared]
// --shared (node-tls --workers N): SCHED_NONE, each cluster worker accepts from the shared handle
// itself, as IOMP -c N's workers do (node's default on Linux is round-robin by the primary).
import { execFileSync } from 'node:child_process';
import cluster from 'node:cluster';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { ChildStack, freePort, ROOT } from './child-stack.js';
import { announceListening } from './listen-address.js';
import { nodeTlsEcho } from './node-tls-echo.js';

const { values } = parseArgs({
  options: {
    server: { type: 'string', default: 'tcpdaemon' },
    workers: { type: 'string', default: '1' },
    key: { type: 'string', default: 'ecdsa' },
    'for-await': { type: 'boolean', default: false },
    handler: { type: 'string', default: 'echo' },
    shared: { type: 'boolean', default: false },
  },
});
const stack = new ChildStack('tls-stack');
const { tmp, children } = stack;
const fail: (why: string) => never = (why) => stack.fail(why);

const cert = join(tmp, 'server.crt');
const key = join(tmp, 'server.key');
const keyArgs =
  values.key === 'rsa'
    ? ['-newkey', 'rsa:2048']
    : values.key === 'ecdsa'
      ? ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256']
      : fail(`--key ecdsa|rsa, not ${values.key}`);
execFileSync(
  'openssl',
  [
    'req',
    '-x509',
    ...keyArgs,
    '-nodes',
    '-keyout',
    key,
    '-out',
    cert,
    '-days',
    '2',
    '-subj',
    '/CN=bench.test',
    '-addext',
    'subjectAltName=DNS:bench.test',
  ],
  { stdio: 'ignore' },
);

async function start(): Promise<number> {
  if (values.server === 'tcpdaemon') {
    const handler = { echo: 'examples/echo.js', pipe: 'bench/servers/pipe-echo.js' }[values.handler!];
    if (handler === undefined) fail(`--handler ${values.handler}: echo or pipe`);
    return stack.started([
      'bin/tcpdaemon',
      '-m',
      'IOMP',
      '-c',
      values.workers!,
      '-l',
      '127.0.0.1:0',
      '-s',
      handler,
      '--tls-cert',
      cert,
      '--tls-key',
      key,
      '--tcp-nodelay',
    ]);
  }
  if (values.server === 'node-tls') {
    const forAwait = values['for-await'] === true;
    const workers = Number(values.workers);
    if (workers > 1) return nodeTlsCluster(workers, forAwait);
    // In this process: the reference, node's tls server.
    const server = nodeTlsEcho(readFileSync(cert), readFileSync(key), forAwait);
    return new Promise((res) =>
      server.listen(0, '127.0.0.1', () => res((server.address() as { port: number }).port)),
    );
  }
  if (values.server === 'haproxy') {
    const backend = await stack.started([
      process.execPath,
      '--import',
      'tsx',
      'bench/servers/plain-echo.ts',
      '127.0.0.1:0',
    ]);
    const pem = join(tmp, 'haproxy.pem');
    writeFileSync(pem, readFileSync(cert, 'utf8') + readFileSync(key, 'utf8'), { mode: 0o600 });
    const port = await freePort();
    const cfg = join(tmp, 'haproxy.cfg');
    writeFileSync(
      cfg,
      [
        'global',
        '  nbthread 1',
        '  maxconn 4096',
        'defaults',
        '  mode tcp',
        '  timeout connect 5s',
        '  timeout client 60s',
        '  timeout server 60s',
        'frontend fe',
        `  bind 127.0.0.1:${port} ssl crt ${pem}`,
        '  default_backend be',
        'backend be',
        `  server s1 127.0.0.1:${backend}`,
        '',
      ].join('\n'),
    );
    stack.run(['haproxy', '-db', '-f', cfg]);
    await stack.untilAccepting(port);
    return port;
  }
  fail(`unknown --server ${values.server}`);
}

/** node:cluster with `workers` workers (tls-cluster-worker.ts) on a port chosen here. */
async function nodeTlsCluster(workers: number, forAwait: boolean): Promise<number> {
  const port = await freePort();
  if (values.shared) cluster.schedulingPolicy = cluster.SCHED_NONE;
  cluster.setupPrimary({ exec: join(ROOT, 'bench/servers/tls-cluster-worker.ts') });
  let listening = 0;
  const all = new Promise<void>((res) =>
    cluster.on('listening', () => {
      if (++listening === workers) res();
    }),
  );
  cluster.on('exit', (w, code, sig) => fail(`cluster worker ${w.process.pid} exited (${sig ?? code})`));
  for (let i = 0; i < workers; i++) {
    const env = { TLS_STACK_CERT: cert, TLS_STACK_KEY: key, TLS_STACK_PORT: String(port) };
    children.push(cluster.fork({ ...env, TLS_STACK_FOR_AWAIT: forAwait ? '1' : '' }).process);
  }
  await all;
  return port;
}

const port = await start();
announceListening({ address: '127.0.0.1', family: 'IPv4', port }, { server: values.server, key: values.key });
