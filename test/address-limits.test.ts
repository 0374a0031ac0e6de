// Per-client-address limits: --max-conns-per-ip (open connections) and --max-conn-rate-per-ip (new
// connections per second), counted where connections are accepted, across all workers, in every
// model and in the proxy and the gateway. Clients use 127.0.0.2 as a second source address
// (loopback has all of 127/8 on Linux).
import assert from 'node:assert/strict';
import { connect as netConnect, type Socket } from 'node:net';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { AddressLimiter, addressKey } from '../src/address-limits.js';
import { GATEWAY_COMMAND, type GatewayParams, validateGatewayParams } from '../src/gateway/params.js';
import { DAEMON_COMMAND, validateParams } from '../src/params.js';
import { parseCommandLine } from '../src/platform/command-line.js';
import type { CommandSpec } from '../src/platform/fields.js';
import { renderUsage } from '../src/platform/usage.js';
import { PROXY_COMMAND, validateProxyConfig } from '../src/proxy/config.js';
import { type DaemonProcess, FIXTURES, type LogLine, runCli, startDaemon } from './helpers/daemon.js';
import { gatewayArgs, gatewayClient } from './helpers/gateway.js';
import { checkNoLeftoverProcesses } from './helpers/leftovers.js';
import { taggedEcho } from './helpers/proxy.js';
import { socketPath, status } from './helpers/status.js';

after(checkNoLeftoverProcesses);

const WHO = join(FIXTURES, 'worker-echo.mjs');
const CONNS_MSG = 'connection refused: --max-conns-per-ip reached';
const RATE_MSG = 'connection refused: --max-conn-rate-per-ip reached';

describe('AddressLimiter', () => {
  test('open connections per address: the limit+1th is refused until one closes; other addresses are not affected', () => {
    const l = new AddressLimiter({ maxConnsPerIp: 2, maxConnRatePerIp: 0 });
    assert.equal(l.admit('10.0.0.1'), 'counted');
    assert.equal(l.admit('10.0.0.1'), 'counted');
    assert.equal(l.admit('10.0.0.1'), 'connections');
    assert.equal(l.admit('10.0.0.2'), 'counted');
    l.release('10.0.0.1');
    assert.equal(l.admit('10.0.0.1'), 'counted');
    assert.equal(l.openFrom('10.0.0.1'), 2);
  });

  test('IPv4-mapped IPv6 counts as the IPv4 address', () => {
    assert.equal(addressKey('::ffff:127.0.0.1'), '127.0.0.1');
    assert.equal(addressKey('::1'), '::1');
    const l = new AddressLimiter({ maxConnsPerIp: 1, maxConnRatePerIp: 0 });
    assert.equal(l.admit('127.0.0.1'), 'counted');
    assert.equal(l.admit('::ffff:127.0.0.1'), 'connections');
    l.release('::ffff:127.0.0.1');
    assert.equal(l.size.open, 0, 'released under either spelling');
  });

  test('rate per address: a burst of one second, then the rate; a refusal costs no token', () => {
    let now = 1_000_000;
    const l = new AddressLimiter({ maxConnsPerIp: 0, maxConnRatePerIp: 5 }, { now: () => now });
    for (let i = 0; i < 5; i++) assert.equal(l.admit('a'), 'free', `burst ${i}`);
    assert.equal(l.admit('a'), 'rate');
    assert.equal(l.admit('b'), 'free', 'another address has its own bucket');
    now += 200; // one token back
    assert.equal(l.admit('a'), 'free');
    assert.equal(l.admit('a'), 'rate');
    now += 10_000;
    for (let i = 0; i < 5; i++) assert.equal(l.admit('a'), 'free', 'never more than a second worth');
    assert.equal(l.admit('a'), 'rate');
  });

  test('a rate below 1 per second still lets one connection through, then one per 1/rate seconds', () => {
    let now = 0;
    const l = new AddressLimiter({ maxConnsPerIp: 0, maxConnRatePerIp: 0.5 }, { now: () => now });
    assert.equal(l.admit('a'), 'free');
    assert.equal(l.admit('a'), 'rate');
    now += 1999;
    assert.equal(l.admit('a'), 'rate');
    now += 1;
    assert.equal(l.admit('a'), 'free');
  });

  test('a refused connection is not counted as open; both limits at once', () => {
    const l = new AddressLimiter({ maxConnsPerIp: 10, maxConnRatePerIp: 1 }, { now: () => 0 });
    assert.equal(l.admit('a'), 'counted');
    assert.equal(l.admit('a'), 'rate');
    assert.equal(l.openFrom('a'), 1);
  });

  test('memory: open counts leave at 0, buckets once full again, and each table stays under its cap', () => {
    let now = 0;
    const full: string[] = [];
    const l = new AddressLimiter(
      { maxConnsPerIp: 3, maxConnRatePerIp: 100 },
      { now: () => now, maxTracked: 100, onFull: (t) => full.push(t) },
    );
    assert.equal(l.admit('kept'), 'counted');
    for (let i = 0; i < 50; i++) {
      const a = `10.1.0.${i}`;
      assert.equal(l.admit(a), 'counted');
      l.release(a);
    }
    assert.deepEqual(l.size, { open: 1, rate: 51 }, 'closed addresses leave the open table at once');
    now += 1000; // every bucket is full again (100 per second, burst 100)
    l.admit('busy');
    l.release('busy');
    assert.deepEqual(l.size, { open: 1, rate: 1 }, 'expired buckets leave');
    assert.equal(l.openFrom('kept'), 1);
    // More addresses at once than the cap: the oldest buckets go, new addresses go uncounted.
    for (let i = 0; i < 150; i++) l.admit(`10.2.0.${i}`);
    assert.ok(l.size.open <= 100 && l.size.rate <= 100, JSON.stringify(l.size));
    assert.equal(l.admit('10.3.0.1'), 'free', 'the open table is full: served, not counted');
    assert.ok(full.includes('open') && full.includes('rate'));
  });
});

