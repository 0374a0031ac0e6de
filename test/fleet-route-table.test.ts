// The route table's reader (src/fleet/route-table.ts) against a real nats-server and announcing
// daemons: an announce is pushed to it, a graceful stop removes the entry at once, and a killed
// process's entry leaves it within its TTL.
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { rmSync } from 'node:fs';
import { after, before, test } from 'node:test';
import { jetstreamManager } from '@nats-io/jetstream';
import { Kvm } from '@nats-io/kv';
import { connect as natsConnect } from '@nats-io/transport-node';
import pino from 'pino';
import { ROUTES_BUCKET, type RouteEntry, routeKey } from '../src/fleet/route.js';
import { RouteTable } from '../src/fleet/route-table.js';
import { EXAMPLES, startDaemon, stopCleanly } from './helpers/daemon.js';
import { type NatsServer, startNats } from './helpers/gateway.js';
import { assertNoLeftoverProcesses } from './helpers/leftovers.js';
import { captureLogger } from './helpers/supervisor.js';
import { tempDir } from './helpers/temp-dir.js';

const ECHO = `${EXAMPLES}/echo.js`;
const silent = pino({ level: 'silent' });
let nats: NatsServer;

before(async () => {
  nats = await startNats();
});
after(async () => {
  await nats?.stop();
  await assertNoLeftoverProcesses();
});

const announcing = (service: string, ttl: string) =>
  startDaemon([
    '-m',
    'IOMP',
    '-l',
    '127.0.0.1:0',
    '-s',
    ECHO,
    '--announce',
    service,
    '--discovery',
    nats.url,
    '--announce-ttl',
    ttl,
  ]);

/** Resolves once `cond` holds (checked every 50 ms). */
async function waitFor(cond: () => boolean): Promise<void> {
  while (!cond()) await new Promise((r) => setTimeout(r, 50));
}

/** Resolves with the service's entries at the first change that satisfies `pred`. */
function changeWhere(
  table: RouteTable,
  service: string,
  pred: (entries: RouteEntry[]) => boolean,
): Promise<RouteEntry[]> {
  return new Promise((resolve) => {
    const onChange = (s: string, entries: RouteEntry[]) => {
      if (s !== service || !pred(entries)) return;
      table.off('change', onChange);
      resolve(entries);
    };
    table.on('change', onChange);
  });
}

test('RouteTable: an announce is pushed in, a graceful stop takes it out, entries already there are read at open', async () => {
  const first = await announcing('rt-a', '5');
  const table = await RouteTable.open({ servers: [nats.url], logger: silent });
  try {
    // Present before open: in the snapshot.
    assert.deepEqual(
      table.entries('rt-a').map((e) => e.address),
      [`127.0.0.1:${first.port}`],
    );
    const added = changeWhere(table, 'rt-a', (es) => es.length === 2);
    const second = await announcing('rt-a', '5');
    const both = await added;
    assert.deepEqual(
      both.map((e) => e.address),
      [`127.0.0.1:${first.port}`, `127.0.0.1:${second.port}`].sort(),
    );
    assert.equal(both[0]!.pid > 0, true);
    assert.deepEqual(table.services(), ['rt-a']);
    const removed = changeWhere(table, 'rt-a', (es) => es.length === 1);
    await stopCleanly(second.daemon);
    assert.deepEqual(
      (await removed).map((e) => e.address),
      [`127.0.0.1:${first.port}`],
    );
    await stopCleanly(first.daemon);
  } finally {
    await table.close();
  }
});

test('RouteTable: a kill -9 announcer leaves the table within its TTL; a watch of one service ignores others', async () => {
  const table = await RouteTable.open({
    servers: [nats.url],
    logger: silent,
    services: ['rt-b'],
    sweepMs: 200,
  });
  const other = await announcing('rt-c', '5');
  const seen = changeWhere(table, 'rt-b', (es) => es.length === 1);
  const victim = await announcing('rt-b', '1');
  try {
    await seen;
    const gone = changeWhere(table, 'rt-b', (es) => es.length === 0);
    victim.daemon.child.kill('SIGKILL');
    await once(victim.daemon.child, 'exit');
    await gone;
    assert.deepEqual(table.entries('rt-b'), []);
    assert.deepEqual(table.entries('rt-c'), [], 'rt-c is not watched');
  } finally {
    await table.close();
    await victim.daemon.kill();
    await stopCleanly(other.daemon);
  }
});

test('RouteTable.open: a watch of a service with no entry, in a bucket holding others, opens without waiting out the snapshot wait', {
  timeout: 30_000,
}, async () => {
  const other = await announcing('rt-d', '5');
  try {
    // A snapshot wait longer than the test's timeout: open must see there is nothing to wait for.
    const table = await RouteTable.open({
      servers: [nats.url],
      logger: silent,
      services: ['rt-nobody'],
      snapshotWaitMs: 120_000,
    });
    try {
      assert.deepEqual(table.entries('rt-nobody'), []);
    } finally {
      await table.close();
    }
    // The service's own entries are still read at open with such a wait.
    const withEntry = await RouteTable.open({
      servers: [nats.url],
      logger: silent,
      services: ['rt-d'],
      snapshotWaitMs: 120_000,
    });
    try {
      assert.deepEqual(
        withEntry.entries('rt-d').map((e) => e.address),
        [`127.0.0.1:${other.port}`],
      );
    } finally {
      await withEntry.close();
    }
  } finally {
    await stopCleanly(other.daemon);
  }
});

