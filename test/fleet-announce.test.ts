// --announce: the daemon, the proxy and the gateway publish their listener in the route table (a
// JetStream key-value bucket on a real nats-server), refresh it, withdraw it before draining, and a
// killed process's entry expires within its TTL.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { type KV, Kvm } from '@nats-io/kv';
import { type NatsConnection, connect as natsConnect } from '@nats-io/transport-node';
import { parseRouteEntry, ROUTES_BUCKET, type RouteEntry, routeKey } from '../src/fleet/route.js';
import { EXAMPLES, runCli, startDaemon } from './helpers/daemon.js';
import { BUSINESS, type NatsServer, startNats } from './helpers/gateway.js';
import { checkNoLeftoverProcesses } from './helpers/leftovers.js';
import { connect, roundTrip } from './helpers/net.js';
import { deadPort } from './helpers/proxy.js';

const ECHO = `${EXAMPLES}/echo.js`;

let nats: NatsServer;
let nc: NatsConnection;
let kv: KV;

before(async () => {
  nats = await startNats();
  nc = await natsConnect({ servers: nats.url });
  kv = await new Kvm(nc).create(ROUTES_BUCKET, { history: 1, ttl: 2000 });
});
after(async () => {
  await nc?.close();
  await nats?.stop();
  checkNoLeftoverProcesses();
});

async function entry(key: string): Promise<RouteEntry | undefined> {
  const e = await kv.get(key);
  if (e === null || e.operation !== 'PUT') return undefined;
  return parseRouteEntry(e.value);
}

/** Resolves once `key` has been written `times` more times (the announcer's refreshes). */
async function refreshes(key: string, times: number): Promise<RouteEntry> {
  const watch = await kv.watch({ key, include: 'updates' as never });
  let seen = 0;
  try {
    for await (const e of watch) {
      if (e.operation === 'PUT' && ++seen >= times) return parseRouteEntry(e.value)!;
    }
  } finally {
    watch.stop();
  }
  throw new Error('watch ended');
}

/** Polls until the key is gone (deleted, purged or expired); fails after `limitMs`. */
async function gone(key: string, limitMs: number): Promise<number> {
  const start = Date.now();
  while (Date.now() - start < limitMs) {
    if ((await entry(key)) === undefined) return Date.now() - start;
    await new Promise((r) => setTimeout(r, 100));
  }
  assert.fail(`${key} still in the route table after ${limitMs} ms`);
}

const announce = (service: string, ttl = '2') => [
  '--announce',
  service,
  '--discovery',
  nats.url,
  '--announce-ttl',
  ttl,
];