test('the daemon, the proxy and the gateway take both flags, with the same keys, and list them in their help', () => {
  const limits = ['--max-conns-per-ip', '3', '--max-conn-rate-per-ip', '2.5'];
  const read = (spec: CommandSpec, args: string[]) => {
    const line = parseCommandLine(spec, ['-l', '127.0.0.1:0', ...args, ...limits]);
    assert.equal(line.kind, 'run', spec.name);
    const help = renderUsage(spec);
    assert.match(help, /--max-conns-per-ip N/, spec.name);
    assert.match(help, /--max-conn-rate-per-ip N/, spec.name);
    return (line as { input: Record<string, unknown> }).input;
  };
  const want = { maxConnsPerIp: 3, maxConnRatePerIp: 2.5 };
  const d = validateParams(read(DAEMON_COMMAND, ['-s', WHO]));
  assert.deepEqual({ maxConnsPerIp: d.maxConnsPerIp, maxConnRatePerIp: d.maxConnRatePerIp }, want);
  const p = validateProxyConfig(read(PROXY_COMMAND, ['--backend', '127.0.0.1:1'])).daemon;
  assert.deepEqual({ maxConnsPerIp: p.maxConnsPerIp, maxConnRatePerIp: p.maxConnRatePerIp }, want);
  const g = validateGatewayParams(
    read(GATEWAY_COMMAND, ['-s', join(FIXTURES, 'gateway-business.ts')]) as GatewayParams,
    'gateway',
  );
  assert.deepEqual({ maxConnsPerIp: g.maxConnsPerIp, maxConnRatePerIp: g.maxConnRatePerIp }, want);
});

interface Visit {
  outcome: 'served' | 'refused';
  /** What the server said first (served). */
  first: string;
  socket: Socket;
}