test('RouteTable: a watch whose consumer vanishes while the connection stays up is noticed by the probe and replaced; announces still arrive', {
  timeout: 30_000,
}, async () => {
  const logs = captureLogger();
  const table = await RouteTable.open({
    servers: [nats.url],
    logger: logs.logger,
    services: ['rt-probe'],
    probeMs: 200,
  });
  const nc = await natsConnect({ servers: nats.url });
  let server: Awaited<ReturnType<typeof announcing>> | undefined;
  try {
    // What a NATS node's death does to a consumer that lived on it, with no disconnect here.
    const jsm = await jetstreamManager(nc);
    const stream = `KV_${ROUTES_BUCKET}`;
    for await (const ci of jsm.consumers.list(stream)) await jsm.consumers.delete(stream, ci.name);
    await waitFor(() =>
      logs.lines.some((l) => l.msg === 'route table: watching again' && /consumer/.test(String(l.why))),
    );
    const seen = changeWhere(table, 'rt-probe', (es) => es.length === 1);
    server = await announcing('rt-probe', '5');
    assert.deepEqual(
      (await seen).map((e) => e.address),
      [`127.0.0.1:${server.port}`],
    );
  } finally {
    await table.close();
    await nc.close();
    if (server) await stopCleanly(server.daemon);
  }
});

test("RouteTable: a watch of two services (on a NATS server before 2.10 too, as Debian's) holds both and no third", async () => {
  const servers = await Promise.all(['rt-m1', 'rt-m2', 'rt-m3'].map((s) => announcing(s, '5')));
  try {
    const table = await RouteTable.open({
      servers: [nats.url],
      logger: silent,
      services: ['rt-m1', 'rt-m2'],
    });
    try {
      assert.deepEqual(
        table.entries('rt-m1').map((e) => e.address),
        [`127.0.0.1:${servers[0]!.port}`],
      );
      assert.deepEqual(
        table.entries('rt-m2').map((e) => e.address),
        [`127.0.0.1:${servers[1]!.port}`],
      );
      assert.deepEqual(table.entries('rt-m3'), [], 'rt-m3 is not watched');
      assert.deepEqual(table.services(), ['rt-m1', 'rt-m2']);
    } finally {
      await table.close();
    }
  } finally {
    await Promise.all(servers.map((x) => stopCleanly(x.daemon)));
  }
});

test('RouteTable.open: NATS down is a ConnectError naming the URL', async () => {
  await assert.rejects(
    RouteTable.open({ servers: ['nats://127.0.0.1:1'], logger: silent }),
    (err: Error & { code?: string }) =>
      /--discovery nats:\/\/127\.0\.0\.1:1: cannot connect: connection refused/.test(err.message) &&
      typeof err.code === 'string',
  );
});

test('RouteTable: while NATS is lost the entries are kept past their TTL (one line each way); once back, one TTL for refreshes, then an entry not refreshed goes', async () => {
  const dir = tempDir('tcpdaemon-rt-lost-');
  let own = await startNats(dir);
  const logs = captureLogger();
  const table = await RouteTable.open({ servers: [own.url], logger: logs.logger, sweepMs: 100 });
  const nc = await natsConnect({ servers: own.url });
  try {
    const kv = await new Kvm(nc).create(ROUTES_BUCKET, { history: 1, ttl: 10_000 });
    // An announcer of our own that refreshes only when told: TTL 500 ms.
    const put = () =>
      kv.put(
        routeKey('rt-lost', '127.0.0.1:7'),
        JSON.stringify({
          service: 'rt-lost',
          address: '127.0.0.1:7',
          weight: 1,
          refreshedAt: Date.now(),
          ttlMs: 500,
        }),
      );
    const seen = changeWhere(table, 'rt-lost', (es) => es.length === 1);
    await put();
    await seen;
    await nc.close();
    const lost = once(table, 'lost');
    await own.stop();
    await lost;
    // Four TTLs and many sweeps with no refresh possible: kept.
    await new Promise((r) => setTimeout(r, 2000));
    assert.deepEqual(
      table.entries('rt-lost').map((e) => e.address),
      ['127.0.0.1:7'],
    );
    assert.ok(table.lostSince !== undefined);
    const back = once(table, 'back');
    own = await startNats(dir, [], own.port);
    await back;
    assert.equal(table.lostSince, undefined);
    // Back: still there (its announcer gets a TTL to refresh), then gone without a refresh.
    const backAt = Date.now();
    assert.equal(table.entries('rt-lost').length, 1);
    await changeWhere(table, 'rt-lost', (es) => es.length === 0);
    assert.ok(Date.now() - backAt >= 400, 'not dropped before a TTL after NATS was back');
    assert.deepEqual(
      logs.lines.map((l) => l.msg).filter((m) => String(m).startsWith('route table: NATS connection')),
      [
        'route table: NATS connection lost; keeping the last known entries until it is back',
        'route table: NATS connection back',
      ],
    );
  } finally {
    await nc.close().catch(() => undefined);
    await table.close();
    await own.stop();
    rmSync(dir, { recursive: true, force: true });
  }
});
