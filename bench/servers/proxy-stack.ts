// A backend with a front in front of it, as one "server" for the benchmark runner: the
// backend (node echo, or redis-server) on a free port, then the front (ours, HAProxy, the
// minimal node proxy of bench/servers/minimal-proxy.ts, or none), and one `listening` line
// with the front's address. Every front forwards in TCP mode with one process/thread, after a
// second of warm-up traffic; SIGTERM stops everything.
// usage: node --import tsx bench/servers/proxy-stack.ts --backend echo|redis
//          --front none|tcpdaemon|haproxy|node-minimal
//          [--strategy NAME] [--backends N] [--slow-ms MS]   (N echo backends, the first answering MS late)
import { writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { ChildStack, freePort } from './child-stack.js';
import { announceListening } from './listen-address.js';

const { values } = parseArgs({
  options: {
    backend: { type: 'string', default: 'echo' },
    front: { type: 'string', default: 'tcpdaemon' },
    strategy: { type: 'string' },
    backends: { type: 'string', default: '1' },
    'slow-ms': { type: 'string', default: '0' },
  },
});
const backendCount = Number(values.backends);
const slowMs = Number(values['slow-ms']);
const stack = new ChildStack('proxy-stack');
const { tmp } = stack;
const fail: (why: string) => never = (why) => stack.fail(why);

/** Echo backends; with --slow-ms, the first one answers each chunk that much later. */
function startEchoBackends(): Promise<number[]> {
  return Promise.all(
    Array.from({ length: backendCount }, (_, i) => {
      const argv =
        i === 0 && slowMs > 0
          ? [process.execPath, '--import', 'tsx', 'bench/servers/slow-echo.ts', '127.0.0.1:0', String(slowMs)]
          : [process.execPath, '--import', 'tsx', 'bench/servers/plain-echo.ts', '127.0.0.1:0'];
      return stack.started(argv);
    }),
  );
}

async function startBackends(): Promise<number[]> {
  if (values.backend === 'redis') {
    const port = await freePort();
    const redis = ['redis-server', '--port', String(port), '--bind', '127.0.0.1'];
    stack.run([...redis, '--save', '', '--appendonly', 'no']);
    await stack.untilAccepting(port);
    return [port];
  }
  return startEchoBackends();
}

async function startFront(backendPorts: number[]): Promise<number> {
  if (values.front === 'none') {
    if (backendPorts.length !== 1) fail('--front none takes one backend');
    return backendPorts[0]!;
  }
  if (values.front === 'haproxy') {
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
        `  bind 127.0.0.1:${port}`,
        '  default_backend be',
        'backend be',
        // `check inter 2s`: connect checks every 2 s, as our front does by default
        ...backendPorts.map((p, i) => `  server s${i + 1} 127.0.0.1:${p} check inter 2s`),
        '',
      ].join('\n'),
    );
    stack.run(['haproxy', '-db', '-f', cfg]);
    await stack.untilAccepting(port);
    return port;
  }
  if (values.front === 'node-minimal') {
    if (backendPorts.length !== 1) fail('--front node-minimal takes one backend');
    const argv = [process.execPath, '--import', 'tsx', 'bench/servers/minimal-proxy.ts'];
    return stack.started([...argv, '127.0.0.1:0', `127.0.0.1:${backendPorts[0]}`]);
  }
  if (values.front !== 'tcpdaemon') fail(`unknown --front ${values.front}`);
  // The same timeouts as HAProxy's defaults above: 5 s to connect, 60 s idle (our --timeout
  // covers the client socket, which sees the traffic of both directions).
  const args = ['-l', '127.0.0.1:0', '--connect-timeout', '5', '--timeout', '60'];
  args.push(...backendPorts.flatMap((p) => ['--backend', `127.0.0.1:${p}`]));
  if (values.strategy) args.push('--strategy', values.strategy);
  return stack.started(['bin/tcpdaemon', 'proxy', ...args]);
}

/**
 * Traffic through the front before it is measured, the same for every front: JIT-compiled
 * code (the node fronts) and warm caches (all) are what a running proxy has; the runs are seconds long.
 */
async function warmUp(port: number, ms: number): Promise<void> {
  const [send, reply] = values.backend === 'redis' ? ['PING\r\n', '+PONG\r\n'] : ['warm-up\n', 'warm-up\n'];
  const until = Date.now() + ms;
  const loop = async () => {
    while (Date.now() < until) {
      await new Promise<void>((res) => {
        const s = connect(port, '127.0.0.1');
        let got = 0;
        s.on('connect', () => s.write(send));
        s.on('data', (d: Buffer) => {
          got += d.length;
          if (got >= reply.length) s.end();
        });
        s.on('close', () => res());
        s.on('error', () => undefined);
      });
    }
  };
  await Promise.all(Array.from({ length: 8 }, loop));
}

const port = await startFront(await startBackends());
if (values.front !== 'none') await warmUp(port, 1000);
announceListening(
  { address: '127.0.0.1', family: 'IPv4', port },
  { front: values.front, backend: values.backend },
);