/** Connects from `from` and says `hello`: served when anything comes back, refused when it closes with nothing. */
function visit(port: number, from: string, hello = 'who\n', host = '127.0.0.1'): Promise<Visit> {
  const socket = netConnect({ port, host, localAddress: from });
  socket.on('error', () => undefined); // a refused connection may be reset
  socket.setEncoding('utf8');
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no answer and no close within 10 s (${from})`)), 10_000);
    const onClose = () => {
      clearTimeout(timer);
      resolve({ outcome: 'refused', first: '', socket });
    };
    socket.once('data', (d: string) => {
      clearTimeout(timer);
      socket.off('close', onClose);
      resolve({ outcome: 'served', first: d, socket });
    });
    socket.once('close', onClose);
    socket.once('connect', () => socket.write(hello));
  });
}

async function closeVisit(v: Visit): Promise<void> {
  if (v.socket.destroyed) return;
  const closed = new Promise((r) => v.socket.once('close', r));
  v.socket.end();
  await closed;
}

/** Visits from `from` until one is served (a release reaches the daemon a moment after the close). */
async function servedAgain(port: number, from: string, timeoutMs = 15_000): Promise<Visit> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await visit(port, from);
    if (v.outcome === 'served') return v;
    if (Date.now() > deadline) throw new Error(`no connection from ${from} served within ${timeoutMs} ms`);
    await sleep(100);
  }
}

/** The refusal lines: the first written at once, the rest counted into summaries (PeerLog). */
async function assertLoggedOncePerWindow(daemon: DaemonProcess, msg: string, remote: string): Promise<void> {
  const summary = await daemon.waitForLog((l) => l.msg === msg && typeof l.suppressed === 'number');
  assert.equal(summary.remote, remote);
  const firsts = daemon.logs.filter((l: LogLine) => l.msg === msg && l.suppressed === undefined);
  assert.equal(firsts.length, 1, `one line for the window, got ${JSON.stringify(firsts)}`);
  assert.equal(firsts[0]!.remote, remote);
  assert.equal(firsts[0]!.level, 'warn');
}

interface Case {
  name: string;
  args: (...limit: string[]) => string[];
  /** A test server behind (proxy): its flags, and how to stop it. */
  setup?: () => Promise<{ args: string[]; close(): Promise<void> }>;
}

const daemonCase = (name: string, model: string, workers: number): Case => ({
  name,
  args: (...limit) => ['-m', model, '-c', String(workers), '-l', '127.0.0.1:0', '-s', WHO, ...limit],
});

const CASES: Case[] = [
  daemonCase('IOMP -c 1', 'IOMP', 1),
  daemonCase('IOMP -c 2', 'IOMP', 2),
  // LF and IF serve one connection per process: room for the held ones and the second address.
  daemonCase('LF -c 4', 'LF', 4),
  daemonCase('IF -c 4', 'IF', 4),
  daemonCase('TLF -c 2', 'TLF', 2),
  {
    // Its front is a daemon with a forwarding handler: IOMP -c 2 re-runs the proxy in each worker.
    name: 'proxy -c 2',
    args: (...limit) => ['proxy', '-l', '127.0.0.1:0', '-c', '2', ...limit],
    setup: async () => {
      const backend = await taggedEcho('backend');
      return { args: ['--backend', `127.0.0.1:${backend.port}`], close: () => backend.close() };
    },
  },
];

async function withCase(
  c: Case,
  limit: string[],
  body: (d: { daemon: DaemonProcess; port: number }) => Promise<void>,
): Promise<void> {
  const extra = c.setup ? await c.setup() : undefined;
  const args = [...c.args(...limit), ...(extra?.args ?? [])];
  const started = await startDaemon(args);
  try {
    await body(started);
  } finally {
    await started.daemon.kill();
    await extra?.close();
  }
}

describe('--max-conns-per-ip: the limit+1th connection from one address is refused, across all workers', () => {
  for (const c of CASES) {
    test(c.name, async () => {
      const statusSocket = socketPath();
      await withCase(
        c,
        ['--max-conns-per-ip', '2', '--status-socket', statusSocket],
        async ({ daemon, port }) => {
          const held = [await visit(port, '127.0.0.1'), await visit(port, '127.0.0.1')];
          for (const h of held) assert.equal(h.outcome, 'served');
          // More from the same address: refused whichever worker accepts them.
          for (let i = 0; i < 4; i++) {
            const v = await visit(port, '127.0.0.1');
            assert.equal(v.outcome, 'refused', `attempt ${i + 3} from 127.0.0.1`);
          }
          // Another address is served meanwhile.
          const other = await visit(port, '127.0.0.2');
          assert.equal(other.outcome, 'served', '127.0.0.2 has its own count');
          await assertLoggedOncePerWindow(daemon, CONNS_MSG, '127.0.0.1');
          const report = await status(statusSocket);
          const section = report.sections?.find((s) => s.title === 'address limits');
          assert.ok(section, JSON.stringify(report.sections));
          assert.equal((section.data as { refused: { connections: number } }).refused.connections, 4);
          // A closed connection frees its place.
          await closeVisit(held[0]!);
          const again = await servedAgain(port, '127.0.0.1');
          for (const v of [held[1]!, other, again]) await closeVisit(v);
        },
      );
    });
  }
});

describe('--max-conn-rate-per-ip: new connections per second from one address', () => {
  for (const c of CASES) {
    test(c.name, async () => {
      // 0.25 per second: a burst of 1, then one every 4 s.
      await withCase(c, ['--max-conn-rate-per-ip', '0.25'], async ({ daemon, port }) => {
        const first = await visit(port, '127.0.0.1');
        assert.equal(first.outcome, 'served');
        await closeVisit(first);
        const second = await visit(port, '127.0.0.1');
        assert.equal(second.outcome, 'refused', 'the second within 4 s is refused, though the first closed');
        const other = await visit(port, '127.0.0.2');
        assert.equal(other.outcome, 'served', '127.0.0.2 has its own bucket');
        const line = await daemon.waitForMsg(RATE_MSG);
        assert.equal(line.remote, '127.0.0.1');
        assert.equal(line.max, 0.25);
        // Once the bucket refilled, the address is served again.
        const later = await servedAgain(port, '127.0.0.1');
        await closeVisit(later);
        await closeVisit(other);
      });
    });
  }
});

test('a dual-stack listener counts an IPv4 client by its IPv4 address (not ::ffff:)', async () => {
  const { daemon, port } = await startDaemon(['-l', '[::]:0', '-s', WHO, '--max-conns-per-ip', '1']);
  try {
    const a = await visit(port, '127.0.0.1');
    assert.equal(a.outcome, 'served');
    assert.equal((await visit(port, '127.0.0.1')).outcome, 'refused');
    const line = await daemon.waitForMsg(CONNS_MSG);
    assert.equal(line.remote, '127.0.0.1');
    await closeVisit(a);
  } finally {
    await daemon.kill();
  }
});

test('the gateway: --max-conn-rate-per-ip refuses with a notice and a logged reason', async () => {
  const { daemon, port } = await startDaemon(gatewayArgs('--max-conn-rate-per-ip', '0.5'));
  try {
    const a = await gatewayClient(port);
    const b = await gatewayClient(port);
    try {
      const [notice] = await b.waitPushed(1);
      assert.match(notice!.body, /too many new connections from 127\.0\.0\.1 \(limit 0\.5 per second\)/);
      const logged = await daemon.waitForMsg('client connection refused');
      assert.match(String(logged.reason), /too many new connections from 127\.0\.0\.1/);
      assert.equal((await a.client.request(1, 'still')).toString(), 'still', 'the first is served');
    } finally {
      await Promise.all([a.close(), b.close()]);
    }
  } finally {
    await daemon.kill();
  }
});

test('a per-address limit on a unix socket is refused before listening, naming the flag', async () => {
  const res = await runCli(['-l', socketPath(), '-s', WHO, '--max-conns-per-ip', '2']);
  assert.equal(res.code, 1);
  assert.match(res.stderr, /maxConnsPerIp \(--max-conns-per-ip\) needs a TCP listen address/);
});

test('tcpdaemon worker refuses the per-address limits (it accepts no connections)', async () => {
  const res = await runCli([
    'worker',
    '-s',
    join(FIXTURES, 'gateway-business.ts'),
    '--queue',
    'nats://127.0.0.1:1',
    '--max-conn-rate-per-ip',
    '5',
  ]);
  assert.equal(res.code, 1);
  assert.match(res.stderr, /tcpdaemon worker takes no --max-conns-per-ip or --max-conn-rate-per-ip/);
});
