// tcpdaemon proxy --discover SERVICE: the proxy's backends follow the route table on a real
// nats-server, as announcing daemons (--announce) come and go: added and withdrawn under a connect
// loop with no failed connection (-c 1 and -c 2), a connection open to a withdrawn backend finishes,
// a killed backend leaves within its TTL while passive health covers the gap, NATS away at start
// stops it with one line, NATS lost while running keeps the last known backends.
import assert from 'node:assert/strict';
import { rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { Kvm } from '@nats-io/kv';
import { connect as natsConnect } from '@nats-io/transport-node';
import { ROUTES_BUCKET, routeKey } from '../src/fleet/route.js';
import { FIXTURES, type LogLine, runCli, startDaemon, stopCleanly } from './helpers/daemon.js';
import { type NatsServer, startNats } from './helpers/gateway.js';
import { assertNoLeftoverProcesses } from './helpers/leftovers.js';
import { connect, readLine, roundTrip } from './helpers/net.js';
import { deadPort } from './helpers/proxy.js';
import { socketPath, status } from './helpers/status.js';
import { waitUntil } from './helpers/supervisor.js';
import { tempDir } from './helpers/temp-dir.js';

const TAG_ECHO = join(FIXTURES, 'tag-echo.mjs');

let nats: NatsServer;

before(async () => {
  nats = await startNats();
});
after(async () => {
  await nats?.stop();
  await assertNoLeftoverProcesses();
});

/** A daemon serving tag-echo.mjs (greets with `tag`, then echoes) announced under `service`. */
async function backend(service: string, tag: string, url: string, ...extra: string[]) {
  return startDaemon([
    '-l',
    '127.0.0.1:0',
    '-s',
    TAG_ECHO,
    '--param',
    `tag=${tag}`,
    '--announce',
    service,
    '--discovery',
    url,
    ...extra,
  ]);
}

function proxyArgs(service: string, url: string, ...extra: string[]): string[] {
  return ['proxy', '-l', '127.0.0.1:0', '--discover', service, '--discovery', url, ...extra];
}

/** Connect, read the backend's tag, one echo, close: the tag. */
async function tagOf(port: number): Promise<string> {
  const s = await connect(port);
  try {
    const tag = await readLine(s);
    if ((await roundTrip(s, 'ping\n')) !== 'ping\n') throw new Error('wrong echo');
    return tag;
  } finally {
    s.destroy();
  }
}

/** `loops` connect loops through the proxy, counting tags and failures, with each connection's start time. */
function loopTags(port: number, loops = 2) {
  const seen: Record<string, number> = {};
  const events: { tag: string; at: number }[] = [];
  const errors: string[] = [];
  let running = true;
  const deadline = Date.now() + 120_000;
  const loop = async () => {
    while (running && Date.now() < deadline) {
      const at = Date.now();
      try {
        const tag = await tagOf(port);
        seen[tag] = (seen[tag] ?? 0) + 1;
        events.push({ tag, at });
      } catch (err) {
        errors.push((err as NodeJS.ErrnoException).code ?? (err as Error).message);
      }
      await new Promise((r) => setTimeout(r, 2));
    }
  };
  const all = Array.from({ length: loops }, loop);
  return {
    seen: (tag: string) => seen[tag] ?? 0,
    events,
    errors,
    async stop() {
      running = false;
      await Promise.all(all);
    },
  };
}

const removedLine = (id: string) => (l: LogLine) =>
  l.msg === 'backend removed by route table: no new connections, open ones finish' && l.backend === id;

/** `id (in N processes)` for each backend in the serving processes' pools (from `tcpdaemon status`). */
async function poolIds(path: string): Promise<string[]> {
  const report = await status(path);
  const section = report.sections?.find((s) => s.title === 'backends');
  const data = section?.data as { backends: { id: string; states: Record<string, number> }[] } | undefined;
  return (data?.backends ?? [])
    .map((b) => `${b.id} (in ${Object.values(b.states).reduce((x, y) => x + y, 0)})`)
    .sort();
}

/** Asks `tcpdaemon status` until the serving processes report `expected` (reports come with heartbeats). */
async function untilPools(path: string, expected: string[]): Promise<void> {
  const deadline = Date.now() + 30_000;
  for (;;) {
    const ids = await poolIds(path);
    if (JSON.stringify(ids) === JSON.stringify([...expected].sort())) return;
    assert.ok(Date.now() < deadline, `pools ${JSON.stringify(ids)}, expected ${JSON.stringify(expected)}`);
  }
}

describe('proxy --discover', () => {
  for (const workers of [1, 2]) {
    test(`-c ${workers}: backends are added and withdrawn under a connect loop with no failed connection; one open to a withdrawn backend finishes`, async () => {
      const service = `disc-c${workers}`;
      // a drains for 30 s (the connection kept open), and accepts for 1 s after withdrawing (--drain-delay).
      const a = await backend(service, 'a', nats.url, '--drain-delay', '1', '--shutdown-timeout', '30');
      let b: Awaited<ReturnType<typeof backend>> | undefined;
      const statusSocket = socketPath();
      const { daemon, port } = await startDaemon(
        proxyArgs(service, nats.url, '-c', String(workers), '--status-socket', statusSocket),
      );
      const loop = loopTags(port);
      try {
        const ready = await daemon.waitForMsg('proxy ready');
        assert.deepEqual(ready.backends, [`127.0.0.1:${a.port}`], 'the entry there at start is a backend');
        await waitUntil(() => loop.seen('a') >= 10 || undefined, 'load through a');

        const kept = await connect(port);
        assert.equal(await readLine(kept), 'a');

        b = await backend(service, 'b', nats.url);
        await daemon.waitForLog(
          (l) => l.msg === 'backend added by route table' && l.backend === `127.0.0.1:${b!.port}`,
        );
        await waitUntil(() => loop.seen('b') >= 10 || undefined, 'load through the announced b', 30_000);

        // tcpdaemon status: the route table's entries, and every front's pool.
        const report = await status(statusSocket);
        const disc = report.sections?.find((s) => s.title === 'discovery');
        assert.ok(disc, 'a discovery section');
        assert.match(
          disc.summary ?? '',
          new RegExp(`--discover ${service} on ${nats.url}: 2 entries, 2 used`),
        );
        assert.deepEqual(
          disc.rows?.map((r) => r[0]),
          [`127.0.0.1:${a.port}`, `127.0.0.1:${b.port}`].sort(),
        );
        await untilPools(statusSocket, [
          `127.0.0.1:${a.port} (in ${workers})`,
          `127.0.0.1:${b.port} (in ${workers})`,
        ]);

        // SIGTERM: a withdraws at once, still accepts for its drain delay, then drains the kept connection.
        a.daemon.signal('SIGTERM');
        await a.daemon.waitForMsg('withdrawn');
        await daemon.waitForLog(removedLine(`127.0.0.1:${a.port}`));
        // Every front has dropped it once its next heartbeat report says so.
        await untilPools(statusSocket, [`127.0.0.1:${b.port} (in ${workers})`]);
        const removedAt = Date.now();
        const bAfter = loop.seen('b');
        await waitUntil(
          () => loop.seen('b') >= bAfter + 20 || undefined,
          'load after the withdrawal',
          30_000,
        );
        await loop.stop();
        assert.deepEqual(loop.errors, [], 'no failed connection');
        assert.deepEqual(
          loop.events.filter((e) => e.tag === 'a' && e.at > removedAt),
          [],
          'no new connection to the withdrawn backend',
        );
        // The connection opened on a before its withdrawal still goes through to a.
        assert.equal(await roundTrip(kept, 'still there\n'), 'still there\n');
        kept.end();
        assert.deepEqual(await a.daemon.waitForExit(30_000), { code: 0, signal: null });
      } finally {
        await loop.stop();
        await stopCleanly(daemon);
        await a.daemon.kill();
        await b?.daemon.kill();
      }
    });
  }

  test('kill -9 of a backend: connections to it fail over (passive health), it leaves within its TTL', async () => {
    const service = 'disc-kill';
    const a = await backend(service, 'a', nats.url, '--announce-ttl', '2');
    const b = await backend(service, 'b', nats.url, '--announce-ttl', '2');
    // No active checks: passive (Lars) health alone takes a out of rotation until the TTL does;
    // 3 errors in a row overload it (Lars' 15 would need more connections than a slow machine makes in 2 s).
    const dir = tempDir('tcpdaemon-disc-kill-');
    const config = join(dir, 'proxy.json');
    writeFileSync(config, JSON.stringify({ passive: { continErrLimit: 3 } }));
    const { daemon, port } = await startDaemon(
      proxyArgs(service, nats.url, '--health-interval', '0', '--config', config),
    );
    const loops = 2;
    const loop = loopTags(port, loops);
    try {
      const ready = await daemon.waitForMsg('proxy ready');
      assert.equal((ready.backends as string[]).length, 2);
      await waitUntil(() => (loop.seen('a') >= 10 && loop.seen('b') >= 10) || undefined, 'load through both');
      const killedAt = Date.now();
      a.daemon.signal('SIGKILL');
      await a.daemon.waitForExit();
      const removed = await daemon.waitForLog(removedLine(`127.0.0.1:${a.port}`), 20_000);
      const goneMs = Date.parse(String(removed.time)) - killedAt;
      // The last refresh was at most a third of the TTL before the kill and the sweep runs every
      // second, so about 4 s; the bound is generous for a loaded machine, and far below what an entry
      // kept for good (or until a longer default TTL) would show.
      assert.ok(goneMs <= 10_000, `left the pool ${goneMs} ms after the kill (TTL 2 s)`);
      const bAfter = loop.seen('b');
      await waitUntil(() => loop.seen('b') >= bAfter + 20 || undefined, 'load after the removal', 30_000);
      await loop.stop();
      // Only the exchanges in flight on a when it died can fail: one per loop at most. Every later
      // connect to the dead address was refused and retried on b, unseen by the client.
      assert.ok(loop.errors.length <= loops, `failures: ${loop.errors.join(', ')}`);
      const overloaded = daemon.logs.find(
        (l) => l.msg === 'backend overloaded' && l.backend === `127.0.0.1:${a.port}`,
      );
      assert.ok(overloaded, 'passive health took the dead backend out of rotation before its TTL ran out');
      assert.ok(
        Date.parse(String(overloaded.time)) <= Date.parse(String(removed.time)),
        'overloaded before the route table dropped it',
      );
    } finally {
      await loop.stop();
      await stopCleanly(daemon);
      await a.daemon.kill();
      await b.daemon.kill();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('NATS lost while running (-c 2): the last known backends stay past their TTL, a front restarted meanwhile has them, one line each way, changes follow again', async () => {
    const dir = tempDir('tcpdaemon-nats-lost-');
    let own = await startNats(dir);
    const service = 'disc-lost';
    const a = await backend(service, 'a', own.url, '--announce-ttl', '1');
    const statusSocket = socketPath();
    const { daemon, port } = await startDaemon(
      proxyArgs(service, own.url, '-c', '2', '--status-socket', statusSocket),
    );
    let c: Awaited<ReturnType<typeof backend>> | undefined;
    try {
      await daemon.waitForMsg('proxy ready');
      assert.equal(await tagOf(port), 'a');
      await own.stop();
      const lost = await daemon.waitForMsg(
        'route table: NATS connection lost; keeping the last known entries until it is back',
      );
      // A front killed now is replaced with the daemon's last known list, not with none.
      const ready = () => daemon.logs.filter((l) => l.msg === 'worker ready');
      process.kill(Number(ready()[0]!.workerPid), 'SIGKILL');
      await waitUntil(() => ready().length >= 3 || undefined, 'the replacement front', 30_000);
      await untilPools(statusSocket, [`127.0.0.1:${a.port} (in 2)`]);
      // Three TTLs (at least) without a refresh: the entry is kept, a still serves.
      const until = Math.max(Date.parse(String(lost.time)) + 3000, Date.now() + 1000);
      let served = 0;
      while (Date.now() < until) {
        assert.equal(await tagOf(port), 'a');
        served++;
      }
      assert.ok(served > 0);
      own = await startNats(dir, [], own.port);
      await daemon.waitForMsg('route table: NATS connection back', 30_000);
      // The watch follows again: a new announce is pushed in.
      c = await backend(service, 'c', own.url, '--announce-ttl', '1');
      await daemon.waitForLog(
        (l) => l.msg === 'backend added by route table' && l.backend === `127.0.0.1:${c!.port}`,
        30_000,
      );
      assert.equal(
        daemon.logs.filter((l) => String(l.msg).startsWith('route table: NATS connection')).length,
        2,
        'one line when lost, one when back',
      );
      assert.equal(
        daemon.logs.some((l) => removedLine(`127.0.0.1:${a.port}`)(l)),
        false,
        'a was never dropped (its announcer refreshes again)',
      );
    } finally {
      await stopCleanly(daemon);
      await a.daemon.kill();
      await c?.daemon.kill();
      await own.stop();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('SIGHUP with --config keeps --discover (needs a restart); a file with --backend beside it is refused, nothing changes', async () => {
    const service = 'disc-reload';
    const a = await backend(service, 'a', nats.url);
    const dir = tempDir('tcpdaemon-disc-reload-');
    const config = join(dir, 'proxy.json');
    const write = (c: object) => writeFileSync(config, JSON.stringify({ listen: '127.0.0.1:0', ...c }));
    write({ discover: service, discovery: nats.url });
    const { daemon, port } = await startDaemon(['proxy', '--config', config]);
    const outcomes = () => daemon.logs.filter((l) => /^config reload/.test(String(l.msg)));
    try {
      await daemon.waitForMsg('proxy ready');
      assert.equal(await tagOf(port), 'a');
      // Another service: needs a restart, the running one is kept.
      write({ discover: 'disc-other', discovery: nats.url, retries: 3 });
      daemon.signal('SIGHUP');
      await waitUntil(() => outcomes()[0], 'the first reload outcome');
      assert.equal(outcomes()[0]!.msg, 'config reloaded');
      assert.ok(
        daemon.logs.some((l) => String(l.msg).startsWith('needs a restart: ') && l.key === 'discover'),
        'discover is kept, and said so',
      );
      assert.equal(await tagOf(port), 'a');
      // The route table swapped for a fixed backend: refused (the running --discover stays).
      write({ backends: ['127.0.0.1:9'] });
      daemon.signal('SIGHUP');
      await waitUntil(() => outcomes()[1], 'the second reload outcome');
      assert.match(
        String(outcomes()[1]!.msg),
        /^config reload failed: discover \(--discover\) takes the backends from the route table: give it without --backend; nothing changed$/,
      );
      assert.equal(await tagOf(port), 'a');
    } finally {
      await stopCleanly(daemon);
      await a.daemon.kill();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('entries the proxy cannot use (TLS when it has no --backend-tls, no HOST:PORT) are skipped with one warning each', async () => {
    const service = 'disc-odd';
    const a = await backend(service, 'a', nats.url);
    const nc = await natsConnect({ servers: nats.url });
    const kv = await new Kvm(nc).create(ROUTES_BUCKET, { history: 1 });
    // Another writer's entries: a TLS listener and an address that is no HOST:PORT.
    const put = (address: string, tls: boolean, weight = 1) =>
      kv.put(
        routeKey(service, address),
        JSON.stringify({ service, address, weight, tls, refreshedAt: Date.now(), ttlMs: 60_000 }),
      );
    await put('127.0.0.1:9', true);
    await put('/tmp/odd.sock', false);
    const { daemon, port } = await startDaemon(proxyArgs(service, nats.url));
    const tlsLine = 'route table: the entry serves TLS and the proxy has no --backend-tls; not used';
    const addressLine = 'route table: an entry that is no HOST:PORT; not used';
    try {
      const ready = await daemon.waitForMsg('proxy ready');
      assert.deepEqual(ready.backends, [`127.0.0.1:${a.port}`]);
      await daemon.waitForMsg(tlsLine);
      await daemon.waitForMsg(addressLine);
      // Changes while they are there (its weight, another entry, applied in order) re-read them: no
      // second warning. Port 10 refuses: the client is retried on a.
      await put('127.0.0.1:9', true, 2);
      await put('127.0.0.1:10', false);
      await daemon.waitForLog(
        (l) => l.msg === 'backend added by route table' && l.backend === '127.0.0.1:10',
      );
      assert.equal(await tagOf(port), 'a');
      assert.equal(daemon.logs.filter((l) => l.msg === tlsLine).length, 1);
      assert.equal(daemon.logs.filter((l) => l.msg === addressLine).length, 1);
    } finally {
      await kv.delete(routeKey(service, '127.0.0.1:9'));
      await kv.delete(routeKey(service, '/tmp/odd.sock'));
      await kv.delete(routeKey(service, '127.0.0.1:10'));
      await nc.close();
      await stopCleanly(daemon);
      await a.daemon.kill();
    }
  });

  test('NATS unreachable at start: one line naming the URL, exit 1, nothing listens', async () => {
    const dead = await deadPort();
    const r = await runCli(proxyArgs('svc', `nats://127.0.0.1:${dead}`));
    assert.equal(r.code, 1);
    assert.match(
      r.stderr,
      new RegExp(`--discover svc: --discovery nats://127.0.0.1:${dead}: cannot connect: connection refused`),
    );
    assert.equal(r.stderr.trim().split('\n').length, 1, `one line: ${r.stderr}`);
    assert.equal(r.stdout.includes('"listening"'), false);
  });

  test('bad --discover values stop the start with one line', async () => {
    const cases: [string[], RegExp][] = [
      [['--discover', 'svc'], /discover \(--discover\) needs discovery \(--discovery nats:\/\/HOST:PORT/],
      [
        ['--discover', 'bad name', '--discovery', nats.url],
        /discover \(--discover\) 'bad name' is not a service name/,
      ],
      [
        ['--discover', 'svc', '--discovery', 'http://x'],
        /discovery \(--discovery\) 'http:\/\/x' is not a nats:\/\/HOST:PORT URL/,
      ],
      [
        ['--discover', 'svc', '--discovery', nats.url, '--backend', '127.0.0.1:9'],
        /discover \(--discover\) takes the backends from the route table: give it without --backend/,
      ],
      [
        ['--discover', 'svc', '--discovery', nats.url, '--spawn', 'node x.js {port}'],
        /discover \(--discover\) takes the backends from the route table: give it without --spawn/,
      ],
      [
        ['--discovery', nats.url, '--backend', '127.0.0.1:9'],
        /discovery \(--discovery\) needs discover \(--discover SERVICE\) or announce \(--announce SERVICE\)/,
      ],
      [[], /give at least one --backend HOST:PORT, --spawn COMMAND or --discover SERVICE/],
    ];
    for (const [flags, expected] of cases) {
      const r = await runCli(['proxy', '-l', '127.0.0.1:0', ...flags]);
      assert.equal(r.code, 1, flags.join(' '));
      assert.match(r.stderr, expected, flags.join(' '));
    }
  });

  test('an empty service: the proxy starts, rejects clients, and takes the first backend announced', async () => {
    const service = 'disc-empty';
    const { daemon, port } = await startDaemon(proxyArgs(service, nats.url));
    let a: Awaited<ReturnType<typeof backend>> | undefined;
    try {
      const ready = await daemon.waitForMsg('proxy ready');
      assert.deepEqual(ready.backends, []);
      await assert.rejects(tagOf(port), 'no backend: the client is closed');
      a = await backend(service, 'a', nats.url);
      await daemon.waitForLog((l) => l.msg === 'backend added by route table');
      assert.equal(await tagOf(port), 'a');
    } finally {
      await stopCleanly(daemon);
      await a?.daemon.kill();
    }
  });
});