describe('--announce', () => {
  test('the daemon publishes its address, refreshes it past the TTL, and withdraws it before draining on SIGTERM', async () => {
    const { daemon, port } = await startDaemon([
      '-m',
      'IOMP',
      '-c',
      '2',
      '-l',
      '127.0.0.1:0',
      '-s',
      ECHO,
      ...announce('echo'),
      '--announce-weight',
      '3',
      '--announce-version',
      '1.2.3',
    ]);
    try {
      const key = routeKey('echo', `127.0.0.1:${port}`);
      await daemon.waitForMsg('announced');
      const first = await entry(key);
      assert.ok(first, 'the entry is in the route table');
      assert.equal(first.address, `127.0.0.1:${port}`);
      assert.equal(first.service, 'echo');
      assert.equal(first.weight, 3);
      assert.equal(first.version, '1.2.3');
      assert.equal(first.tls, false);
      assert.equal(first.pid, daemon.pid);
      assert.equal(first.ttlMs, 2000);
      // Three refreshes (every third of 2 s) outlast the bucket's 2 s max age: refreshing keeps it.
      const later = await refreshes(key, 3);
      assert.ok(later.refreshedAt > first.refreshedAt);
      assert.ok(later.refreshedAt - first.refreshedAt >= 1000);
      // What is announced serves.
      const s = await connect(port);
      assert.equal(await roundTrip(s, 'hi\n'), 'hi\n');
      s.destroy();

      daemon.signal('SIGTERM');
      await daemon.waitForMsg('withdrawn');
      assert.deepEqual(await daemon.waitForExit(), { code: 0, signal: null });
      const msgs = daemon.logs.map((l) => l.msg);
      assert.ok(
        msgs.indexOf('withdrawn') < msgs.indexOf('stopping: no new connections'),
        `withdrawn before the drain starts: ${msgs.join(' | ')}`,
      );
      assert.equal(await entry(key), undefined, 'gone from the route table');
    } finally {
      await daemon.kill();
    }
  });

  test('kill -9: the entry expires within the TTL', async () => {
    const { daemon, port } = await startDaemon(['-l', '127.0.0.1:0', '-s', ECHO, ...announce('killed')]);
    const key = routeKey('killed', `127.0.0.1:${port}`);
    await daemon.waitForMsg('announced');
    assert.ok(await entry(key));
    daemon.signal('SIGKILL');
    await daemon.waitForExit();
    // TTL 2 s after the last refresh, which was at most a third of it before the kill; JetStream
    // removes expired messages on its own timer: a generous bound.
    await gone(key, 10_000);
  });

  test('--advertise publishes the address given, and a wildcard listener without it is refused', async () => {
    const { daemon } = await startDaemon([
      '-l',
      '0:0',
      '-s',
      ECHO,
      ...announce('adv'),
      '--advertise',
      '10.1.2.3:7000',
    ]);
    try {
      await daemon.waitForMsg('announced');
      assert.equal((await entry(routeKey('adv', '10.1.2.3:7000')))?.address, '10.1.2.3:7000');
    } finally {
      await daemon.kill();
    }
    const r = await runCli(['-l', '0:0', '-s', ECHO, ...announce('adv')]);
    assert.equal(r.code, 1);
    assert.match(
      r.stderr,
      /announce \(--announce\) publishes the listening address, and 0:0 is not one clients can connect to: give --advertise HOST:PORT/,
    );
  });

  test('the proxy announces its front', async () => {
    const backend = await startDaemon(['-l', '127.0.0.1:0', '-s', ECHO]);
    try {
      const { daemon, port } = await startDaemon([
        'proxy',
        '-l',
        '127.0.0.1:0',
        '--backend',
        `127.0.0.1:${backend.port}`,
        ...announce('via-proxy'),
      ]);
      try {
        await daemon.waitForMsg('announced');
        const e = await entry(routeKey('via-proxy', `127.0.0.1:${port}`));
        assert.equal(e?.address, `127.0.0.1:${port}`);
        daemon.signal('SIGTERM');
        await daemon.waitForMsg('withdrawn');
        await daemon.waitForExit();
        assert.equal(await entry(routeKey('via-proxy', `127.0.0.1:${port}`)), undefined);
      } finally {
        await daemon.kill();
      }
    } finally {
      await backend.daemon.kill();
    }
  });

  test('the gateway announces its listener; tcpdaemon worker refuses --announce', async () => {
    const { daemon, port } = await startDaemon([
      'gateway',
      '-l',
      '127.0.0.1:0',
      '-s',
      BUSINESS,
      ...announce('gw'),
    ]);
    try {
      await daemon.waitForMsg('announced');
      assert.equal((await entry(routeKey('gw', `127.0.0.1:${port}`)))?.address, `127.0.0.1:${port}`);
      daemon.signal('SIGTERM');
      await daemon.waitForMsg('withdrawn');
      await daemon.waitForExit();
      assert.equal(await entry(routeKey('gw', `127.0.0.1:${port}`)), undefined);
    } finally {
      await daemon.kill();
    }
    const r = await runCli(['worker', '-s', BUSINESS, '--queue', nats.url, ...announce('w')]);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /tcpdaemon worker takes no --announce/);
  });

  test('bad settings and an unreachable NATS stop the start with one line', async () => {
    const cases: [string[], RegExp][] = [
      [['--announce', 'echo'], /announce \(--announce\) needs discovery \(--discovery nats:\/\/HOST:PORT/],
      [['--announce', 'bad name', '--discovery', nats.url], /'bad name' is not a service name/],
      [
        ['--announce', 'e', '--discovery', 'http://x'],
        /discovery \(--discovery\) 'http:\/\/x' is not a nats:\/\/HOST:PORT URL/,
      ],
      [['--advertise', '1.2.3.4:5'], /advertise needs announce/],
      [
        ['--announce', 'e', '--discovery', nats.url, '--advertise', '1.2.3.4:0'],
        /must be a HOST:PORT clients can connect to/,
      ],
    ];
    for (const [flags, expected] of cases) {
      const r = await runCli(['-l', '127.0.0.1:0', '-s', ECHO, ...flags]);
      assert.equal(r.code, 1, flags.join(' '));
      assert.match(r.stderr, expected);
    }
    const port = await deadPort();
    const r = await runCli([
      '-l',
      '127.0.0.1:0',
      '-s',
      ECHO,
      '--announce',
      'e',
      '--discovery',
      `nats://127.0.0.1:${port}`,
    ]);
    assert.equal(r.code, 1);
    assert.match(
      r.stderr,
      new RegExp(`--announce: cannot reach --discovery nats://127.0.0.1:${port}: connection refused`),
    );
    assert.equal(r.stderr.trim().split('\n').length, 1, `one line: ${r.stderr}`);
  });
});
